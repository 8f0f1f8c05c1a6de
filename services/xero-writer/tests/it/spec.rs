//! Every document shape the writer sends is checked against Xero's published OpenAPI spec:
//! each field must be a property of the schema, with the spec's JSON type.

use crate::helpers::*;
use ledgerline_contract::v1::LineKind;
use rust_decimal_macros::dec;
use serde_json::Value;
use std::time::Instant;
use xero_writer::org::{Account, OrgSettings, TaxRate, Tracking};

fn spec() -> Value {
    let text = include_str!("../../../../../shared/reference/xero/xero_accounting.yaml");
    serde_norway::from_str(text).expect("spec parses")
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &spec["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn check(spec: &Value, schema: &Value, v: &Value, path: &str) {
    let schema = resolve(spec, schema);
    match v {
        Value::Object(map) => {
            let props = schema
                .get("properties")
                .unwrap_or_else(|| panic!("{path}: the spec has no properties here"));
            for (k, x) in map {
                let p = props
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} is not in the spec"));
                check(spec, p, x, &format!("{path}.{k}"));
            }
        }
        Value::Array(items) => {
            let item = schema
                .get("items")
                .unwrap_or_else(|| panic!("{path}: the spec says this is not an array"));
            for (i, x) in items.iter().enumerate() {
                check(spec, item, x, &format!("{path}[{i}]"));
            }
        }
        Value::Number(_) => assert_eq!(schema["type"], "number", "{path} must be a number"),
        Value::String(_) => assert!(
            schema["type"] == "string" || schema.get("enum").is_some(),
            "{path} must be a string in the spec: {schema:?}"
        ),
        Value::Bool(_) => assert_eq!(schema["type"], "boolean", "{path}"),
        Value::Null => {}
    }
}

fn org() -> OrgSettings {
    let acct = |code: &str, kind: &str, class: &str| Account {
        code: code.into(),
        name: code.into(),
        kind: kind.into(),
        class: class.into(),
        active: true,
        payments: kind == "BANK",
    };
    let rate = |t: &str, r| TaxRate {
        tax_type: t.into(),
        name: t.into(),
        rate: r,
        revenue: true,
    };
    OrgSettings {
        accounts: vec![
            acct("200", "REVENUE", "REVENUE"),
            acct("210", "REVENUE", "REVENUE"),
            acct("860", "CURRLIAB", "LIABILITY"),
            acct("090", "BANK", "ASSET"),
        ],
        tax_rates: vec![
            rate("OUTPUT2", dec!(15)),
            rate("NONE", dec!(0)),
            rate("ZERORATED", dec!(0)),
        ],
        tracking: vec![Tracking {
            name: "Sales Channel".into(),
            options: vec!["Web Store".into()],
        }],
        currencies: vec!["NZD".into()],
        base_currency: "NZD".into(),
        timezone: chrono_tz::Pacific::Auckland,
        sales_terms: None,
        lock_date: None,
        fetched: Instant::now(),
    }
}

