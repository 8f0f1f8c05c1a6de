//! The rest of the drift a person or Xero causes: an amount edited on an invoice, a contact
//! archived that an open order needs, and a payment Xero refused; each found, published on
//! RECON with both sides' values, and repaired only where the policy says so.

use crate::helpers::*;
use ledgerline_contract::v1::{Finding, OrderEventType, OrderStatus};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::time::Duration;

async fn opened(stack: &Stack, kind: &str, order: &str) -> Option<Finding> {
    stack
        .recon_events()
        .await
        .into_iter()
        .find(|f| f.kind == kind && f.order_id == order && f.open)
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

async fn written(stack: &Stack, id: &str) -> bool {
    stack.view(id).await.is_some_and(|v| {
        v["xero"]["invoices"]
            .as_object()
            .is_some_and(|m| m.values().any(|d| !d["written"].is_null()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amount_edited_and_a_contact_archived_in_xero_are_reported() {
    let stack = Stack::start(&[]).await;
    for id in ["4001", "4002"] {
        let o = order(id, 1, OrderStatus::Confirmed, false);
        stack
            .publish(&event(&o, OrderEventType::Created, &format!("e{id}")))
            .await;
    }
    assert!(
        eventually(WAIT, || async {
            written(&stack, "4001").await && written(&stack, "4002").await
        })
        .await,
        "{}",
        stack.output()
    );
    // A person acts a while after the writer (a webhook within seconds of the writer's own
    // write is taken as that write).
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The amount: the line's price lowered from 100.00 to 90.00 (115.00 → 103.50).
    let inv = stack.invoice("SO-4001").await.unwrap();
    let id = inv["InvoiceID"].as_str().unwrap().to_owned();
    let lines: Vec<Value> = inv["LineItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            json!({
                "Description": l["Description"],
                "Quantity": l["Quantity"],
                "UnitAmount": 90.00,
                "AccountCode": l["AccountCode"],
                "TaxType": l["TaxType"],
            })
        })
        .collect();
    stack
        .as_accountant(
            Method::POST,
            &format!("/Invoices/{id}"),
            json!({"Invoices": [{"InvoiceID": id, "LineItems": lines}]}),
        )
        .await;
    assert!(
        eventually(WAIT, || async {
            opened(&stack, "total_differs", "4001").await.is_some()
        })
        .await,
        "{:?}\n{}",
        stack.recon_events().await,
        stack.output()
    );
    let f = opened(&stack, "total_differs", "4001").await.unwrap();
    assert_eq!(dec(&f.store_side["total"]), dec("115.00"));
    assert_eq!(dec(&f.xero_side["total"]), dec("103.50"));
    assert_eq!(f.policy, "report");
    let changed = opened(&stack, "changed_in_xero", "4001")
        .await
        .expect("the edit is a change made in Xero");
    assert!(changed.summary.contains("total edited"), "{changed:?}");
    // Reported, not overwritten.
    assert_eq!(
        dec(&stack.invoice("SO-4001").await.unwrap()["Total"].to_string()),
        dec("103.50")
    );

    // The contact of the other open order archived.
    let inv = stack.invoice("SO-4002").await.unwrap();
    let contact = inv["Contact"]["ContactID"].as_str().unwrap().to_owned();
    stack
        .as_accountant(
            Method::POST,
            &format!("/Contacts/{contact}"),
            json!({"Contacts": [{"ContactID": contact, "ContactStatus": "ARCHIVED"}]}),
        )
        .await;
    assert!(
        eventually(WAIT, || async {
            opened(&stack, "contact_archived", "4002").await.is_some()
        })
        .await,
        "{:?}\n{}",
        stack.recon_events().await,
        stack.output()
    );
    let f = opened(&stack, "contact_archived", "4002").await.unwrap();
    assert_eq!(f.xero_side["contact"], contact);
    assert_eq!(f.xero_side["status"], "ARCHIVED");
    // Restored: the finding closes.
    stack
        .as_accountant(
            Method::POST,
            &format!("/Contacts/{contact}"),
            json!({"Contacts": [{"ContactID": contact, "ContactStatus": "ACTIVE"}]}),
        )
        .await;
    assert!(
        eventually(WAIT, || async {
            stack
                .recon_events()
                .await
                .iter()
                .any(|f| f.kind == "contact_archived" && f.order_id == "4002" && !f.open)
        })
        .await,
        "{:?}\n{}",
        stack.recon_events().await,
        stack.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_xero_refused_is_found_and_applied_again() {
    let stack = Stack::start(&[]).await;
    // Xero refuses the next payment, once.
    stack
        .sandbox_settings(json!({"refuse_next": 1, "refuse_endpoint": "payments"}))
        .await;
    let o = order("5001", 2, OrderStatus::Paid, true);
    stack
        .publish(&event(&o, OrderEventType::Paid, "e5001"))
        .await;
    // The invoice is written, the payment is not: after the settle SLA the order is not paid
    // in Xero, the default policy repairs, the writer applies the payment, the finding closes.
    assert!(
        eventually(WAIT, || async {
            opened(&stack, "not_paid", "5001").await.is_some()
        })
        .await,
        "{:?}\n{}",
        stack.recon_events().await,
        stack.output()
    );
    let f = opened(&stack, "not_paid", "5001").await.unwrap();
    assert_eq!(dec(&f.store_side["amount paid"]), dec("115.00"));
    assert_eq!(dec(&f.xero_side["amount paid"]), Decimal::ZERO);
    assert_eq!(f.action_taken, "repair requested");
    assert!(
        eventually(WAIT, || async {
            stack
                .invoice("SO-5001")
                .await
                .is_some_and(|i| i["Status"] == "PAID")
                && stack
                    .recon_events()
                    .await
                    .iter()
                    .any(|f| f.kind == "not_paid" && f.order_id == "5001" && !f.open)
        })
        .await,
        "{:?}\n{:?}\n{}",
        stack.invoice("SO-5001").await,
        stack.recon_events().await,
        stack.output()
    );
    let inv = stack.invoice("SO-5001").await.unwrap();
    assert_eq!(
        inv["Payments"].as_array().unwrap().len(),
        1,
        "applied once: {inv}"
    );
}
