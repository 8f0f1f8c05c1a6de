//! `dead-letter list|show|replay|fix|discard|export`: the API from a terminal. Tables for
//! people, `--json` for scripts, a progress bar on bulk replay.

use crate::config::{Command, ServiceArgs};
use anyhow::{Context, bail};
use clap::Args;
use ledgerline_platform::text::table;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

/// Filters shared by list, replay and export.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Store.
    #[arg(long)]
    pub store: Option<String>,
    /// Stage (normalizer, xero_writer).
    #[arg(long)]
    pub stage: Option<String>,
    /// Reason class (mapping, invalid, xero_validation, ...).
    #[arg(long)]
    pub reason: Option<String>,
    /// Fault code (unknown_tax_code, inactive_account, ...).
    #[arg(long)]
    pub fault: Option<String>,
    /// Status (open, acknowledged, replayed, resolved, discarded, ignored).
    #[arg(long)]
    pub status: Option<String>,
    /// Issue id.
    #[arg(long)]
    pub issue: Option<String>,
    /// Last seen at or after (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Last seen before (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// Text: order number, customer, error or id.
    #[arg(long, short)]
    pub q: Option<String>,
}

impl FilterArgs {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("store", &self.store),
            ("stage", &self.stage),
            ("reason", &self.reason),
            ("fault", &self.fault),
            ("status", &self.status),
            ("issue", &self.issue),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }

    fn json(&self) -> Value {
        Value::Object(
            self.pairs()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v)))
                .collect(),
        )
    }
}

/// `list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Issues instead of entries.
    #[arg(long)]
    pub issues: bool,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `show`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// Entry id.
    pub id: String,
    /// JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// One entry; without it, every replayable entry the filters cover (a bulk replay).
    pub id: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only count what a bulk replay would cover.
    #[arg(long)]
    pub dry_run: bool,
    /// Start a bulk replay without asking.
    #[arg(long, short)]
    pub yes: bool,
    /// JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `fix`.
