//! A durable pull-consumer loop with bounded concurrency and a graceful stop: on shutdown it
//! stops pulling, lets the handlers in flight finish, applies their acks, and flushes.

use async_nats::jetstream::AckKind;
use async_nats::jetstream::Message;
use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What to do with a message after handling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done (including "dead-lettered": the DLQ entry is stored, the original is finished).
    Ack,
    /// Transient failure: redeliver after the delay (or the consumer's backoff).
    Nak(Option<Duration>),
    /// Never redeliver. Use only after the message was dead-lettered or is meaningless.
    Term,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Self::Ack => "ack",
            Self::Nak(_) => "nak",
            Self::Term => "term",
        }
    }
}

/// Settings for [`run`].
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Name for logs and metrics (usually the durable name).
    pub name: String,
    /// Handlers running at once.
    pub concurrency: usize,
    /// How long one pull waits for messages before asking again.
    pub pull_expires: Duration,
}

/// Pulls from `consumer` until `shutdown`, running `handler` on each message with at most
/// `concurrency` at once, and acks, naks or terms by its [`Outcome`].
///
/// Pulls ask only for as many messages as there are free handler slots, so nothing sits
/// prefetched (and unacked) when a stop comes.
pub async fn run<H, F>(
    client: async_nats::Client,
    consumer: PullConsumer,
    config: RunConfig,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Message) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Outcome> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut error_delay = Duration::from_millis(100);
    'pull: while !shutdown.is_cancelled() {
        // Wait for a free slot (or the stop), then ask for as many messages as are free.
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.cancelled() => break,
        };
        let want = slots.available_permits() + 1;
        let batch = consumer
            .batch()
            .max_messages(want)
            .expires(config.pull_expires)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => {
                error_delay = Duration::from_millis(100);
                b
            }
            Err(error) => {
                drop(first);
                tracing::warn!(consumer = %config.name, %error, "Pull failed; retrying.");
                tokio::select! {
                    _ = tokio::time::sleep(error_delay) => {}
                    _ = shutdown.cancelled() => break,
                }
                error_delay = (error_delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let mut permit = Some(first);
        loop {
            let next = tokio::select! {
                m = batch.next() => m,
                _ = shutdown.cancelled() => {
                    // Messages of this pull not yet started go back at once, not after ack_wait.
                    drain_and_nak(&mut batch).await;
                    break 'pull;
                }
            };
            let Some(next) = next else { break };
            let message = match next {
                Ok(m) => m,
                Err(error) => {
                    tracing::warn!(consumer = %config.name, %error, "Pull stream error.");
                    break;
                }
            };
            let p = match permit.take() {
                Some(p) => p,
                None => match slots.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break 'pull,
                },
            };
            let h = handler.clone();
            let name = config.name.clone();
            tasks.spawn(async move {
                let outcome = h(message.clone()).await;
                metrics::counter!("ledgerline_consumer_messages_total", "consumer" => name.clone(), "outcome" => outcome.label()).increment(1);
                let kind = match outcome {
                    Outcome::Ack => AckKind::Ack,
                    Outcome::Nak(d) => AckKind::Nak(d),
                    Outcome::Term => AckKind::Term,
                };
                if let Err(error) = message.ack_with(kind).await {
                    tracing::warn!(consumer = %name, %error, "Ack failed; the message will be redelivered.");
                }
                drop(p);
            });
            // Reap finished handlers so the set does not grow without bound.
            while tasks.try_join_next().is_some() {}
        }
    }
    while tasks.join_next().await.is_some() {}
    // Bounded: with NATS gone a flush never completes, and unflushed acks only mean redelivery.
    match tokio::time::timeout(crate::shutdown::FINISH_GRACE, client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(consumer = %config.name, %error, "Flush after stop failed.")
        }
        Err(_) => tracing::warn!(consumer = %config.name, "Flush after stop timed out."),
    }
    tracing::info!(consumer = %config.name, "Consumer stopped.");
}

/// Waits until the contract's durable consumer `spec` exists (the service's topology task
/// declares it), then [`run`]s it with `concurrency` handlers until `shutdown`.
pub async fn run_durable<H, F>(
    client: async_nats::Client,
    spec: &ledgerline_contract::consumers::ConsumerSpec,
    concurrency: usize,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Message) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Outcome> + Send + 'static,
{
    let js = crate::nats::jetstream(&client);
    let consumer = loop {
        match js.get_stream(spec.stream).await {
            Ok(stream) => {
                // Created here when missing (a consumer of a tenant discovered at run time is
                // in no topology list), and never updated here: an operator's change to an
                // existing consumer stands.
                use async_nats::jetstream::context::ConsumerInfoErrorKind;
                if let Err(e) = stream.consumer_info(&spec.durable).await
                    && matches!(e.kind(), ConsumerInfoErrorKind::NotFound)
                {
                    let _ = crate::nats::ensure_consumer(&js, spec).await;
                }
                match stream
                    .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&spec.durable)
                    .await
                {
                    Ok(c) => break c,
                    Err(error) => {
                        tracing::debug!(%error, consumer = %spec.durable, "Consumer not ready yet.")
                    }
                }
            }
            Err(error) => tracing::debug!(%error, stream = spec.stream, "Stream not ready yet."),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.cancelled() => return,
        }
    };
    let config = RunConfig {
        name: spec.durable.clone(),
        concurrency,
        pull_expires: Duration::from_secs(2),
    };
    run(client, consumer, config, shutdown, handler).await;
}

async fn drain_and_nak(batch: &mut async_nats::jetstream::consumer::pull::Batch) {
    let deadline = tokio::time::sleep(Duration::from_millis(200));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            m = batch.next() => match m {
                Some(Ok(m)) => { let _ = m.ack_with(AckKind::Nak(None)).await; }
                _ => return,
            },
            _ = &mut deadline => return,
        }
    }
}
