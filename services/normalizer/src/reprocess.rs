//! Reprocessing RAW sequences on request (`ctl.normalizer.reprocess`): how the dead-letter
//! service replays a normalizer-stage entry without appending a copy to RAW.

use crate::pipeline::{Handled, Pipeline};
use async_nats::HeaderMap;
use async_nats::jetstream::Context;
use futures::StreamExt;
use ledgerline_contract::v1::{
    ReprocessOutcome, ReprocessReply, ReprocessRequest, ReprocessResult,
};
use ledgerline_contract::{headers, streams, subjects};
use prost::Message as _;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a request waits for the mapping to read a fix's overlay revision.
const OVERLAY_WAIT: Duration = Duration::from_secs(10);

/// Answers reprocess requests (one queue group across replicas) until `shutdown`.
pub async fn serve(
    client: async_nats::Client,
    js: Context,
    pipeline: Pipeline,
    shutdown: CancellationToken,
) {
    let mut sub = loop {
        match client
            .queue_subscribe(
                subjects::NORMALIZER_REPROCESS,
                subjects::NORMALIZER_REPROCESS_GROUP.to_owned(),
            )
            .await
        {
            Ok(s) => break s,
            Err(error) => {
                tracing::warn!(%error, "Cannot subscribe to reprocess requests yet.");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    };
    loop {
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = shutdown.cancelled() => return,
        };
        let Some(msg) = msg else { return };
        let Some(reply_to) = msg.reply.clone() else {
            continue;
        };
        let reply = match ReprocessRequest::decode(msg.payload.as_ref()) {
            Ok(req) => reprocess(&js, &pipeline, &req).await,
            Err(e) => ReprocessReply {
                results: vec![ReprocessResult {
                    outcome: ReprocessOutcome::Unspecified as i32,
                    detail: format!("not a ReprocessRequest: {e}"),
                    ..Default::default()
                }],
                mapping_revision: String::new(),
            },
        };
        if let Err(error) = client.publish(reply_to, reply.encode_to_vec().into()).await {
            tracing::warn!(%error, "Reprocess reply not sent.");
        }
    }
}

/// Processes each named RAW sequence once more under the current mapping.
pub async fn reprocess(
    js: &Context,
    pipeline: &Pipeline,
    req: &ReprocessRequest,
) -> ReprocessReply {
    let mapping = pipeline.mapping_handle();
    if req.overlay_revision > 0
        && !mapping
            .overlay_at_least(req.overlay_revision, OVERLAY_WAIT)
            .await
    {
        let detail = format!(
            "the mapping has not read overlay revision {} yet",
            req.overlay_revision
        );
        return retry_all(req, &detail, pipeline.mapping().revision.clone());
    }
    let revision = pipeline.mapping().revision.clone();
    let raw = match js.get_stream(streams::RAW.name).await {
        Ok(s) => s,
        Err(e) => return retry_all(req, &format!("RAW: {e}"), revision),
    };
    let mut results = Vec::with_capacity(req.raw_sequences.len());
    for &seq in &req.raw_sequences {
        let stored = match raw.get_raw_message(seq).await {
            Ok(m) => m,
            Err(e) => {
                results.push(ReprocessResult {
                    raw_sequence: seq,
                    outcome: ReprocessOutcome::Missing as i32,
                    detail: e.to_string(),
                    event_ids: vec![],
                });
                continue;
            }
        };
        // A replay is told apart from the original by its own message id, so failing again it
        // is a new dead letter, linked to the entry it replays.
        let mut h = HeaderMap::new();
        for (name, values) in stored.headers.iter() {
            if let Some(v) = values.first() {
                h.insert(name.clone(), v.clone());
            }
        }
        let original = stored
            .headers
            .get(headers::MSG_ID)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_else(|| format!("raw-{seq}"));
        if !req.replay_of.is_empty() {
            h.insert(
                headers::MSG_ID,
                format!("{original}.replay.{}", req.replay).as_str(),
            );
            h.insert(headers::REPLAY_OF, req.replay_of.as_str());
        }
        let subject = stored.subject.to_string();
        let handled = pipeline
            .handle_with_ids(&subject, Some(&h), &stored.payload, seq, 1)
            .await;
        let (outcome, detail, ids) = match handled {
            (Handled::Published { new, .. }, ids) if new > 0 => (
                ReprocessOutcome::Published,
                format!("{new} new canonical events"),
                ids,
            ),
            (Handled::Published { .. }, ids) => (
                ReprocessOutcome::Unchanged,
                "every canonical event already existed".to_owned(),
                ids,
            ),
            (Handled::DeadLettered(reason), _) => (
                ReprocessOutcome::DeadLettered,
                format!("failed again: {}", reason.as_str_name()),
                vec![],
            ),
            (Handled::Retry, _) => (
                ReprocessOutcome::Retry,
                "publishing failed; try again".to_owned(),
                vec![],
            ),
        };
        results.push(ReprocessResult {
            raw_sequence: seq,
            outcome: outcome as i32,
            detail,
            event_ids: ids,
        });
    }
    ReprocessReply {
        results,
        mapping_revision: revision,
    }
}

/// The same answer for every sequence of `req`: not now, try again.
fn retry_all(req: &ReprocessRequest, detail: &str, revision: String) -> ReprocessReply {
    ReprocessReply {
        results: req
            .raw_sequences
            .iter()
            .map(|&s| ReprocessResult {
                raw_sequence: s,
                outcome: ReprocessOutcome::Retry as i32,
                detail: detail.to_owned(),
                event_ids: vec![],
            })
            .collect(),
        mapping_revision: revision,
    }
}
