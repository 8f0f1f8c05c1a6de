//! `ctl.normalizer.reprocess`: the dead-letter service's way to replay a normalizer-stage entry
//! without appending to RAW.

use crate::helpers::*;
use ledgerline_contract::v1::{
    DeadLetter, ReprocessOutcome, ReprocessReply, ReprocessRequest, ReprocessResult,
};
use ledgerline_contract::{buckets, headers, subjects};
use prost::Message;

async fn reprocess(stack: &Stack, req: ReprocessRequest) -> ReprocessReply {
    let client = async_nats::connect(stack.nats.url()).await.unwrap();
    let reply = client
        .request(subjects::NORMALIZER_REPROCESS, req.encode_to_vec().into())
        .await
        .expect("the normalizer answers");
    ReprocessReply::decode(reply.payload).unwrap()
}

fn only(reply: &ReprocessReply) -> &ReprocessResult {
    assert_eq!(reply.results.len(), 1, "{reply:?}");
    &reply.results[0]
}

#[tokio::test]
async fn a_replay_fails_again_visibly_then_goes_through_after_the_fix_exactly_once() {
    let stack = Stack::start(&[]).await;
    stack
        .publish_raw(
            "evt_t",
            "sales_order.created",
            example("err_unknown_tax_code.json"),
        )
        .await;
    assert!(eventually(WAIT, || async { stack.count("DLQ").await == 1 }).await);
    let first = DeadLetter::decode(stack.messages("DLQ").await[0].payload.clone()).unwrap();
    let seq = first.original_sequence;

    // Unfixed, the replay fails again, and that failure is a new dead letter linked to the entry.
    let r = reprocess(
        &stack,
        ReprocessRequest {
            raw_sequences: vec![seq],
            replay_of: first.id.clone(),
            replay: 1,
            overlay_revision: 0,
        },
    )
    .await;
    assert_eq!(only(&r).outcome(), ReprocessOutcome::DeadLettered, "{r:?}");
    assert!(eventually(WAIT, || async { stack.count("DLQ").await == 2 }).await);
    let again = DeadLetter::decode(stack.messages("DLQ").await[1].payload.clone()).unwrap();
    assert_ne!(again.id, first.id);
    assert_eq!(
        again.original_headers.get(headers::REPLAY_OF),
        Some(&first.id)
    );
    assert_eq!(
        again
            .original_headers
            .get(headers::MSG_ID)
            .map(String::as_str),
        Some("evt_t.replay.1")
    );
    assert_eq!(stack.count("RAW").await, 1, "nothing appended to RAW");

    // The suggestion's rule, as the dead-letter service's fix writes it.
    let kv = stack
        .js
        .get_key_value(buckets::MAPPING_OVERLAY.bucket)
        .await
        .unwrap();
    let rule = first.suggestions[0].rule.clone();
    let revision = kv.put("dlq-fix-gst12", rule.into()).await.unwrap();
    let r = reprocess(
        &stack,
        ReprocessRequest {
            raw_sequences: vec![seq],
            replay_of: first.id.clone(),
            replay: 2,
            overlay_revision: revision,
        },
    )
    .await;
    let res = only(&r);
    assert_eq!(res.outcome(), ReprocessOutcome::Published, "{r:?}");
    assert!(!res.event_ids.is_empty());
    assert_eq!(stack.count("ORDERS").await, 1);

    // Once more: nothing new.
    let r = reprocess(
        &stack,
        ReprocessRequest {
            raw_sequences: vec![seq, 999],
            replay_of: first.id.clone(),
            replay: 3,
            overlay_revision: revision,
        },
    )
    .await;
    assert_eq!(r.results[0].outcome(), ReprocessOutcome::Unchanged, "{r:?}");
    assert_eq!(r.results[0].event_ids, res.event_ids);
    assert_eq!(r.results[1].outcome(), ReprocessOutcome::Missing);
    assert_eq!(stack.count("ORDERS").await, 1);
    assert_eq!(stack.count("DLQ").await, 2);
}
