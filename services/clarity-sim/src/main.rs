//! `clarity-sim`: generate, send, serve and load. See the crate README.

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use clarity_sim::load::{self, LoadConfig};
use clarity_sim::send::{Faults, SendConfig, Sender};
use clarity_sim::{Credentials, GenConfig, Generator, GroundTruth, Store, serve};
use ledgerline_platform::standard_webhooks::Secret;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "clarity-sim",
    about = "A simulated Clarity eCommerce store",
    version
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write the generated webhook bodies, one JSON document per line.
    Generate {
        #[command(flatten)]
        gen_args: GenArgs,
        /// Output file (stdout when absent).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the ground truth of a generated store without sending anything.
    Truth {
        #[command(flatten)]
        gen_args: GenArgs,
        /// Output file (stdout when absent).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Send a generated store's events as signed webhooks.
    Send(Box<SendArgs>),
    /// Serve the REST API (and ground truth) of a generated store.
    Serve {
        #[command(flatten)]
        gen_args: GenArgs,
        /// Listen address.
        #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Benchmark: pre-signed copies of sales_order.created.json over many connections.
    Load {
        /// Webhook endpoint (a base URL gets `/webhooks/clarity/<store>` appended).
        #[arg(long)]
        target: String,
        /// Store key, for the URL.
        #[arg(long, default_value = "main")]
        store: String,
        /// The store's `whsec_...` secret (default: the demo store's, as webhook-ingest's default).
        #[arg(long, env = "CLARITY_SIM_SECRET", hide_env_values = true, hide_default_value = true, default_value = DEMO_SECRET)]
        secret: String,
        /// Concurrent connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// How long, e.g. `20s` (default 20s unless --requests is given).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// How many requests instead of a duration.
        #[arg(long)]
        requests: Option<usize>,
        /// Also measure the raw JetStream publish rate here (same size, same in-flight count).
        #[arg(long, env = "NATS_URL")]
        nats: Option<String>,
        /// Report this process's peak RSS (VmHWM) and CPU time: the ingest's pid.
        #[arg(long)]
        pid: Option<u32>,
        /// Interleaved rounds, raw then ingest (needs --nats); the median and range are reported.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// The first copy's number (runs against one ingest must not repeat ids).
        #[arg(long, default_value_t = 0)]
        first: u64,
    },
}

#[derive(Args, Debug)]
struct GenArgs {
    /// RNG seed: same seed, same store, byte for byte.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Orders to generate.
    #[arg(long, default_value_t = 100)]
    orders: usize,
    /// Store key.
    #[arg(long, default_value = "main")]
    store: String,
    /// Orders of each review case (a new tax code `GST12`, a sales channel the organisation
    /// has no tracking option for), spread through the run: they wait in the review queue
    /// until the mapping is fixed.
    #[arg(long, default_value_t = 0)]
    review_orders: usize,
}

#[derive(Args, Debug)]
struct AuthArgs {
    /// Basic-auth user for the REST API.
    #[arg(long, env = "CLARITY_SIM_USER", default_value = "ledgerline")]
    username: String,
    /// Basic-auth password for the REST API.
    #[arg(
        long,
        env = "CLARITY_SIM_PASSWORD",
        default_value = "clarity-sim",
        hide_env_values = true
    )]
    password: String,
}

#[derive(Args, Debug)]
struct SendArgs {
    #[command(flatten)]
    gen_args: GenArgs,
    /// Webhook endpoint (a base URL gets `/webhooks/clarity/<store>` appended).
    #[arg(long)]
    target: String,
    /// The store's `whsec_...` secret (default: the demo store's, as webhook-ingest's default).
    #[arg(long, env = "CLARITY_SIM_SECRET", hide_env_values = true, hide_default_value = true, default_value = DEMO_SECRET)]
    secret: String,
    /// The secret being rotated to (with `--faults rotate`).
    #[arg(long, env = "CLARITY_SIM_NEXT_SECRET", hide_env_values = true)]
    next_secret: Option<String>,
    /// Deliveries per second (unpaced when absent).
    #[arg(long)]
    rate: Option<f64>,
    /// Comma list: duplicates,reorder,stale,badsig,rotate,oversize,burst (or all, none).
    #[arg(long, default_value = "none")]
    faults: Faults,
    /// Parallel delivery lanes; one order's events stay on one lane, in order.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Multiplies the retry schedule (5 s, 5 min, 30 min, ...); e.g. 0.001 for tests.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Per-request timeout, e.g. `15s`.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    timeout: Duration,
    /// Attempts per event, first included (1-10).
    #[arg(long, default_value_t = 10)]
    max_attempts: u32,
    /// Write the ground truth here when done.
    #[arg(long)]
    truth_out: Option<PathBuf>,
    /// Also serve the REST API here while sending, kept in step with what was sent; keeps
    /// serving after sending until Ctrl-C.
    #[arg(long)]
    serve: Option<SocketAddr>,
    #[command(flatten)]
    auth: AuthArgs,
}

/// The demo store's secret, the same default webhook-ingest uses when no store is configured.
const DEMO_SECRET: &str = "whsec_bGVkZ2VybGluZS1kZW1vLXNlY3JldC0x";

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn endpoint(target: &str, store: &str) -> String {
    if target.contains("/webhooks/") {
        target.to_owned()
    } else {
        format!("{}/webhooks/clarity/{store}", target.trim_end_matches('/'))
    }
}

fn write_out(path: Option<&PathBuf>, bytes: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(p) => std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display())),
        None => Ok(std::io::stdout().write_all(bytes)?),
    }
}

