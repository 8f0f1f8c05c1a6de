//! KV buckets: projections, caches and tokens. NATS is the only stateful dependency.

use async_nats::jetstream::kv::Config;
use async_nats::jetstream::stream::StorageType;

/// One KV bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSpec {
    /// Bucket name.
    pub bucket: &'static str,
    /// What it holds.
    pub description: &'static str,
    /// Revisions kept per key.
    pub history: i64,
}

/// The writer's ledger: order key → Xero ids, version and mapping revision written. Updated by
/// compare-and-set on the entry's revision, so two events of one order never write at once.
pub const LEDGER: BucketSpec = BucketSpec {
    bucket: "ledger",
    description: "Per order: what was written to Xero (ids, version, mapping revision).",
    history: 5,
};

/// OAuth tokens per tenant, updated by compare-and-set so two replicas never race a refresh.
pub const XERO_TOKENS: BucketSpec = BucketSpec {
    bucket: "xero_tokens",
    description: "Xero OAuth tokens per tenant.",
    history: 1,
};

/// Contact matches per tenant and customer identity, so steady state needs no lookups.
pub const CONTACTS: BucketSpec = BucketSpec {
    bucket: "xero_contacts",
    description: "Customer identity → Xero ContactID per tenant.",
    history: 1,
};

/// Shared per-tenant rate budget across writer replicas, and the app's egress per month
/// (`egress.<app>.<YYYY-MM>`).
pub const RATE_BUDGET: BucketSpec = BucketSpec {
    bucket: "xero_rate_budget",
    description: "Per-tenant Xero call budget and the app's monthly egress, shared by processes.",
    history: 1,
};

/// Mapping rules added at run time (from the review queue); wins over the operator's file.
pub const MAPPING_OVERLAY: BucketSpec = BucketSpec {
    bucket: "mapping_overlay",
    description: "Mapping overlay: rules that win over the mapping file.",
    history: 10,
};

/// Webhook secrets per store, for rotation without a restart.
pub const INGEST_SECRETS: BucketSpec = BucketSpec {
    bucket: "ingest_secrets",
    description: "Webhook signing secrets per store (rotation without restart).",
    history: 5,
};

/// The reconciler's per-order projection.
pub const RECON_PROJECTION: BucketSpec = BucketSpec {
    bucket: "recon_projection",
    description: "Per order: store state and Xero state as last seen.",
    history: 1,
};

/// The reconciliation report's rows: `r.<store>.<UTC date YYYYMMDD>.<shard>` holds the
/// figures of the orders placed that UTC day whose id hashes to the shard (JSON, order id →
/// row), so a month is read in a few hundred gets, never one per order.
pub const RECON_REPORT: BucketSpec = BucketSpec {
    bucket: "recon_report",
    description: "Reconciliation report rows: per order, the store's and Xero's figures and why they differ.",
    history: 1,
};

/// The reconciler's cursors: where each poll of Xero and of the store left off.
pub const RECON_STATE: BucketSpec = BucketSpec {
    bucket: "recon_state",
    description: "Reconciler poll cursors (Xero If-Modified-Since, the store's modified-since).",
    history: 1,
};

/// The dead-letter service's review queue: `e.<id>` entries (JSON, updated by compare-and-set,
/// the revision is the API's ETag), `p.<id>` original payloads and `p.<id>.edited` edited ones,
/// `job.<id>` bulk replay jobs and `lock.<name>` job locks. Independent of DLQ's age limit.
pub const DEAD_LETTERS: BucketSpec = BucketSpec {
    bucket: "dead_letters",
    description: "Review queue: dead-letter entries, their payloads, and replay jobs.",
    history: 1,
};

/// Every bucket.
pub const ALL: [BucketSpec; 10] = [
    LEDGER,
    XERO_TOKENS,
    CONTACTS,
    RATE_BUDGET,
    MAPPING_OVERLAY,
    INGEST_SECRETS,
    RECON_PROJECTION,
    RECON_STATE,
    RECON_REPORT,
    DEAD_LETTERS,
];

impl BucketSpec {
    /// The JetStream KV configuration.
    pub fn config(&self, replicas: usize) -> Config {
        Config {
            bucket: self.bucket.to_owned(),
            description: self.description.to_owned(),
            history: self.history,
            storage: StorageType::File,
            num_replicas: replicas.max(1),
            ..Default::default()
        }
    }
}
