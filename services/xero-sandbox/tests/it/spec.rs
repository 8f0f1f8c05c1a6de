//! Every response shape checked against the schemas in Xero's published OpenAPI spec: each
//! property we send must be declared, with the declared JSON type (and enum value).

use crate::util::*;
use serde_json::{Value, json};
use std::sync::OnceLock;

/// Envelope fields that Xero sends on every 200 but the spec's wrapper schemas leave out.
const ENVELOPE: [&str; 4] = ["Id", "Status", "ProviderName", "DateTimeUTC"];

pub fn load(name: &str) -> Value {
    let path = format!(
        "{}/../../../shared/reference/xero/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap()
}

fn accounting() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| load("xero_accounting.yaml"))
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            resolve(spec, &spec["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// Checks `v` against `schema`: declared properties, required ones present, JSON types, enums.
pub fn check(spec: &Value, v: &Value, schema: &Value, path: &str, errs: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if v.is_null() {
        return;
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(spec, v, s, path, errs);
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or(
        if schema.get("properties").is_some() {
            "object"
        } else {
            ""
        },
    );
    match ty {
        "object" => {
            let Some(obj) = v.as_object() else {
                return errs.push(format!("{path}: expected object, got {v}"));
            };
            let props = schema.get("properties").and_then(Value::as_object);
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = r.as_str()
                    && !obj.contains_key(r)
                {
                    errs.push(format!("{path}.{r}: required but missing"));
                }
            }
            for (k, val) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => check(spec, val, s, &format!("{path}.{k}"), errs),
                    None => match schema.get("additionalProperties") {
                        Some(ap) if ap.is_object() => {
                            check(spec, val, ap, &format!("{path}.{k}"), errs)
                        }
                        _ => errs.push(format!("{path}.{k}: not declared in the schema")),
                    },
                }
            }
        }
        "array" => match v.as_array() {
            Some(items) => {
                for (i, it) in items.iter().enumerate() {
                    check(spec, it, &schema["items"], &format!("{path}[{i}]"), errs);
                }
            }
            None => errs.push(format!("{path}: expected array")),
        },
        "string" => match v.as_str() {
            Some(s) => {
                if let Some(e) = schema.get("enum").and_then(Value::as_array)
                    && !e.iter().any(|x| x.as_str() == Some(s))
                {
                    errs.push(format!("{path}: {s:?} is not in the enum"));
                }
            }
            None => errs.push(format!("{path}: expected string, got {v}")),
        },
        "number" if !v.is_number() => errs.push(format!("{path}: expected number, got {v}")),
        "integer" if !(v.is_i64() || v.is_u64()) => {
            errs.push(format!("{path}: expected integer, got {v}"))
        }
        "boolean" if !v.is_boolean() => errs.push(format!("{path}: expected boolean, got {v}")),
        _ => {}
    }
}

/// Asserts that a response body matches a named schema of xero_accounting.yaml.
pub fn validate_schema(body: &Value, schema_name: &str) {
    validate(body, schema_name)
}

fn validate(body: &Value, schema_name: &str) {
    validate_with(body, schema_name, None)
}

/// `element_schema`: a ValidationException's `Elements` echo whole submitted documents (the
/// spec's `Element` schema lists only the ids), so they are checked against the document schema.
fn validate_with(body: &Value, schema_name: &str, element_schema: Option<&str>) {
    let spec = accounting();
    let mut v = body.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ENVELOPE {
            o.remove(k);
        }
    }
    let mut errs = Vec::new();
    if let Some(es) = element_schema {
        let elements = v
            .as_object_mut()
            .and_then(|o| o.remove("Elements"))
            .unwrap_or_default();
        for (i, e) in elements.as_array().into_iter().flatten().enumerate() {
            check(
                spec,
                e,
                &spec["components"]["schemas"][es],
                &format!("Elements[{i}]"),
                &mut errs,
            );
        }
    }
    let schema = &spec["components"]["schemas"][schema_name];
    assert!(!schema.is_null(), "no schema {schema_name}");
    check(spec, &v, schema, schema_name, &mut errs);
    assert!(
        errs.is_empty(),
        "{schema_name} response does not match the spec:\n{}",
        errs.join("\n")
    );
}

