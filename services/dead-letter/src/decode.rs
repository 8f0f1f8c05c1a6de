//! Payloads as a person reads them: protobuf by its `Ledgerline-Schema` header, JSON
//! pretty-printed, with customer data masked for viewers; and the few facts (order number,
//! customer, version) the queue searches and resolves on.

use crate::entry::PayloadFacts;
use ledgerline_contract::v1::{CustomerEvent, DeadLetter, OrderEvent, RefundEvent, XeroFact};
use ledgerline_contract::{RAW_CLARITY_SCHEMA, Schema};
use prost::Message;
use serde_json::Value;

/// The payload as JSON (protobuf decoded by schema, JSON as is), or `None` when it is neither.
pub fn view(schema: &str, payload: &[u8]) -> Option<Value> {
    fn proto<M: Message + Default + serde::Serialize>(payload: &[u8]) -> Option<Value> {
        M::decode(payload)
            .ok()
            .and_then(|m| serde_json::to_value(m).ok())
    }
    match schema {
        s if s == OrderEvent::NAME => proto::<OrderEvent>(payload),
        s if s == RefundEvent::NAME => proto::<RefundEvent>(payload),
        s if s == CustomerEvent::NAME => proto::<CustomerEvent>(payload),
        s if s == XeroFact::NAME => proto::<XeroFact>(payload),
        s if s == DeadLetter::NAME => proto::<DeadLetter>(payload),
        _ => serde_json::from_slice(payload).ok(),
    }
}

/// An operator's JSON edit of a payload, back to its wire form: protobuf by schema (the JSON
/// [`view`] gives, edited), JSON as is (checked to parse).
pub fn encode(schema: &str, json: &str) -> Result<Vec<u8>, String> {
    fn proto<M: Message + serde::de::DeserializeOwned>(json: &str) -> Result<Vec<u8>, String> {
        serde_json::from_str::<M>(json)
            .map(|m| m.encode_to_vec())
            .map_err(|e| format!("not a valid {}: {e}", std::any::type_name::<M>()))
    }
    match schema {
        s if s == OrderEvent::NAME => proto::<OrderEvent>(json),
        s if s == RefundEvent::NAME => proto::<RefundEvent>(json),
        s if s == CustomerEvent::NAME => proto::<CustomerEvent>(json),
        _ => serde_json::from_str::<Value>(json)
            .map(|_| json.as_bytes().to_vec())
            .map_err(|e| format!("not JSON: {e}")),
    }
}

/// Order number, customer and version from a payload.
pub fn facts(schema: &str, payload: &[u8]) -> PayloadFacts {
    let mut f = PayloadFacts::default();
    if schema == OrderEvent::NAME {
        if let Ok(e) = OrderEvent::decode(payload)
            && let Some(o) = e.order
        {
            f.order_number = o.number;
            f.version = o.version;
            if let Some(c) = o.customer {
                f.customer = if c.email.is_empty() {
                    c.account_name
                } else {
                    c.email
                };
            }
        }
    } else if schema == RefundEvent::NAME {
        if let Ok(e) = RefundEvent::decode(payload) {
            f.order_number = e.order_number;
            f.version = e.order_version;
        }
    } else if schema == CustomerEvent::NAME {
        if let Ok(e) = CustomerEvent::decode(payload)
            && let Some(c) = e.customer
        {
            f.customer = c.email;
            f.version = c.version;
        }
    } else if (schema == RAW_CLARITY_SCHEMA || schema.is_empty())
        && let Ok(v) = serde_json::from_slice::<Value>(payload)
    {
        let d = &v["data"];
        let text = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
        f.order_number = if d["SalesOrderKey"].is_string() {
            text("SalesOrderKey")
        } else {
            text("CustomKey")
        };
        f.customer = ["UserContactEmail", "Email", "AccountName"]
            .iter()
            .map(|k| text(k))
            .find(|s| !s.is_empty())
            .unwrap_or_default();
        f.version = d["Version"].as_u64().unwrap_or_default();
    }
    f
}

/// Masks customer data in place: emails, phone numbers, names and addresses.
pub fn mask(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if personal(k) && !matches!(val, Value::Object(_) | Value::Array(_)) {
                    if !val.is_null() {
                        *val = Value::String(mask_text(&val.to_string()));
                    }
                } else {
                    mask(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        Value::String(s) if s.contains('@') && s.contains('.') => *s = mask_text(s),
        _ => {}
    }
}

/// Keys whose values are customer data (Clarity's and the canonical model's names).
fn personal(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "email",
        "phone",
        "firstname",
        "first_name",
        "lastname",
        "last_name",
        "address",
        "lines",
        "line1",
        "line2",
        "street",
        "city",
        "postal",
        "zip",
        "userkey",
        "contactname",
    ]
    .iter()
    .any(|p| k.contains(p))
}

/// `jane.doe@example.co.nz` → `j•••@example.co.nz`; anything else → its first character and dots.
pub fn mask_text(s: &str) -> String {
    let s = s.trim_matches('"');
    if s.is_empty() {
        return String::new();
    }
    let first: String = s.chars().take(1).collect();
    match s.split_once('@') {
        Some((_, domain)) => format!("{first}•••@{domain}"),
        None => format!("{first}•••"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_data_is_masked_and_the_rest_is_kept() {
        let mut v = serde_json::json!({
            "data": {
                "CustomKey": "SO-1042",
                "UserContactEmail": "jane.doe@example.co.nz",
                "BillingContact": {"FirstName": "Jane", "Address1": "12 Queen St", "City": "Auckland"},
                "Notes": ["call jane@example.com"],
                "Totals": {"Total": 115.0}
            }
        });
        mask(&mut v);
        let d = &v["data"];
        assert_eq!(d["CustomKey"], "SO-1042");
        assert_eq!(d["UserContactEmail"], "j•••@example.co.nz");
        assert_eq!(d["BillingContact"]["FirstName"], "J•••");
        assert_eq!(d["BillingContact"]["City"], "A•••");
        assert_eq!(d["Notes"][0], "c•••@example.com");
        assert_eq!(d["Totals"]["Total"], 115.0);
    }

    #[test]
    fn facts_come_from_clarity_json() {
        let body = br#"{"data":{"CustomKey":"SO-7","Version":3,"UserContactEmail":"a@b.nz"}}"#;
        let f = facts(RAW_CLARITY_SCHEMA, body);
        assert_eq!(
            (f.order_number.as_str(), f.customer.as_str(), f.version),
            ("SO-7", "a@b.nz", 3)
        );
        assert!(view(RAW_CLARITY_SCHEMA, body).is_some());
        assert!(view(OrderEvent::NAME, b"\xff\xff").is_none());
    }
}
