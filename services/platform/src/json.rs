//! JSON numbers to and from [`Decimal`] without ever passing through `f64`.
//!
//! The workspace decision: every money amount read from JSON (Clarity webhooks, Xero responses,
//! the sandbox's requests) is deserialized through these functions. They take the number's own
//! text (via `serde_json::value::RawValue`) and parse it as a decimal, so `0.1` stays `0.1` and a
//! 4-dp unit price keeps every digit. Strings holding a number are accepted too, because some
//! senders quote amounts. Serialization writes the decimal's text as a JSON number.
//!
//! Use with `#[serde(with = "ledgerline_platform::json::decimal")]`, or
//! `ledgerline_platform::json::opt_decimal` for `Option<Decimal>`.

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde_json::value::RawValue;
use std::str::FromStr;

/// Parses the text of a JSON number or a quoted decimal string.
pub fn parse_decimal_text(raw: &str) -> Result<Decimal, String> {
    let text = raw.trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
        .trim();
    if text.is_empty() {
        return Err("empty number".to_owned());
    }
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).map_err(|e| format!("invalid decimal {text:?}: {e}"))
    } else {
        Decimal::from_str(text).map_err(|e| format!("invalid decimal {text:?}: {e}"))
    }
}

/// `#[serde(with = ...)]` for a required [`Decimal`] written as a JSON number.
pub mod decimal {
    use super::*;

    /// Writes the decimal's exact text as a JSON number.
    pub fn serialize<S: serde::Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(value.normalize().to_string())
            .map_err(serde::ser::Error::custom)?;
        serde::Serialize::serialize(&raw, s)
    }

    /// Reads a JSON number (or a quoted decimal) from its text.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let raw: Box<RawValue> = serde::Deserialize::deserialize(d)?;
        parse_decimal_text(raw.get()).map_err(D::Error::custom)
    }
}

/// `#[serde(with = ...)]` for an optional [`Decimal`]; `null` and a missing field are `None`
/// (pair it with `#[serde(default)]`).
pub mod opt_decimal {
    use super::*;

    /// Writes `Some` as a JSON number and `None` as `null`.
    pub fn serialize<S: serde::Serializer>(
        value: &Option<Decimal>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::decimal::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    /// Reads a JSON number, a quoted decimal, or `null`.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Decimal>, D::Error> {
        let raw: Option<Box<RawValue>> = serde::Deserialize::deserialize(d)?;
        match raw {
            None => Ok(None),
            Some(r) if r.get() == "null" => Ok(None),
            Some(r) => parse_decimal_text(r.get())
                .map(Some)
                .map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Amounts {
        #[serde(with = "decimal")]
        price: Decimal,
        #[serde(default, with = "opt_decimal")]
        tax: Option<Decimal>,
    }

    #[test]
    fn numbers_keep_every_digit() {
        let a: Amounts =
            serde_json::from_str(r#"{"price": 0.1000, "tax": "12.3456789012345678"}"#).unwrap();
        assert_eq!(a.price.to_string(), "0.1000");
        assert_eq!(a.tax.unwrap().to_string(), "12.3456789012345678");
        // 0.1 + 0.2 is exactly 0.3 only when no float was involved.
        let b: Amounts = serde_json::from_str(r#"{"price": 0.2}"#).unwrap();
        assert_eq!(a.price + b.price, Decimal::from_str("0.3").unwrap());
        assert_eq!(b.tax, None);
    }

    #[test]
    fn writes_json_numbers() {
        let a = Amounts {
            price: Decimal::from_str("19.9900").unwrap(),
            tax: None,
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"price":19.99,"tax":null}"#
        );
    }

    #[test]
    fn rejects_non_numbers() {
        assert!(serde_json::from_str::<Amounts>(r#"{"price": "abc"}"#).is_err());
        assert!(serde_json::from_str::<Amounts>(r#"{"price": true}"#).is_err());
        assert_eq!(parse_decimal_text("1e2").unwrap(), Decimal::from(100));
    }
}
