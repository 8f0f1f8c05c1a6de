//! Benchmark load: pre-signed unique copies of the contract's `sales_order.created.json`, driven
//! over N concurrent connections; optionally the raw JetStream publish rate of same-size
//! messages with the same number in flight, for comparison. A benchmark, not a test.
//!
//! The generator shares the machine with the server it measures, so it is kept cheap the way
//! wrk is: each request is serialised once, before the clock starts, and sent as bytes over a
//! keep-alive HTTP/1.1 connection; answers are parsed with `httparse`.

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use ledgerline_platform::standard_webhooks::{self, Secret, unix_now};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The contract's example body, the payload every copy is made from.
pub const EXAMPLE_BODY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/clarity/sales_order.created.json"
));
const EXAMPLE_ID: &str = "evt_01JD7Q0K4V9S3T6XWZ2M8N5B1C";

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Endpoint URL.
    pub target: String,
    /// The store's secret.
    pub secret: Secret,
    /// Concurrent connections (each with one request in flight).
    pub connections: usize,
    /// Stop after this long ...
    pub duration: Option<Duration>,
    /// ... or after this many requests (pre-signed up front).
    pub requests: Option<usize>,
    /// Also measure raw JetStream publishes here.
    pub nats_url: Option<String>,
    /// The first copy's number: rounds of one run use ranges of their own, so none is a
    /// duplicate (which the ingest would answer without storing).
    pub first: u64,
    /// Read the ingest's peak RSS (VmHWM) from /proc/<pid>/status at the end, and its CPU time.
    pub pid: Option<u32>,
}

/// Results.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Requests sent.
    pub requests: u64,
    /// 2xx answers.
    pub accepted: u64,
    /// Other answers and transport errors.
    pub failed: u64,
    /// Wall time of the HTTP phase, seconds.
    pub seconds: f64,
    /// Accepted per second.
    pub accepted_per_sec: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Body size, bytes.
    pub body_bytes: usize,
    /// Raw JetStream publishes acknowledged per second, when measured.
    pub nats_publish_per_sec: Option<f64>,
    /// `accepted_per_sec / nats_publish_per_sec` (target ≥ 0.5).
    pub ratio_to_raw: Option<f64>,
    /// Peak RSS of `--pid` in KiB (VmHWM).
    pub peak_rss_kib: Option<u64>,
    /// Copies signed during the run because the pre-signed pool ran out.
    pub signed_during_run: u64,
    /// CPU seconds this load generator used in the HTTP phase (it shares the cores with what
    /// it measures).
    pub generator_cpu_seconds: f64,
    /// CPU seconds `--pid` used in the HTTP phase.
    pub server_cpu_seconds: Option<f64>,
}

/// CPU seconds (user + system) a process has used, from /proc/<pid>/stat (Linux; USER_HZ is
/// 100 there).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// A unique copy of the example: its id replaced by one of the same length.
pub fn unique_body(n: u64) -> (String, Bytes) {
    let id = format!("evt_LOAD{:022}", n);
    debug_assert_eq!(id.len(), EXAMPLE_ID.len());
    (
        id.clone(),
        Bytes::from(EXAMPLE_BODY.replacen(EXAMPLE_ID, &id, 1)),
    )
}

/// Where requests go: the socket address, and the `Host` and path of the request line.
#[derive(Debug, Clone)]
struct Target {
    addr: String,
    host: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(url).with_context(|| format!("target URL {url:?}"))?;
        anyhow::ensure!(
            url.scheme() == "http",
            "the load mode speaks plain http only"
        );
        let host = url.host_str().context("target URL has no host")?.to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        Ok(Self {
            addr: format!("{host}:{port}"),
            host: format!("{host}:{port}"),
            path,
        })
    }
}

/// One signed request, serialised: request line, headers and body.
fn signed_request(target: &Target, secret: &Secret, n: u64, ts: i64) -> Bytes {
    let (id, body) = unique_body(n);
    let sig = standard_webhooks::sign(secret, &id, ts, &body);
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n{}: {id}\r\n\
         {}: {ts}\r\n{}: {sig}\r\n{}: sales_order.created\r\n{}: 1\r\n\
         content-length: {}\r\n\r\n",
        target.path,
        target.host,
        standard_webhooks::HEADER_ID,
        standard_webhooks::HEADER_TIMESTAMP,
        standard_webhooks::HEADER_SIGNATURE,
        crate::event::HEADER_TOPIC,
        crate::event::HEADER_ATTEMPT,
        body.len(),
    );
    let mut req = BytesMut::with_capacity(head.len() + body.len());
    req.extend_from_slice(head.as_bytes());
    req.extend_from_slice(&body);
    req.freeze()
}

