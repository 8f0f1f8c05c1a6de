//! `xero-writer connect`: the first consent for `XERO_GRANT_TYPE=authorization_code`.
//!
//! Prints Xero's authorize URL, takes the redirect (a local listener, a pasted URL, or `--code`),
//! checks `state`, exchanges the code at `/connect/token`, asks `GET /connections` which
//! organisation it reached, and stores the token set under `ac.<tenant>` in XERO_TOKENS. Running
//! writers watch that key, so a paused tenant resumes without a restart.

use crate::config::ConnectArgs;
use crate::{Config, TenantConfig};
use anyhow::{Context as _, anyhow, bail};
use ledgerline_xero_client::oauth::{self, TokenSet};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use tokio::net::TcpListener;

/// Where the authorization code comes from.
#[derive(Debug)]
enum Source {
    Listener(TcpListener),
    Paste,
    Code(SecretString),
}

/// A consent in progress: show [`Pending::authorize_url`], then [`Pending::finish`].
#[derive(Debug)]
pub struct Pending {
    authorize_url: String,
    redirect_uri: String,
    state: String,
    source: Source,
    wait: Duration,
    tenant: Option<String>,
}

/// What `connect` stored.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The tenant whose token set was stored.
    pub tenant: String,
    /// Its organisation name.
    pub tenant_name: String,
    /// Every tenant the consent reached.
    pub reached: Vec<String>,
}

/// Binds the redirect listener (unless `--code`/`--paste`) and builds the authorize URL.
pub async fn prepare(config: &Config, args: &ConnectArgs) -> anyhow::Result<Pending> {
    let (source, listen_uri) = if let Some(code) = &args.code {
        (Source::Code(code.clone()), None)
    } else if args.paste {
        (Source::Paste, None)
    } else {
        let listener = TcpListener::bind(&args.redirect_listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.redirect_listen))?;
        let uri = format!("http://{}/callback", listener.local_addr()?);
        (Source::Listener(listener), Some(uri))
    };
    let redirect_uri = args
        .redirect_uri
        .clone()
        .or(listen_uri)
        .unwrap_or_else(|| format!("http://{}/callback", args.redirect_listen));
    let state = uuid::Uuid::new_v4().simple().to_string();
    let url = reqwest::Url::parse_with_params(
        &config.xero.authorize_url,
        &[
            ("response_type", "code"),
            ("client_id", config.xero.client_id.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", config.xero.scopes.as_str()),
            ("state", state.as_str()),
        ],
    )
    .with_context(|| format!("XERO_AUTHORIZE_URL {:?}", config.xero.authorize_url))?;
    Ok(Pending {
        authorize_url: url.to_string(),
        redirect_uri,
        state,
        source,
        wait: args.wait,
        tenant: args.tenant.clone().map(|t| t.to_ascii_lowercase()),
    })
}

/// The query parameters of a redirected URL (or of a bare query string).
fn params(text: &str) -> HashMap<String, String> {
    let text = text.trim();
    let url = reqwest::Url::parse(text).or_else(|_| {
        reqwest::Url::parse(&format!(
            "http://pasted.invalid/?{}",
            text.trim_start_matches('?')
        ))
    });
    url.map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

impl Pending {
    /// The URL the operator opens to consent.
    pub fn authorize_url(&self) -> &str {
        &self.authorize_url
    }

    /// The redirect URI the code is issued for.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits for the code, exchanges it and stores the token set.
    pub async fn finish(self, config: &Config) -> anyhow::Result<Connected> {
        let code = match self.source {
            Source::Code(c) => c,
            Source::Listener(listener) => {
                let q = tokio::time::timeout(self.wait, receive(listener, &self.state))
                    .await
                    .map_err(|_| anyhow!("no redirect from Xero within {:?}", self.wait))??;
                code_of(&q, &self.state)?
            }
            Source::Paste => {
                eprintln!("Paste the URL your browser was redirected to, then Enter:");
                let read = tokio::task::spawn_blocking(|| {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).map(|_| line)
                });
                let line = tokio::time::timeout(self.wait, read)
                    .await
                    .map_err(|_| anyhow!("nothing pasted within {:?}", self.wait))???;
                if line.trim().is_empty() {
                    bail!("standard input ended before a URL was pasted");
                }
                code_of(&params(&line), &self.state)?
            }
        };
        let endpoint = config.xero.endpoint("ledgerline-xero-writer")?;
        let set = endpoint
            .grant(&[
                ("grant_type", "authorization_code"),
                ("code", code.expose_secret()),
                ("redirect_uri", &self.redirect_uri),
            ])
            .await
            .map_err(|e| anyhow!("exchanging the code: {e}"))?;
        let list = endpoint
            .connections_with(&set.access_token)
            .await
            .map_err(|e| anyhow!("GET /connections: {e}"))?;
        let reached: Vec<(String, String)> = list
            .iter()
            .filter_map(|c| {
                let id = c.get("tenantId").and_then(Value::as_str)?;
                let name = c.get("tenantName").and_then(Value::as_str).unwrap_or("");
                Some((id.to_ascii_lowercase(), name.to_owned()))
            })
            .collect();
        let (tenant, tenant_name) = choose(&reached, self.tenant.as_deref(), &config.tenants)?;
        store(config, &tenant, &set).await?;
        Ok(Connected {
            tenant,
            tenant_name,
            reached: reached.into_iter().map(|(t, _)| t).collect(),
        })
    }
}