fn events(g: &GenArgs) -> Vec<clarity_sim::Event> {
    let cfg = GenConfig {
        review: g.review_orders,
        ..GenConfig::new(&g.store, g.orders)
    };
    Generator::new(g.seed, cfg).events()
}

async fn serve_on(
    addr: SocketAddr,
    store: Arc<Store>,
    auth: &AuthArgs,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "Serving the REST API.");
    let app = serve::router(
        store,
        Credentials {
            username: auth.username.clone(),
            password: auth.password.clone(),
        },
    );
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await;
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `clarity-sim healthcheck`: asks `serve`'s /readyz (the container healthcheck).
    ledgerline_platform::health::exit_if_asked("127.0.0.1:8090");
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Generate { gen_args, out } => {
            let mut buf = Vec::new();
            for e in events(&gen_args) {
                buf.extend_from_slice(&e.body);
                buf.push(b'\n');
            }
            write_out(out.as_ref(), &buf)
        }
        Cmd::Truth { gen_args, out } => {
            let truth = GroundTruth::from_events(&events(&gen_args))?;
            write_out(out.as_ref(), &serde_json::to_vec_pretty(&truth)?)
        }
        Cmd::Serve {
            gen_args,
            listen,
            auth,
        } => {
            let store = Arc::new(Store::from_events(&events(&gen_args))?);
            serve_on(listen, store, &auth).await?.await?;
            Ok(())
        }
        Cmd::Send(a) => {
            let secret = Secret::parse(&a.secret).context("--secret")?;
            let next_secret = a
                .next_secret
                .as_deref()
                .map(Secret::parse)
                .transpose()
                .context("--next-secret")?;
            let evs = events(&a.gen_args);
            let mut cfg = SendConfig::new(endpoint(&a.target, &a.gen_args.store), secret);
            cfg.next_secret = next_secret;
            cfg.rate = a.rate;
            cfg.faults = a.faults;
            cfg.fault_seed = a.gen_args.seed;
            cfg.concurrency = a.concurrency;
            cfg.time_scale = a.time_scale;
            cfg.request_timeout = a.timeout;
            cfg.max_attempts = a.max_attempts;
            let store = Arc::new(Store::new());
            let server = match a.serve {
                Some(addr) => Some(serve_on(addr, store.clone(), &a.auth).await?),
                None => None,
            };
            tracing::info!(events = evs.len(), target_url = %cfg.target, "Sending.");
            let report = Sender::new(cfg)?.with_store(store.clone()).send(&evs).await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            eprintln!(
                "sent {} events: {} delivered (2xx), {} attempts, {} retries, rejected {:?}, undelivered {}{}",
                report.events,
                report.delivered,
                report.attempts,
                report.retries,
                report.rejected,
                report.undelivered.len(),
                if report.disabled {
                    ", endpoint disabled by 410"
                } else {
                    ""
                }
            );
            if let Some(path) = &a.truth_out {
                let truth = store.with(GroundTruth::from_state);
                write_out(Some(path), &serde_json::to_vec_pretty(&truth)?)?;
            }
            if let Some(server) = server {
                tracing::info!("Sending done; still serving until Ctrl-C.");
                server.await?;
            }
            if report.delivered < report.events {
                bail!("{} events undelivered", report.undelivered.len())
            }
            Ok(())
        }
        Cmd::Load {
            target,
            store,
            secret,
            connections,
            duration,
            requests,
            nats,
            pid,
            rounds,
            first,
        } => {
            let secret = Secret::parse(&secret).context("--secret")?;
            let duration = if requests.is_some() {
                duration
            } else {
                duration.or(Some(Duration::from_secs(20)))
            };
            let cfg = LoadConfig {
                target: endpoint(&target, &store),
                secret,
                connections,
                duration,
                requests,
                nats_url: nats,
                first,
                pid,
            };
            if rounds > 1 {
                let r = load::rounds(cfg, rounds).await?;
                println!("{}", serde_json::to_string_pretty(&r)?);
                eprintln!(
                    "{rounds} interleaved rounds: ingest {:.0}/s (range {:.0}-{:.0}), raw JetStream {:.0}/s ({:.0}-{:.0}), ratio median {:.2} (range {:.2}-{:.2}); ingest CPU {} per webhook, peak RSS {}; load generator used {:.0} % of {} cores",
                    r.accepted_per_sec.median,
                    r.accepted_per_sec.min,
                    r.accepted_per_sec.max,
                    r.raw_per_sec.median,
                    r.raw_per_sec.min,
                    r.raw_per_sec.max,
                    r.ratio.median,
                    r.ratio.min,
                    r.ratio.max,
                    r.ingest_cpu_us_per_webhook
                        .map(|u| format!("{u:.1} µs"))
                        .unwrap_or_else(|| "?".into()),
                    r.peak_rss_kib
                        .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
                        .unwrap_or_else(|| "?".into()),
                    r.generator_cpu_share * 100.0,
                    r.cores,
                );
                return Ok(());
            }
            let report = load::run(cfg).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            eprintln!(
                "accepted {:.0}/s ({} of {}), p50 {:.2} ms, p99 {:.2} ms{}{}",
                report.accepted_per_sec,
                report.accepted,
                report.requests,
                report.p50_ms,
                report.p99_ms,
                report
                    .nats_publish_per_sec
                    .map(|r| format!(
                        ", raw JetStream {r:.0}/s, ratio {:.2}",
                        report.ratio_to_raw.unwrap_or(0.0)
                    ))
                    .unwrap_or_default(),
                report
                    .peak_rss_kib
                    .map(|k| format!(", ingest peak RSS {:.1} MiB", k as f64 / 1024.0))
                    .unwrap_or_default(),
            );
            Ok(())
        }
    }
}
