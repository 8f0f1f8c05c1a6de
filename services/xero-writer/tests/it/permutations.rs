//! The permutation property (issue 10): for generated orders with payments, partial payments,
//! partial and full refunds, and cancellations, every delivery order of the order's events,
//! with a random duplicate, ends in the same Xero state: the one the store's final state
//! implies.
//!
//! Every permutation of one generated case is its own order, so they all run through one
//! writer side by side. Events go out in rounds: round `k` publishes the `k`-th event of every
//! permutation, and the next round starts only once the writer has settled every delivery so
//! far (its outcome counter catches up with the consumer's deliveries), so each permutation is
//! delivered in its own order. A held refund is redelivered whenever its delay runs out, as in
//! production. `PROPTEST_CASES` sets the number of cases (default 6); for a long run:
//!
//! ```text
//! PROPTEST_CASES=100 cargo nextest run -p xero-writer permutations --no-capture
//! ```

use crate::helpers::*;
use crate::ordering::counter;
use async_nats::jetstream::consumer::PullConsumer;
use ledgerline_contract::v1::{LineKind, OrderEvent, OrderEventType, OrderStatus, RefundEvent};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use rust_decimal::Decimal;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What the store did after creating the order.
#[derive(Debug, Clone)]
struct Case {
    /// (quantity, unit price in cents) per line, GST 15 %.
    lines: Vec<(u32, i64)>,
    /// 0: cancelled unpaid; 1: paid in full; 2: paid in two parts; 3: partly paid.
    plan: u8,
    /// Fractions (basis points) that split payments and size refunds.
    a: u32,
    b: u32,
    refunds: u8,
    /// Where each permutation's duplicate goes.
    dup_seed: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Pay(Decimal),
    Refund(Decimal),
    Cancel,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((1u32..=3, 100i64..=9_999), 1..=3),
        0u8..4,
        1u32..10_000,
        1u32..10_000,
        0u8..=2,
        any::<u64>(),
    )
        .prop_map(|(lines, plan, a, b, refunds, dup_seed)| Case {
            lines,
            plan,
            a,
            b,
            refunds,
            dup_seed,
        })
}

fn part(of: Decimal, bp: u32) -> Decimal {
    let cent = Decimal::new(1, 2);
    (of * Decimal::from(bp) / Decimal::from(10_000))
        .round_dp(2)
        .max(cent)
        .min((of - cent).max(cent))
}

/// The store's steps after `created`, with exact amounts (refunds never exceed what was paid).
fn steps(c: &Case, total: Decimal) -> Vec<Step> {
    match c.plan {
        0 => vec![Step::Cancel],
        1 => {
            let mut s = vec![Step::Pay(total)];
            if c.refunds >= 1 {
                let r1 = if c.b.is_multiple_of(3) {
                    total
                } else {
                    part(total, c.a)
                };
                s.push(Step::Refund(r1));
                if c.refunds == 2 && total - r1 >= Decimal::new(1, 2) {
                    s.push(Step::Refund(part(total - r1, c.b)));
                }
            }
            s
        }
        2 => {
            let p1 = part(total, c.a);
            let mut s = vec![Step::Pay(p1)];
            if c.refunds >= 1 {
                s.push(Step::Refund(part(p1, c.b)));
            }
            s.push(Step::Pay(total - p1));
            s
        }
        _ => {
            let p1 = part(total, c.a);
            let mut s = vec![Step::Pay(p1)];
            if c.refunds >= 1 {
                s.push(Step::Refund(part(p1, c.b)));
            }
            s
        }
    }
}

#[derive(Clone)]
enum Ev {
    Order(Box<OrderEvent>),
    Refund(Box<RefundEvent>),
}