#[tokio::test]
async fn responses_match_the_published_schemas() {
    let s = TestSandbox::start().await;
    let contact = s.contact("Spec Ltd").await;
    s.post("/Contacts", json!({"Contacts": [{"ContactID": contact, "EmailAddress": "spec@example.com", "ContactNumber": "S-1",
        "Addresses": [{"AddressType": "POBOX", "City": "Wellington"}], "Phones": [{"PhoneType": "MOBILE", "PhoneNumber": "021"}]}]})).await;
    let inv = s.invoice(&contact, "100").await;
    s.put("/Payments", json!({"Payments": [{"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Account": {"Code": "090"}, "Amount": 15}]})).await;
    let (_, cn) = s.put("/CreditNotes", json!({"CreditNotes": [{"Type": "ACCRECCREDIT", "Contact": {"ContactID": contact}, "Status": "AUTHORISED",
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200",
            "Tracking": [{"Name": "Region", "Option": "Export"}]}]}]})).await;
    validate(&cn, "CreditNotes");
    let cn_id = cn["CreditNotes"][0]["CreditNoteID"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, alloc) = s
        .put(
            &format!("/CreditNotes/{cn_id}/Allocations"),
            json!({"Allocations": [{"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Amount": 5}]}),
        )
        .await;
    assert_eq!(st, 200, "{alloc}");
    validate(&alloc, "Allocations");

    for (path, schema) in [
        ("/Organisation", "Organisations"),
        ("/Accounts", "Accounts"),
        ("/TaxRates", "TaxRates"),
        ("/Currencies", "Currencies"),
        ("/TrackingCategories", "TrackingCategories"),
        ("/Contacts?page=1", "Contacts"),
        ("/Invoices?page=1", "Invoices"),
        ("/Payments?page=1", "Payments"),
        ("/CreditNotes?page=1", "CreditNotes"),
    ] {
        let (st, body) = s.get(path).await;
        assert_eq!(st, 200, "{path}");
        validate(&body, schema);
    }
    let (_, one) = s
        .get(&format!("/Invoices/{}", inv["InvoiceID"].as_str().unwrap()))
        .await;
    assert!(
        !one["Invoices"][0]["Payments"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        !one["Invoices"][0]["CreditNotes"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    validate(&one, "Invoices");

    // Error shapes: per-element outcomes and the ValidationException.
    let bad = json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": contact}, "InvoiceNumber": inv["InvoiceNumber"],
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 1, "AccountCode": "200"}]}]});
    let (_, per_element) = s.put("/Invoices?summarizeErrors=false", bad.clone()).await;
    validate(&per_element, "Invoices");
    let (st, exception) = s.put("/Invoices", bad).await;
    assert_eq!(st, 400);
    validate_with(&exception, "Error", Some("Invoice"));
    let (_, contacts) = s
        .put(
            "/Contacts?summarizeErrors=false",
            json!({"Contacts": [{"Name": "Spec Ltd"}]}),
        )
        .await;
    validate(&contacts, "Contacts");
    let (_, payments) = s.put("/Payments?summarizeErrors=false", json!({"Payments": [{"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Account": {"Code": "090"}, "Amount": 1000}]})).await;
    validate(&payments, "Payments");
}

#[tokio::test]
async fn connections_match_the_identity_schema() {
    let s = TestSandbox::start().await;
    let spec = load("xero-identity.yaml");
    let conns: Value = s
        .client
        .get(format!("{}/connections", s.base))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut errs = Vec::new();
    for c in conns.as_array().unwrap() {
        check(
            &spec,
            c,
            &spec["components"]["schemas"]["Connection"],
            "Connection",
            &mut errs,
        );
    }
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}