fn presign(target: &Target, secret: &Secret, from: u64, count: usize, ts: i64) -> Vec<Bytes> {
    (0..count as u64)
        .map(|i| signed_request(target, secret, from + i, ts))
        .collect()
}

/// A keep-alive HTTP/1.1 connection that sends pre-serialised requests one at a time.
struct Connection {
    addr: String,
    stream: Option<TcpStream>,
    buf: BytesMut,
}

impl Connection {
    fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            stream: None,
            buf: BytesMut::with_capacity(4096),
        }
    }

    /// Sends `request` and reads the whole answer; returns its status. Any transport error drops
    /// the connection (the next request reconnects) and is returned.
    async fn send(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        let result = self.exchange(request).await;
        if !matches!(result, Ok((_, true))) {
            self.stream = None;
        }
        result.map(|(status, _)| status)
    }

    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<(u16, bool)> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
            self.buf.clear();
        }
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(request).await?;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = response.parse(&self.buf)? {
                let status = response.code.unwrap_or(0);
                let mut body_len = 0usize;
                let mut keep_alive = true;
                for h in response.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        body_len = std::str::from_utf8(h.value)?.trim().parse()?;
                    } else if h.name.eq_ignore_ascii_case("connection")
                        && h.value.eq_ignore_ascii_case(b"close")
                    {
                        keep_alive = false;
                    }
                }
                while self.buf.len() < head_len + body_len {
                    if stream.read_buf(&mut self.buf).await? == 0 {
                        anyhow::bail!("connection closed mid-answer");
                    }
                }
                let _ = self.buf.split_to(head_len + body_len);
                return Ok((status, keep_alive));
            }
            if stream.read_buf(&mut self.buf).await? == 0 {
                anyhow::bail!("connection closed before an answer");
            }
        }
    }
}

/// Runs the HTTP phase, then (with `nats_url`) the JetStream phase for the same duration or count.
pub async fn run(cfg: LoadConfig) -> anyhow::Result<LoadReport> {
    let conns = cfg.connections.max(1);
    let target = Target::parse(&cfg.target)?;
    // Pre-sign the exact count, or for a duration about 25,000/s (at most 400k copies, ~1.9 GiB);
    // a run that outpaces the pool signs further copies on the fly and says so. Timestamps stay
    // valid for 300 s, so longer runs are refused.
    if cfg.duration.is_some_and(|d| d > Duration::from_secs(280)) {
        anyhow::bail!(
            "--duration must be under 280 s: pre-signed timestamps must stay in the ±300 s window"
        );
    }
    let count = match cfg.requests {
        Some(n) => n,
        None => {
            let secs = cfg
                .duration
                .unwrap_or(Duration::from_secs(20))
                .as_secs_f64();
            ((secs * 25_000.0) as usize).clamp(1000, 400_000)
        }
    };
    let unbounded = cfg.requests.is_none();
    let on_the_fly = Arc::new(AtomicU64::new(0));
    let signed_at = unix_now();
    let signed = Arc::new(presign(&target, &cfg.secret, cfg.first, count, signed_at));
    let body_bytes = unique_body(0).1.len();
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = cfg.duration.map(|d| Instant::now() + d);
    let me = std::process::id();
    let (cpu0, server0) = (cpu_seconds(me), cfg.pid.and_then(cpu_seconds));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (signed, next, accepted, failed, target) = (
            signed.clone(),
            next.clone(),
            accepted.clone(),
            failed.clone(),
            target.clone(),
        );
        let (secret, on_the_fly, first) = (cfg.secret.clone(), on_the_fly.clone(), cfg.first);
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::new(&target.addr);
            let mut hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let extra;
                let s = match signed.get(i) {
                    Some(s) => s,
                    None if unbounded => {
                        on_the_fly.fetch_add(1, Ordering::Relaxed);
                        extra = signed_request(&target, &secret, first + i as u64, signed_at);
                        &extra
                    }
                    None => break,
                };
                let t0 = Instant::now();
                let ok = match tokio::time::timeout(Duration::from_secs(30), conn.send(s)).await {
                    Ok(answer) => matches!(answer, Ok(200..=299)),
                    Err(_) => {
                        // Abandoned mid-exchange: the next request starts on a fresh connection.
                        conn.stream = None;
                        false
                    }
                };
                let _ = hist.record((t0.elapsed().as_micros() as u64).max(1));
                if ok {
                    accepted.fetch_add(1, Ordering::Relaxed)
                } else {
                    failed.fetch_add(1, Ordering::Relaxed)
                };
            }
            hist
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for t in tasks {
        hist.add(t.await?).context("merging histograms")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let generator_cpu_seconds = cpu_seconds(me).zip(cpu0).map_or(0.0, |(b, a)| b - a);
    let server_cpu_seconds = cfg
        .pid
        .and_then(cpu_seconds)
        .zip(server0)
        .map(|(b, a)| b - a);
    let accepted = accepted.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    let accepted_per_sec = accepted as f64 / seconds.max(1e-9);
    let mut report = LoadReport {
        requests: accepted + failed,
        accepted,
        failed,
        seconds,
        accepted_per_sec,
        p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        body_bytes,
        nats_publish_per_sec: None,
        ratio_to_raw: None,
        peak_rss_kib: cfg.pid.and_then(peak_rss_kib),
        signed_during_run: on_the_fly.load(Ordering::Relaxed),
        generator_cpu_seconds,
        server_cpu_seconds,
    };
    if let Some(url) = &cfg.nats_url {
        let rate = nats_publish_rate(url, body_bytes, conns, cfg.duration, cfg.requests).await?;
        report.nats_publish_per_sec = Some(rate);
        report.ratio_to_raw = Some(accepted_per_sec / rate.max(1e-9));
    }
    Ok(report)
}