#[derive(Debug, Clone, Args)]
pub struct FixArgs {
    /// Issue id.
    pub issue: String,
    /// The suggestion to apply (0 is the best).
    #[arg(long, conflicts_with = "rule_file")]
    pub suggestion: Option<usize>,
    /// A mapping-overlay rule (TOML file) to apply instead.
    #[arg(long)]
    pub rule_file: Option<std::path::PathBuf>,
    /// Apply the rule only, replay nothing.
    #[arg(long)]
    pub no_replay: bool,
    /// JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `discard`.
#[derive(Debug, Clone, Args)]
pub struct DiscardArgs {
    /// Entry id.
    pub id: String,
    /// Why (kept in the audit trail).
    #[arg(long)]
    pub reason: String,
}

/// `export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(args: &ServiceArgs) -> anyhow::Result<Self> {
        let token = args
            .api_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            .context("set DEAD_LETTER_TOKEN (or --api-token) to a viewer or operator token")?;
        Ok(Self {
            http: ledgerline_platform::tls::http_client("dead-letter-cli")?,
            base: args.api_url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let r = req.bearer_auth(&self.token).send().await.with_context(|| {
            format!(
                "cannot reach the dead-letter API at {} (DEAD_LETTER_URL)",
                self.base
            )
        })?;
        if r.status().is_success() {
            return Ok(r);
        }
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let msg = body["error"]["message"].as_str().unwrap_or("no details");
        bail!("{status}: {msg}")
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let r = self
            .send(self.http.get(format!("{}{path}", self.base)).query(query))
            .await?;
        Ok(r.json().await?)
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let r = self
            .send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await?;
        Ok(r.json().await?)
    }
}

/// Runs a client subcommand.
pub async fn run(command: Command, args: &ServiceArgs) -> anyhow::Result<()> {
    let api = Api::new(args)?;
    let mut out = std::io::stdout().lock();
    match command {
        Command::Healthcheck => unreachable!("answered before the client starts"),
        Command::List(a) => {
            if a.issues {
                let mut q: Vec<(&str, String)> = Vec::new();
                if let Some(s) = &a.filter.store {
                    q.push(("store", s.clone()));
                }
                if let Some(s) = &a.filter.stage {
                    q.push(("stage", s.clone()));
                }
                let v = api.get("/v1/issues", &q).await?;
                if a.json {
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                } else {
                    let rows: Vec<Vec<String>> = v
                        .as_array()
                        .into_iter()
                        .flatten()
                        .take(a.limit)
                        .map(|i| {
                            vec![
                                s(&i["id"]),
                                s(&i["key"]),
                                i["open"].to_string(),
                                age(i["oldest_open_age_seconds"].as_i64()),
                                i["stores"]
                                    .as_array()
                                    .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","))
                                    .unwrap_or_default(),
                                s(&i["suggestions"][0]["suggested_value"]),
                            ]
                        })
                        .collect();
                    table(
                        &mut out,
                        &["ISSUE", "KEY", "OPEN", "OLDEST", "STORES", "SUGGESTION"],
                        &rows,
                    )?;
                }
            } else {
                let mut q = a.filter.pairs();
                q.push(("limit", a.limit.min(500).to_string()));
                let v = api.get("/v1/entries", &q).await?;
                if a.json {
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                } else {
                    let rows: Vec<Vec<String>> = v["entries"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| {
                            vec![
                                s(&e["id"]),
                                s(&e["status"]),
                                s(&e["stage"]),
                                s(&e["issue_key"]),
                                s(&e["order_number"]),
                                s(&e["last_seen"]),
                                trunc(&s(&e["error"]), 60),
                            ]
                        })
                        .collect();
                    table(
                        &mut out,
                        &[
                            "ID",
                            "STATUS",
                            "STAGE",
                            "ISSUE",
                            "ORDER",
                            "LAST SEEN",
                            "ERROR",
                        ],
                        &rows,
                    )?;
                    writeln!(out, "{} of {} shown", rows.len(), v["total"])?;
                }
            }
        }
        Command::Show(a) => {
            let v = api.get(&format!("/v1/entries/{}", a.id), &[]).await?;
            if a.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                for (k, label) in [
                    ("id", "Entry"),
                    ("status", "Status"),
                    ("issue_key", "Issue"),
                    ("stage", "Stage"),
                    ("reason", "Reason"),
                    ("error", "Error"),
                    ("store", "Store"),
                    ("order_number", "Order"),
                    ("customer", "Customer"),
                    ("subject", "Subject"),
                    ("first_seen", "First seen"),
                    ("last_seen", "Last seen"),
                    ("replay_guard", "Replay guard"),
                ] {
                    writeln!(out, "{label:>13}: {}", s(&v[k]))?;
                }
                writeln!(out, "\nSuggestions:")?;
                for (i, sg) in v["suggestions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    writeln!(
                        out,
                        "  [{i}] {} {} -> {} (score {}): {}",
                        s(&sg["field"]),
                        s(&sg["current_value"]),
                        s(&sg["suggested_value"]),
                        s(&sg["score"]),
                        s(&sg["reason"])
                    )?;
                }
                writeln!(out, "\nAudit trail:")?;
                for e in v["audit"].as_array().into_iter().flatten() {
                    writeln!(
                        out,
                        "  {}  {:<16} {:<18} {}",
                        s(&e["at"]),
                        s(&e["who"]),
                        s(&e["action"]),
                        s(&e["detail"])
                    )?;
                }
                writeln!(
                    out,
                    "\nPayload:\n{}",
                    serde_json::to_string_pretty(&v["payload"])?
                )?;
            }
        }
        Command::Replay(a) => match &a.id {
            Some(id) => {
                let v = api
                    .post(&format!("/v1/entries/{id}/replay"), &Value::Null)
                    .await?;
                if a.json {
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                } else {
                    writeln!(
                        out,
                        "{}: replay {} {} ({}); guarded by {}",
                        s(&v["id"]),
                        v["replay"],
                        s(&v["outcome"]),
                        s(&v["detail"]),
                        s(&v["guard"])
                    )?;
                }
            }
            None => bulk(&api, &a, &mut out).await?,
        },
        Command::Fix(a) => {
            let rule = a
                .rule_file
                .as_ref()
                .map(std::fs::read_to_string)
                .transpose()
                .context("reading the rule file")?;
            if rule.is_none() && a.suggestion.is_none() {
                bail!("give --suggestion N or --rule-file FILE");
            }
            let body = serde_json::json!({
                "suggestion": a.suggestion,
                "rule": rule,
                "no_replay": a.no_replay,
            });
            let v = api
                .post(&format!("/v1/issues/{}/fix", a.issue), &body)
                .await?;
            if a.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                writeln!(
                    out,
                    "Rule {} (overlay revision {}):\n{}",
                    s(&v["overlay_key"]),
                    v["overlay_revision"],
                    s(&v["rule"])
                )?;
                let rows: Vec<Vec<String>> = v["replays"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        vec![
                            s(&r["id"]),
                            s(&r["outcome"]),
                            s(&r["status"]),
                            trunc(&s(&r["detail"]), 70),
                        ]
                    })
                    .collect();
                table(&mut out, &["ENTRY", "OUTCOME", "STATUS", "DETAIL"], &rows)?;
            }
        }
        Command::Discard(a) => {
            let v = api
                .post(
                    &format!("/v1/entries/{}/discard", a.id),
                    &serde_json::json!({ "reason": a.reason }),
                )
                .await?;
            writeln!(out, "{} is {}", s(&v["id"]), s(&v["status"]))?;
        }
        Command::Export(a) => {
            let r = api
                .send(
                    api.http
                        .get(format!("{}/v1/export.csv", api.base))
                        .query(&a.filter.pairs()),
                )
                .await?;
            out.write_all(&r.bytes().await?)?;
        }
    }
    Ok(())
}