/// Serves the redirect URI until a request brings `code` (or `error`) with our `state`.
async fn receive(listener: TcpListener, state: &str) -> anyhow::Result<HashMap<String, String>> {
    use axum::extract::Query;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<HashMap<String, String>>(4);
    let want = state.to_owned();
    let app = axum::Router::new().fallback(move |Query(q): Query<HashMap<String, String>>| {
        let tx = tx.clone();
        let ours = q.get("state") == Some(&want);
        async move {
            if !ours {
                return "This is not the answer to the consent Ledgerline asked for (state differs).";
            }
            let _ = tx.send(q).await;
            "Xero answered Ledgerline; you can close this tab."
        }
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    });
    let q = rx.recv().await;
    stop.cancel();
    let _ = server.await;
    q.ok_or_else(|| anyhow!("the redirect listener stopped"))
}

/// The code of a redirect, after checking `state` and Xero's `error`.
fn code_of(q: &HashMap<String, String>, state: &str) -> anyhow::Result<SecretString> {
    if let Some(e) = q.get("error") {
        if e == "invalid_scope" {
            bail!("{}", ledgerline_xero_client::plan::INVALID_SCOPE_HELP);
        }
        bail!("Xero refused the consent: {e}");
    }
    let code = q
        .get("code")
        .ok_or_else(|| anyhow!("the redirect carries no code"))?;
    if q.get("state").map(String::as_str) != Some(state) {
        bail!("the redirect's state does not match this consent (a stale or forged redirect)");
    }
    Ok(SecretString::from(code.clone()))
}

/// The tenant to store: `--tenant`, else the one configured tenant the consent reached, else
/// the only tenant it reached. One token set per grant: two keys sharing one refresh token
/// would refresh the grant from two places, which Xero answers with `invalid_grant`.
fn choose(
    reached: &[(String, String)],
    wanted: Option<&str>,
    configured: &[TenantConfig],
) -> anyhow::Result<(String, String)> {
    let names = || {
        reached
            .iter()
            .map(|(t, n)| format!("{t} ({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(w) = wanted {
        return reached
            .iter()
            .find(|(t, _)| t == w)
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "the consent did not reach tenant {w}; it reached: {}",
                    names()
                )
            });
    }
    let configured: Vec<_> = reached
        .iter()
        .filter(|(t, _)| configured.iter().any(|c| &c.tenant == t))
        .collect();
    match (configured.as_slice(), reached) {
        ([one], _) => Ok((*one).clone()),
        ([], [one]) => Ok(one.clone()),
        ([], []) => bail!("the consent reached no organisation"),
        _ => bail!(
            "the consent reached several organisations; name one with --tenant: {}",
            names()
        ),
    }
}

/// Stores `set` for `tenant`, replacing whatever was there (a revoked set included).
async fn store(config: &Config, tenant: &str, set: &TokenSet) -> anyhow::Result<u64> {
    if !ledgerline_contract::is_valid_token(tenant) {
        bail!("tenant id {tenant:?} is not usable as a key");
    }
    let client = ledgerline_platform::nats::connect(&config.nats, "xero-writer-connect").await?;
    let js = ledgerline_platform::nats::jetstream(&client);
    let spec = &ledgerline_contract::buckets::XERO_TOKENS;
    ledgerline_platform::nats::ensure_bucket(&js, spec, config.nats.limits().replicas).await?;
    let kv = js.get_key_value(spec.bucket).await?;
    let bytes = serde_json::to_vec(set)?;
    let rev = kv.put(oauth::key(tenant), bytes.into()).await?;
    client.flush().await.ok();
    Ok(rev)
}

/// The `connect` subcommand: prints the URL, waits, reports.
pub async fn run_command(config: Config, args: ConnectArgs) -> anyhow::Result<()> {
    if config.xero.grant_type != crate::GrantType::AuthorizationCode {
        eprintln!(
            "Note: XERO_GRANT_TYPE is not authorization_code; the writer will not use this token set until it is."
        );
    }
    let pending = prepare(&config, &args).await?;
    println!("Asking Xero for these scopes: {}", config.xero.scopes);
    println!(
        "Open this URL to connect Ledgerline to Xero:\n\n{}\n",
        pending.authorize_url()
    );
    if matches!(pending.source, Source::Listener(_)) {
        println!(
            "Waiting for the redirect to {} (or run again with --paste on a headless machine).",
            pending.redirect_uri()
        );
    }
    let done = pending.finish(&config).await?;
    println!(
        "Connected tenant {} ({}); token set stored in {}. Running writers resume it now.",
        done.tenant,
        done.tenant_name,
        ledgerline_contract::buckets::XERO_TOKENS.bucket
    );
    if done.reached.len() > 1 {
        println!(
            "The consent also reached: {}. Run connect once per tenant (with --tenant).",
            done.reached
                .iter()
                .filter(|t| **t != done.tenant)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_parsed_and_checked() {
        let q = params("http://127.0.0.1:5081/callback?code=abc&state=s1");
        assert_eq!(code_of(&q, "s1").unwrap().expose_secret(), "abc");
        assert!(code_of(&q, "s2").is_err());
        let q = params("code=abc&state=s1");
        assert!(code_of(&q, "s1").is_ok());
        assert!(code_of(&params("?error=access_denied&state=s1"), "s1").is_err());
        let scope = code_of(&params("?error=invalid_scope&state=s1"), "s1").unwrap_err();
        assert!(scope.to_string().contains("granular"), "{scope}");
    }

    #[test]
    fn one_tenant_is_chosen() {
        let reached = vec![
            ("a".to_owned(), "A".to_owned()),
            ("b".to_owned(), "B".to_owned()),
        ];
        assert!(choose(&reached, None, &[]).is_err());
        assert_eq!(choose(&reached, Some("b"), &[]).unwrap().0, "b");
        let cfg = vec![TenantConfig {
            tenant: "a".into(),
            stores: vec!["main".into()],
        }];
        assert_eq!(choose(&reached, None, &cfg).unwrap().0, "a");
        assert_eq!(choose(&reached[..1], None, &[]).unwrap().0, "a");
    }
}