/// The events of permutation `j` of case `n`, in the store's order.
fn events(n: usize, j: usize, c: &Case) -> (Vec<Ev>, Vec<Step>) {
    let lines = c
        .lines
        .iter()
        .enumerate()
        .map(|(i, (q, cents))| {
            line(
                LineKind::Product,
                &format!("Item {i}"),
                &q.to_string(),
                &Decimal::new(*cents, 2).to_string(),
                "GST15",
            )
        })
        .collect();
    let number = format!("PX{n}-{j}");
    let mut o = order(
        &number,
        1,
        OrderStatus::Confirmed,
        lines,
        customer("Perm", "Utation", &format!("perm{n}@example.com")),
    );
    let total = total_of(&o);
    let steps = steps(c, total);
    let mut out = vec![Ev::Order(Box::new(event(
        &o,
        OrderEventType::Created,
        &format!("{number}-c"),
    )))];
    let mut paid = Decimal::ZERO;
    for (k, s) in steps.iter().enumerate() {
        match s {
            Step::Pay(a) => {
                o.version += 1;
                paid += a;
                pay(&mut o, &format!("pay-{number}-{k}"), *a);
                o.status = if paid >= total {
                    OrderStatus::Paid
                } else {
                    OrderStatus::PartiallyPaid
                } as i32;
                out.push(Ev::Order(Box::new(event(
                    &o,
                    OrderEventType::Paid,
                    &format!("{number}-p{k}"),
                ))));
            }
            Step::Refund(a) => {
                // Made against the order as it stands now (`order_version` = its version).
                out.push(Ev::Refund(Box::new(refund_event(
                    &o,
                    &format!("ref-{number}-{k}"),
                    &format!("RMA-{number}-{k}"),
                    vec![],
                    *a,
                ))));
            }
            Step::Cancel => {
                o.version += 1;
                o.status = OrderStatus::Cancelled as i32;
                out.push(Ev::Order(Box::new(event(
                    &o,
                    OrderEventType::Cancelled,
                    &format!("{number}-x"),
                ))));
            }
        }
    }
    (out, steps)
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for at in 0..=p.len() {
            let mut q = p.clone();
            q.insert(at, n - 1);
            out.push(q);
        }
    }
    out
}

/// One permutation's delivery list: the permuted events plus one duplicate (a redelivery with
/// a new event id, so JetStream does not drop it) of a seeded event at a seeded place.
fn with_duplicate(evs: &[Ev], perm: &[usize], seed: u64, j: usize) -> Vec<Ev> {
    let mut out: Vec<Ev> = perm.iter().map(|&i| evs[i].clone()).collect();
    let mix = seed
        .wrapping_add(j as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let which = (mix % evs.len() as u64) as usize;
    let at = ((mix >> 17) % (out.len() as u64 + 1)) as usize;
    let mut dup = evs[which].clone();
    match &mut dup {
        Ev::Order(e) => e.meta.as_mut().unwrap().event_id.push_str("-dup"),
        Ev::Refund(r) => r.meta.as_mut().unwrap().event_id.push_str("-dup"),
    }
    out.insert(at, dup);
    out
}

/// What Xero holds for one order, as an accountant compares it.
#[derive(Debug, Clone, PartialEq, Default)]
struct Books {
    /// Invoices that are neither voided nor deleted.
    live_invoices: usize,
    status: String,
    total: Decimal,
    paid: Decimal,
    credited: Decimal,
    due: Decimal,
    /// Customer payments on the invoice, sorted.
    payments: Vec<Decimal>,
    credit_notes: usize,
    credit_total: Decimal,
    remaining_credit: Decimal,
    /// Credit paid back to the customer.
    cash_refunded: Decimal,
}

/// What the store's final state implies: every payment recorded in full, credit allocated only
/// to what is still owed after them, the rest of every refund paid back as cash; an order
/// cancelled unpaid has no live invoice (none, or a voided one).
fn implied(steps: &[Step], total: Decimal) -> Books {
    if steps.contains(&Step::Cancel) {
        return Books::default();
    }
    let mut payments: Vec<Decimal> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Pay(a) => Some(*a),
            _ => None,
        })
        .collect();
    payments.sort();
    let refunds: Vec<Decimal> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Refund(a) => Some(*a),
            _ => None,
        })
        .collect();
    let paid: Decimal = payments.iter().sum();
    let refunded: Decimal = refunds.iter().sum();
    let credited = refunded.min(total - paid);
    let due = total - paid - credited;
    Books {
        live_invoices: 1,
        status: if due.is_zero() { "PAID" } else { "AUTHORISED" }.into(),
        total,
        paid,
        credited,
        due,
        payments,
        credit_notes: refunds.len(),
        credit_total: refunded,
        remaining_credit: Decimal::ZERO,
        cash_refunded: refunded - credited,
    }
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn books_of(docs: &Value, number: &str) -> Books {
    let live: Vec<&Value> = arr(&docs["Invoices"])
        .iter()
        .filter(|i| i["InvoiceNumber"] == number)
        .filter(|i| i["Status"] != "VOIDED" && i["Status"] != "DELETED")
        .collect();
    let mut b = Books {
        live_invoices: live.len(),
        ..Default::default()
    };
    if let Some(inv) = live.first() {
        b.status = inv["Status"].as_str().unwrap_or_default().to_owned();
        b.total = d(&inv["Total"]);
        b.paid = d(&inv["AmountPaid"]);
        b.credited = d(&inv["AmountCredited"]);
        b.due = d(&inv["AmountDue"]);
        let id = &inv["InvoiceID"];
        b.payments = arr(&docs["Payments"])
            .iter()
            .filter(|p| p["Status"] != "DELETED" && &p["Invoice"]["InvoiceID"] == id)
            .map(|p| d(&p["Amount"]))
            .collect();
        b.payments.sort();
    }
    let prefix = format!("RMA-{number}-");
    let notes: Vec<&Value> = arr(&docs["CreditNotes"])
        .iter()
        .filter(|c| {
            c["CreditNoteNumber"]
                .as_str()
                .is_some_and(|n| n.starts_with(&prefix))
                && c["Status"] != "VOIDED"
                && c["Status"] != "DELETED"
        })
        .collect();
    b.credit_notes = notes.len();
    b.credit_total = notes.iter().map(|c| d(&c["Total"])).sum();
    b.remaining_credit = notes.iter().map(|c| d(&c["RemainingCredit"])).sum();
    b.cash_refunded = arr(&docs["Payments"])
        .iter()
        .filter(|p| {
            p["Status"] != "DELETED"
                && notes
                    .iter()
                    .any(|c| p["CreditNote"]["CreditNoteID"] == c["CreditNoteID"])
        })
        .map(|p| d(&p["Amount"]))
        .sum();
    b
}

