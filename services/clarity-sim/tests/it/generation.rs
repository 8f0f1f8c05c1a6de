use clarity_sim::model::*;
use clarity_sim::{Event, GenConfig, Generator, GroundTruth};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashSet};

fn timeline(seed: u64, orders: usize) -> Vec<Event> {
    Generator::new(seed, GenConfig::new("main", orders)).events()
}

/// Every body parses back into the contract types, every `Totals` obeys the identity, every
/// entity's versions run 1, 2, 3... in timeline order, ids are unique and match the body.
fn check_timeline(events: &[Event]) {
    let mut ids = HashSet::new();
    let mut versions: BTreeMap<String, u32> = BTreeMap::new();
    for e in events {
        assert!(ids.insert(e.id.clone()), "duplicate id {}", e.id);
        assert!(!e.id.contains('.'));
        let raw: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(raw["id"], e.id.as_str());
        assert_eq!(raw["type"], e.event_type.as_str());
        assert_eq!(raw["api_version"], API_VERSION);
        assert_eq!(raw["store"]["CustomKey"], "main");
        let (entity, version) = match e.event_type {
            EventType::SalesReturnCompleted => {
                let r: Envelope<SalesReturn> = serde_json::from_slice(&e.body).unwrap();
                assert!(
                    r.data.totals.is_consistent(),
                    "{}: {:?}",
                    e.id,
                    r.data.totals
                );
                let refunded: Decimal = r.data.refund_payments.iter().map(|p| p.amount).sum();
                assert_eq!(refunded, r.data.totals.total);
                (format!("return:{}", r.data.id), r.data.version)
            }
            EventType::AccountCreated | EventType::AccountUpdated => {
                let a: Envelope<Account> = serde_json::from_slice(&e.body).unwrap();
                (format!("account:{}", a.data.id), a.data.version)
            }
            _ => {
                let o: Envelope<SalesOrder> = serde_json::from_slice(&e.body).unwrap();
                let o = o.data;
                assert!(o.totals.is_consistent(), "{}: {:?}", e.id, o.totals);
                assert_eq!(o.balance_due, o.totals.total - o.amount_paid());
                assert!(o.amount_paid() <= o.totals.total);
                assert_eq!(
                    o.previous_status_key.is_some(),
                    e.event_type == EventType::SalesOrderStatusChanged
                );
                if e.event_type == EventType::SalesOrderVoided {
                    assert_eq!(o.status_key, "Void");
                }
                let alloc: Decimal = o
                    .sales_items
                    .iter()
                    .flat_map(|i| &i.discounts)
                    .map(|d| d.discount_total)
                    .sum();
                assert_eq!(-alloc, o.totals.discounts);
                let listed: Decimal = o.discounts.iter().map(|d| d.discount_total).sum();
                assert_eq!(listed, alloc);
                for i in &o.sales_items {
                    assert!(i.unit_sold_price.scale() <= 4 && i.extended_tax_amount.scale() <= 4);
                }
                (format!("order:{}", o.id), o.version)
            }
        };
        assert_eq!(version, e.version);
        let expected = versions.get(&entity).map_or(1, |v| v + 1);
        assert_eq!(version, expected, "{entity} version");
        versions.insert(entity, version);
    }
}

