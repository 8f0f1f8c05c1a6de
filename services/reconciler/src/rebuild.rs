//! `reconciler rebuild`: the projection recreated from the streams alone (ORDERS, then DLQ,
//! then XERO's document facts, then OBSERVED, each from its start), with no Xero call, and the
//! report's rows from the views. Findings are not
//! rebuilt: the running service evaluates each order again as it changes or its SLA runs out.

use crate::config::{Config, RebuildArgs};
use crate::intake;
use crate::projection::Projection;
use crate::report::rows::RowStore;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::StreamExt;
use ledgerline_contract::{buckets, streams};
use ledgerline_platform::publish::Publisher;
use std::time::Duration;

/// What a rebuild read, per stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// ORDERS messages.
    pub orders: u64,
    /// XERO facts.
    pub facts: u64,
    /// Observations.
    pub observed: u64,
    /// Dead letters.
    pub dead_letters: u64,
}

/// The subcommand.
pub async fn run_command(config: Config, args: RebuildArgs) -> anyhow::Result<()> {
    let client = ledgerline_platform::nats::connect(&config.nats, "reconciler-rebuild").await?;
    let js = ledgerline_platform::nats::jetstream(&client);
    let report = rebuild(&js, config.report_rules(), !args.quiet).await?;
    println!(
        "projection rebuilt from {} order events, {} Xero facts and {} observations",
        report.orders, report.facts, report.observed
    );
    Ok(())
}

/// Empties the projection bucket and applies every message again.
pub async fn rebuild(
    js: &async_nats::jetstream::Context,
    rules: crate::report::row::Rules,
    progress: bool,
) -> anyhow::Result<Report> {
    let kv = recreate(js, buckets::RECON_PROJECTION).await?;
    let rows = RowStore::new(recreate(js, buckets::RECON_REPORT).await?, rules);
    let p = Projection::new(
        kv,
        Publisher::new(js.clone(), Duration::from_secs(5)),
        None,
        crate::findings::Slas {
            invoice: Duration::MAX,
            settle: Duration::MAX,
        },
    )
    .with_rows(rows.clone());
    let facts: Vec<String> = ["invoice", "credit_note", "payment", "allocation", "contact"]
        .map(|k| format!("xero.*.{k}.>"))
        .to_vec();
    let parts: [(&str, Vec<String>); 4] = [
        (streams::ORDERS.name, vec![]),
        (streams::DLQ.name, vec![]),
        (streams::XERO.name, facts),
        (streams::OBSERVED.name, vec![]),
    ];
    let mut total = 0;
    for (stream, filters) in &parts {
        total += pending(js, stream, filters.clone()).await?;
    }
    let bar = ledgerline_platform::progress::bar(
        total,
        progress,
        "{bar:40} {pos}/{len} messages {per_sec} {eta} {msg}",
    );
    let mut report = Report::default();
    for (i, (stream, filters)) in parts.into_iter().enumerate() {
        bar.set_message(stream);
        let s = js.get_stream(stream).await?;
        let consumer = s
            .create_consumer(pull::Config {
                filter_subjects: filters,
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(60),
                ..Default::default()
            })
            .await?;
        let n = consumer.cached_info().num_pending;
        if n == 0 {
            continue;
        }
        let mut msgs = consumer.messages().await?.take(n as usize);
        while let Some(m) = msgs.next().await {
            let m = m?;
            let _ = match i {
                0 => intake::order_event(&p, &m).await,
                1 => intake::dead_letter(&p, &m).await,
                2 => intake::fact(&p, &m).await,
                _ => intake::observation(&p, &m).await,
            };
            match i {
                0 => report.orders += 1,
                1 => report.dead_letters += 1,
                2 => report.facts += 1,
                _ => report.observed += 1,
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    rows.flush().await;
    Ok(report)
}

/// Empties a bucket by making it again as it was (the same replicas).
async fn recreate(
    js: &async_nats::jetstream::Context,
    spec: buckets::BucketSpec,
) -> anyhow::Result<async_nats::jetstream::kv::Store> {
    let replicas = match js.get_stream(format!("KV_{}", spec.bucket)).await {
        Ok(mut s) => s.info().await.map_or(1, |i| i.config.num_replicas),
        Err(_) => 1,
    };
    let _ = js.delete_key_value(spec.bucket).await;
    Ok(js.create_key_value(spec.config(replicas)).await?)
}

async fn pending(
    js: &async_nats::jetstream::Context,
    stream: &str,
    filters: Vec<String>,
) -> anyhow::Result<u64> {
    let s = js.get_stream(stream).await?;
    let mut c = s
        .create_consumer(pull::Config {
            filter_subjects: filters,
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(10),
            ..Default::default()
        })
        .await?;
    Ok(c.info().await?.num_pending)
}