/// VmHWM of a process, in KiB (Linux).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The honest baseline: the best raw JetStream publish rate async-nats reaches here. Same-size
/// messages to a temporary file-backed stream, a window of `in_flight` outstanding acks (as an
/// ingest at that many connections could keep), every ack awaited, and nothing the server must
/// do beyond storing them (no message ids to deduplicate, no headers). Returns acks per second;
/// the stream is deleted afterwards.
pub async fn nats_publish_rate(
    url: &str,
    size: usize,
    in_flight: usize,
    duration: Option<Duration>,
    requests: Option<usize>,
) -> anyhow::Result<f64> {
    let client = async_nats::connect(url)
        .await
        .context("connecting to NATS")?;
    let js = async_nats::jetstream::new(client);
    let tag = format!("{:x}", std::process::id() as u64 ^ unix_now() as u64);
    let name = format!("CLARITY_SIM_BENCH_{tag}");
    let subject = format!("clarity-sim.bench.{tag}");
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![subject.clone()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .context("creating the bench stream")?;
    let payload = Bytes::from(vec![b'x'; size]);
    let deadline = duration.map(|d| Instant::now() + d);
    let limit = requests.unwrap_or(usize::MAX);
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    let (mut sent, mut acked) = (0usize, 0u64);
    let result: anyhow::Result<()> = async {
        loop {
            let more = sent < limit && deadline.is_none_or(|d| Instant::now() < d);
            if more && pending.len() < in_flight {
                let ack = js.publish(subject.clone(), payload.clone()).await?;
                pending.push(ack.into_future());
                sent += 1;
                continue;
            }
            match pending.next().await {
                Some(r) => {
                    r?;
                    acked += 1;
                }
                None => break,
            }
        }
        Ok(())
    }
    .await;
    let secs = started.elapsed().as_secs_f64();
    let _ = js.delete_stream(&name).await;
    result?;
    Ok(acked as f64 / secs.max(1e-9))
}

/// Empties the RAW stream the ingest stores into (between measured phases only).
async fn purge_raw(js: &async_nats::jetstream::Context) -> anyhow::Result<()> {
    let name = ledgerline_contract::streams::RAW.name;
    js.get_stream(name)
        .await
        .with_context(|| format!("finding the {name} stream"))?
        .purge()
        .await
        .with_context(|| format!("purging the {name} stream"))?;
    Ok(())
}

/// Median, lowest and highest of a set of figures.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    /// The median.
    pub median: f64,
    /// The lowest.
    pub min: f64,
    /// The highest.
    pub max: f64,
}