async fn bulk(api: &Api, a: &ReplayArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let filter = a.filter.json();
    let dry = api
        .post(
            "/v1/replays",
            &serde_json::json!({ "filter": filter, "dry_run": true }),
        )
        .await?;
    let count = dry["count"].as_u64().unwrap_or(0);
    if a.dry_run || count == 0 {
        writeln!(out, "{count} entries would be replayed.")?;
        return Ok(());
    }
    if !a.yes {
        eprint!("Replay {count} entries? [y/N] ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !line.trim().eq_ignore_ascii_case("y") {
            writeln!(out, "Nothing replayed.")?;
            return Ok(());
        }
    }
    let job = api
        .post("/v1/replays", &serde_json::json!({ "filter": filter }))
        .await?;
    let id = s(&job["id"]);
    let bar = indicatif::ProgressBar::new(job["total"].as_u64().unwrap_or(count));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} replayed {per_sec} {eta} {msg}",
        )
        .expect("a valid template"),
    );
    let cancel = tokio::signal::ctrl_c();
    tokio::pin!(cancel);
    let mut cancelled = false;
    let last = loop {
        let v = api.get(&format!("/v1/replays/{id}"), &[]).await?;
        bar.set_position(v["done"].as_u64().unwrap_or(0));
        bar.set_message(format!("{} failed", v["failed"]));
        if matches!(v["state"].as_str(), Some("finished" | "cancelled")) {
            break v;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = &mut cancel, if !cancelled => {
                cancelled = true;
                bar.set_message("cancelling");
                api.post(&format!("/v1/replays/{id}/cancel"), &Value::Null).await?;
            }
        }
    };
    bar.finish();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&last)?)?;
    } else {
        writeln!(
            out,
            "{} {}: {} replayed, {} failed, {} skipped, {} of {} done.",
            id,
            s(&last["state"]),
            last["replayed"],
            last["failed"],
            last["skipped"],
            last["done"],
            last["total"]
        )?;
    }
    Ok(())
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn trunc(s: &str, n: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    } else {
        s
    }
}

fn age(secs: Option<i64>) -> String {
    match secs {
        None => String::new(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172_800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86_400),
    }
}