#[test]
fn generated_timeline_obeys_the_contract() {
    let events = timeline(42, 200);
    check_timeline(&events);
    // The store is realistic: every event type shows up, in several currencies.
    let types: HashSet<EventType> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(types.len(), EventType::ALL.len(), "{types:?}");
    let state = clarity_sim::StoreState::from_events(&events).unwrap();
    let currencies: HashSet<&str> = state
        .orders
        .values()
        .map(|o| o.currency_key.as_str())
        .collect();
    assert_eq!(currencies.len(), 5);
    assert!(state.orders.values().any(|o| o.tax_included));
    assert!(
        state
            .orders
            .values()
            .any(|o| o.account_id.is_none() && o.user_id.is_none()),
        "guests"
    );
    assert!(
        state
            .orders
            .values()
            .any(|o| o.totals.discounts < Decimal::ZERO)
    );
    assert!(
        state
            .orders
            .values()
            .any(|o| o.sales_order_payments.len() == 2),
        "partial then full payment"
    );
    assert!(
        state
            .orders
            .values()
            .any(|o| o.serializable_attributes.contains_key("SalesChannel"))
    );
    let mut names: BTreeMap<String, HashSet<i64>> = BTreeMap::new();
    for a in state.accounts.values() {
        names.entry(a.name.clone()).or_default().insert(a.id);
    }
    assert!(
        names.values().any(|ids| ids.len() > 1),
        "two accounts share a name"
    );
    let mut emails_by_name: BTreeMap<(String, String), HashSet<String>> = BTreeMap::new();
    for o in state.orders.values() {
        let key = (
            o.user_contact_first_name.clone().unwrap(),
            o.user_contact_last_name.clone().unwrap(),
        );
        emails_by_name
            .entry(key)
            .or_default()
            .insert(o.user_contact_email.clone().unwrap());
    }
    assert!(
        emails_by_name.values().any(|e| e.len() > 1),
        "different customers with the same name"
    );
    let codes: HashSet<bool> = state
        .orders
        .values()
        .map(|o| o.billing_contact.address.country_code.is_some())
        .collect();
    assert_eq!(codes.len(), 2, "country as code and as name only");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = timeline(7, 60);
    let b = timeline(7, 60);
    assert_eq!(a, b);
    let c = timeline(8, 60);
    assert_ne!(
        a.iter().map(|e| &e.body).collect::<Vec<_>>(),
        c.iter().map(|e| &e.body).collect::<Vec<_>>()
    );
}

#[test]
fn ground_truth_matches_the_events() {
    let events = timeline(3, 120);
    let truth = GroundTruth::from_events(&events).unwrap();
    assert_eq!(truth.format, clarity_sim::truth::FORMAT);
    let created = events
        .iter()
        .filter(|e| e.event_type == EventType::SalesOrderCreated)
        .count();
    assert_eq!(truth.orders.len(), created);
    // Each order's truth is its highest-version snapshot.
    let mut last: BTreeMap<i64, SalesOrder> = BTreeMap::new();
    for e in &events {
        if matches!(
            e.event_type,
            EventType::SalesReturnCompleted | EventType::AccountCreated | EventType::AccountUpdated
        ) {
            continue;
        }
        let o: Envelope<SalesOrder> = serde_json::from_slice(&e.body).unwrap();
        last.insert(o.data.id, o.data);
    }
    for o in &truth.orders {
        let src = &last[&o.id];
        assert_eq!(
            (o.version, &o.status, o.totals),
            (src.version, &src.status_key, src.totals)
        );
        assert_eq!(o.amount_paid, src.amount_paid());
        assert_eq!(o.voided, src.status_key == "Void");
    }
    // Per-currency sums add up from the orders.
    for (cur, c) in &truth.per_currency {
        let mine: Vec<_> = truth.orders.iter().filter(|o| &o.currency == cur).collect();
        assert_eq!(c.orders, mine.len());
        let live = mine.iter().filter(|o| !o.voided);
        assert_eq!(
            c.invoiced_total,
            live.clone().map(|o| o.totals.total).sum::<Decimal>()
        );
        assert_eq!(c.paid, live.map(|o| o.amount_paid).sum::<Decimal>());
        assert_eq!(c.credited, mine.iter().map(|o| o.credited).sum::<Decimal>());
    }
    let returns = events
        .iter()
        .filter(|e| e.event_type == EventType::SalesReturnCompleted)
        .count();
    assert_eq!(
        truth.orders.iter().map(|o| o.returns.len()).sum::<usize>(),
        returns
    );
    // It serialises to JSON numbers and back without loss.
    let text = serde_json::to_string(&truth).unwrap();
    assert_eq!(serde_json::from_str::<GroundTruth>(&text).unwrap(), truth);
}

#[test]
fn applying_events_in_any_order_converges() {
    let events = timeline(5, 40);
    let forward = clarity_sim::StoreState::from_events(&events).unwrap();
    let mut reversed = events.clone();
    reversed.reverse();
    let backward = clarity_sim::StoreState::from_events(&reversed).unwrap();
    assert_eq!(forward.orders, backward.orders);
    assert_eq!(forward.accounts, backward.accounts);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn any_seed_obeys_the_contract(seed in any::<u64>(), orders in 1usize..40) {
        check_timeline(&timeline(seed, orders));
    }
}