impl Spread {
    /// Of `values` (none: all zero).
    pub fn of(values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return Self {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Self {
            median,
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

/// One interleaved round: the raw baseline, then the ingest, back to back.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// Raw JetStream publishes acknowledged per second.
    pub raw_per_sec: f64,
    /// The ingest's round.
    pub ingest: LoadReport,
    /// `ingest.accepted_per_sec / raw_per_sec`.
    pub ratio: f64,
}

/// Interleaved rounds (raw, ingest, raw, ingest, ...), so that a machine's drift touches both.
#[derive(Debug, Clone, Serialize)]
pub struct RoundsReport {
    /// Each round.
    pub rounds: Vec<Round>,
    /// Raw publishes per second.
    pub raw_per_sec: Spread,
    /// Accepted webhooks per second.
    pub accepted_per_sec: Spread,
    /// Ingest over raw, per round.
    pub ratio: Spread,
    /// The load generator's CPU, as a share of the machine's cores over the HTTP phases.
    pub generator_cpu_share: f64,
    /// The ingest's CPU time per accepted webhook, in microseconds (with `--pid`).
    pub ingest_cpu_us_per_webhook: Option<f64>,
    /// Peak RSS of `--pid` in KiB at the end.
    pub peak_rss_kib: Option<u64>,
    /// Cores on this machine.
    pub cores: usize,
}

/// `n` interleaved rounds against `cfg` (its `nats_url` is required: the raw baseline).
pub async fn rounds(cfg: LoadConfig, n: usize) -> anyhow::Result<RoundsReport> {
    let url = cfg
        .nats_url
        .clone()
        .context("rounds need --nats for the raw baseline")?;
    let body_bytes = unique_body(0).1.len();
    let conns = cfg.connections.max(1);
    let mut out = Vec::new();
    // Each round's copies get numbers of their own (none is a duplicate).
    let stride = 1_000_000_000u64;
    // A warm-up of each side, not counted: the phase that would otherwise run first meets an
    // empty stream and cold connections (raw measured up to 1.6x its later rounds that way).
    let warm = cfg.duration.map(|d| d / 4);
    let warm_requests = cfg.requests.map(|r| r / 4);
    nats_publish_rate(&url, body_bytes, conns, warm, warm_requests).await?;
    run(LoadConfig {
        nats_url: None,
        first: cfg.first + n.max(1) as u64 * stride,
        duration: warm,
        requests: warm_requests,
        ..cfg.clone()
    })
    .await?;
    let js = async_nats::jetstream::new(
        async_nats::connect(&url)
            .await
            .context("connecting to NATS")?,
    );
    for i in 0..n.max(1) {
        // Each phase starts on an empty stream: the raw phase on one of its own, the ingest's
        // on a purged RAW. Otherwise the store grows by about 2 GB a round and the page
        // cache's writeback, not either side's own cost, decides which phase looks faster.
        let raw = nats_publish_rate(&url, body_bytes, conns, cfg.duration, cfg.requests).await?;
        purge_raw(&js).await?;
        let ingest = run(LoadConfig {
            nats_url: None,
            first: cfg.first + i as u64 * stride,
            ..cfg.clone()
        })
        .await?;
        eprintln!(
            "round {}: raw {raw:.0}/s, ingest {:.0}/s, ratio {:.2}",
            i + 1,
            ingest.accepted_per_sec,
            ingest.accepted_per_sec / raw.max(1e-9)
        );
        out.push(Round {
            raw_per_sec: raw,
            ratio: ingest.accepted_per_sec / raw.max(1e-9),
            ingest,
        });
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wall: f64 = out.iter().map(|r| r.ingest.seconds).sum();
    let gen_cpu: f64 = out.iter().map(|r| r.ingest.generator_cpu_seconds).sum();
    let accepted: u64 = out.iter().map(|r| r.ingest.accepted).sum();
    let server_cpu: Option<f64> = out.iter().map(|r| r.ingest.server_cpu_seconds).sum();
    Ok(RoundsReport {
        raw_per_sec: Spread::of(&out.iter().map(|r| r.raw_per_sec).collect::<Vec<_>>()),
        accepted_per_sec: Spread::of(
            &out.iter()
                .map(|r| r.ingest.accepted_per_sec)
                .collect::<Vec<_>>(),
        ),
        ratio: Spread::of(&out.iter().map(|r| r.ratio).collect::<Vec<_>>()),
        generator_cpu_share: gen_cpu / (wall * cores as f64).max(1e-9),
        ingest_cpu_us_per_webhook: server_cpu.map(|c| c * 1e6 / (accepted.max(1) as f64)),
        peak_rss_kib: cfg.pid.and_then(peak_rss_kib),
        cores,
        rounds: out,
    })
}
