//! The reconciliation report: per day in the organisation's timezone and per currency, the
//! store's figures against Xero's, payments per account, FX, every difference explained and
//! the unexplained remainder order by order. Made from rows the projection keeps ([`rows`]),
//! never from a call to Xero: `reconciler report` (table, `--json`, `--csv`) and `GET /report`
//! (JSON, CSV, or a page with a chart).

pub mod build;
pub mod http;
pub mod org;
pub mod page;
pub mod row;
pub mod rows;
pub mod text;

use async_nats::jetstream::kv;
use chrono::NaiveDate;

pub use build::{Report, assemble};

/// What the report's HTTP handlers need.
#[derive(Debug, Clone)]
pub struct ReportState {
    /// The rows' bucket.
    pub rows: kv::Store,
    /// `recon_state`, holding the organisations' settings.
    pub state: kv::Store,
    /// Where the page links to.
    pub links: page::Links,
    /// The store shown when none is asked for.
    pub default_store: String,
}

/// `reconciler report`: the table, JSON or CSV on standard output.
pub async fn run_command(
    config: crate::Config,
    args: crate::config::ReportArgs,
) -> anyhow::Result<()> {
    let client = ledgerline_platform::nats::connect(&config.nats, "reconciler-report").await?;
    let js = ledgerline_platform::nats::jetstream(&client);
    let open = |b: &'static str| {
        let js = js.clone();
        async move {
            js.get_key_value(b).await.map_err(|e| {
                anyhow::anyhow!("bucket {b} is not there ({e}): has the reconciler run yet?")
            })
        }
    };
    let rows = open(ledgerline_contract::buckets::RECON_REPORT.bucket).await?;
    let state = open(ledgerline_contract::buckets::RECON_STATE.bucket).await?;
    let to = args.to.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let from = args.from.unwrap_or_else(|| to - chrono::Duration::days(6));
    let q =
        Query::new(&args.store, from, to, args.tenant.clone()).map_err(|e| anyhow::anyhow!(e))?;
    let report = make(&rows, &state, &q).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        std::io::Write::write_all(&mut out, b"\n")?;
    } else if args.csv {
        std::io::Write::write_all(&mut out, text::csv(&report).as_bytes())?;
    } else {
        text::write_table(&mut out, &report)?;
    }
    std::io::Write::flush(&mut out)?;
    if !report.ties_out {
        // Scripts see it in the exit code too.
        std::process::exit(3);
    }
    Ok(())
}

/// What a report is asked for.
#[derive(Debug, Clone)]
pub struct Query {
    /// Store.
    pub store: String,
    /// First local day.
    pub from: NaiveDate,
    /// Last local day.
    pub to: NaiveDate,
    /// Whose organisation settings (none: the first kept).
    pub tenant: Option<String>,
}

/// The longest range one report covers (a year and a day).
pub const MAX_DAYS: i64 = 366;

impl Query {
    /// Checks the range.
    pub fn new(
        store: &str,
        from: NaiveDate,
        to: NaiveDate,
        tenant: Option<String>,
    ) -> Result<Self, String> {
        if store.trim().is_empty() {
            return Err("a store is needed".into());
        }
        if to < from {
            return Err(format!("the range ends ({to}) before it starts ({from})"));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(format!("a report covers at most {MAX_DAYS} days"));
        }
        Ok(Self {
            store: store.trim().to_owned(),
            from,
            to,
            tenant,
        })
    }
}

/// Makes the report for `q` from the rows in `rows` and the settings kept in `state`.
pub async fn make(rows: &kv::Store, state: &kv::Store, q: &Query) -> anyhow::Result<Report> {
    let org = org::load(state, q.tenant.as_deref()).await?;
    // Rows are kept by UTC date; a local day reaches at most a day either side.
    let (from, to) = (
        q.from.pred_opt().unwrap_or(q.from),
        q.to.succ_opt().unwrap_or(q.to),
    );
    let read = rows::read(rows, &q.store, from, to)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(assemble(
        read,
        org.as_ref(),
        &q.store,
        q.from,
        q.to,
        chrono::Utc::now(),
    ))
}