#[test]
fn every_document_the_writer_sends_fits_the_openapi_spec() {
    let spec = spec();
    let schemas = &spec["components"]["schemas"];
    let mapping = ledgerline_mapping::Effective::defaults().mapping;
    let org = org();
    let mut o = simple("SO-1", "spec@example.com");
    o.tracking
        .insert("Sales Channel".into(), "Web Store".into());
    o.lines[0].discount = m("1.00");
    o.lines[0].line_total = m("19.00");
    o.totals.as_mut().unwrap().total = m("27.60");
    o.shipping_address = Some(ledgerline_contract::v1::Address {
        lines: vec!["1 Queen St".into()],
        city: "Auckland".into(),
        country_code: "NZ".into(),
        country_name: "New Zealand".into(),
        ..Default::default()
    });
    let inv =
        xero_writer::compose::invoice(&o, "00000000-0000-0000-0000-000000000001", &mapping, &org)
            .expect("invoice builds");
    let mut doc = inv.doc.clone();
    doc.invoice_id = Some("00000000-0000-0000-0000-000000000002".into());
    check(
        &spec,
        &schemas["Invoice"],
        &serde_json::to_value(&doc).unwrap(),
        "Invoice",
    );
    assert!(
        serde_json::to_string(&doc)
            .unwrap()
            .contains("\"Quantity\":2")
    );

    let contact = xero_writer::contacts::spec(&o, &mapping);
    check(
        &spec,
        &schemas["Contact"],
        &serde_json::to_value(&contact).unwrap(),
        "Contact",
    );

    let p = xero_writer::compose::payment(
        "00000000-0000-0000-0000-000000000002",
        "090",
        chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        dec!(10.50),
        "SO-1 pay-1",
    );
    check(
        &spec,
        &schemas["Payment"],
        &serde_json::to_value(&p).unwrap(),
        "Payment",
    );

    let refund = refund_event(
        &o,
        "r1",
        "RMA-1",
        vec![line(LineKind::Product, "Widget", "1", "10.00", "GST15")],
        dec!(11.50),
    );
    let cn = xero_writer::compose::credit_note(
        &refund,
        "main",
        "00000000-0000-0000-0000-000000000001",
        &mapping,
        &org,
    )
    .expect("credit note builds");
    check(
        &spec,
        &schemas["CreditNote"],
        &serde_json::to_value(&cn.doc).unwrap(),
        "CreditNote",
    );

    let void = serde_json::json!({"InvoiceID": "00000000-0000-0000-0000-000000000002", "Status": "VOIDED"});
    check(&spec, &schemas["Invoice"], &void, "Invoice(void)");
    let alloc = serde_json::json!({"Invoice": {"InvoiceID": "00000000-0000-0000-0000-000000000002"}, "Amount": 1.5, "Date": "2026-11-01"});
    check(&spec, &schemas["Allocation"], &alloc, "Allocation");
}

/// A return as the normalizer emitted it from clarity-sim: item taxes already reflect an
/// order-level discount that is itself untaxed. Xero taxes each line, so the discount is
/// apportioned across the tax codes and the credit note totals the refund to the cent.
#[test]
fn an_untaxed_order_discount_is_apportioned_so_xero_tax_matches_the_store() {
    let mapping = ledgerline_mapping::Effective::defaults().mapping;
    let org = org();
    let l = |kind: LineKind,
             qty: &str,
             unit: &str,
             code: &str,
             taxable: bool,
             total: &str,
             tax: &str| {
        let mut x = line(kind, "x", qty, unit, code);
        x.taxable = taxable;
        x.line_total = m(total);
        x.tax_amount = m(tax);
        x
    };
    let lines = vec![
        l(
            LineKind::Product,
            "3",
            "36.00",
            "GST15",
            true,
            "108.00",
            "14.58",
        ),
        l(
            LineKind::Product,
            "1",
            "1249.00",
            "GST15",
            true,
            "1249.00",
            "168.62",
        ),
        l(
            LineKind::Product,
            "1",
            "3.1275",
            "GST15",
            true,
            "3.13",
            "0.42",
        ),
        l(
            LineKind::Product,
            "3",
            "31.50",
            "GST0",
            true,
            "94.50",
            "0.00",
        ),
        l(
            LineKind::Discount,
            "1",
            "-145.46",
            "",
            false,
            "-145.46",
            "0.00",
        ),
        l(
            LineKind::Shipping,
            "1",
            "21.16",
            "GST15",
            true,
            "21.16",
            "3.17",
        ),
    ];
    let o = simple("SO-1062", "x@example.com");
    let ev = refund_event(&o, "r-1062", "RMA-1062", lines, dec!(1517.12));
    let cn = xero_writer::compose::credit_note(&ev, "main", "c", &mapping, &org).expect("builds");
    assert_eq!(cn.total, dec!(1517.12));
    let discounts: Vec<_> = cn
        .doc
        .line_items
        .iter()
        .filter(|x| x.unit_amount < rust_decimal::Decimal::ZERO)
        .collect();
    assert_eq!(discounts.len(), 2, "{:?}", cn.doc.line_items);
    assert_eq!(discounts[0].tax_type, "OUTPUT2");
    let rounding = cn
        .doc
        .line_items
        .iter()
        .find(|x| x.description == "Rounding");
    assert!(
        rounding.is_none_or(|r| r.unit_amount.abs() <= dec!(0.05)),
        "{rounding:?}"
    );
}