/// Deliveries (consumer sequence), undelivered and unacked counts of the writer's consumer.
async fn consumer_state(consumer: &mut PullConsumer) -> (u64, u64, usize) {
    let info = consumer.info().await.expect("consumer info");
    (
        info.delivered.consumer_sequence,
        info.num_pending,
        info.num_ack_pending,
    )
}

/// Waits until every delivery so far has an outcome (and, with `all`, until nothing is left
/// unacked: held refunds included).
async fn settle(stack: &Stack, consumer: &mut PullConsumer, all: bool, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (delivered, pending, ack_pending) = consumer_state(consumer).await;
        let outcomes = counter(&stack.metrics().await, "xero_writer_event_outcomes_total");
        if pending == 0 && outcomes >= delivered && (!all || ack_pending == 0) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: delivered {delivered}, outcomes {outcomes}, pending {pending}, unacked {ack_pending}\n{}",
            stack.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_case(stack: &Stack, n: usize, c: &Case) -> Result<(), TestCaseError> {
    let (probe, steps) = events(n, 0, c);
    let perms = permutations(probe.len());
    let mut deliveries = Vec::new();
    let mut expected = Vec::new();
    for (j, perm) in perms.iter().enumerate() {
        let (evs, _) = events(n, j, c);
        let total = match &evs[0] {
            Ev::Order(e) => total_of(e.order.as_ref().unwrap()),
            Ev::Refund(_) => unreachable!("created comes first in the store's order"),
        };
        expected.push(implied(&steps, total));
        deliveries.push(with_duplicate(&evs, perm, c.dup_seed, j));
    }
    eprintln!("case {n}: {} permutations of {:?}", perms.len(), steps);
    let name = ledgerline_contract::consumers::writer_orders_name(&stack.sandbox.tenant);
    let mut consumer: PullConsumer = stack
        .js
        .get_stream("ORDERS")
        .await
        .unwrap()
        .get_consumer(&name)
        .await
        .expect("the writer's consumer");
    let rounds = deliveries.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..rounds {
        for list in &deliveries {
            match list.get(k) {
                Some(Ev::Order(e)) => stack.publish(e).await,
                Some(Ev::Refund(r)) => stack.publish_refund(r).await,
                None => {}
            }
        }
        settle(stack, &mut consumer, false, Duration::from_secs(60)).await;
    }
    settle(stack, &mut consumer, true, Duration::from_secs(120)).await;
    let docs = stack.sandbox.documents().await;
    let dls = stack.dead_letters().await;
    prop_assert!(dls.is_empty(), "dead letters: {dls:?}");
    for (j, want) in expected.iter().enumerate() {
        let got = books_of(&docs, &format!("PX{n}-{j}"));
        let order: Vec<String> = deliveries[j]
            .iter()
            .map(|e| match e {
                Ev::Order(e) => e.meta.as_ref().unwrap().event_id.clone(),
                Ev::Refund(r) => r.meta.as_ref().unwrap().event_id.clone(),
            })
            .collect();
        prop_assert_eq!(
            &got,
            want,
            "permutation {} of case {} (steps {:?}), delivered {:?}",
            j,
            n,
            steps,
            order
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_delivery_order_of_an_orders_events_ends_in_the_same_books() {
    let stack = Stack::start(&["--minute-limit", "1000000", "--day-limit", "100000000"]).await;
    stack
        .sandbox
        .settings(serde_json::json!({"minute_limit": 1_000_000, "day_limit": 100_000_000, "concurrent_limit": 100}))
        .await;
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..Config::default()
    });
    // Every run (shrinking included) gets fresh order numbers.
    let next = AtomicUsize::new(0);
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner.run(&case(), |c| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            handle.block_on(run_case(&stack, n, &c))
        })
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, c)) => panic!("{why}\nminimal case: {c:?}"),
        Err(e) => panic!("{e}"),
    }
}
