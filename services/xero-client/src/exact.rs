//! Xero's numbers, exactly.
//!
//! serde_json turns a JSON number with a fraction into an `f64` as it parses, and the workspace
//! keeps its `arbitrary_precision` feature off (see `ledgerline_platform::json`). So before a
//! response is parsed, every number token with a fraction or an exponent is quoted: `12.345`
//! becomes `"12.345"`, a string holding Xero's own digits, and integers stay numbers (serde_json
//! keeps those exact). [`amount`] then reads either form as a [`Decimal`], and refuses what is
//! not a number: an amount that cannot be read is an error, never 0.

use rust_decimal::Decimal;
use serde_json::Value;
use std::borrow::Cow;

/// An amount in a Xero response that is missing or not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable amount {field}: {why}")]
pub struct AmountError {
    /// The field, e.g. `Total` or `/Invoice/AmountDue`.
    pub field: String,
    /// What was there instead.
    pub why: String,
}

/// `text` with every JSON number that has a fraction or exponent quoted (see the module doc).
/// Text that is not JSON passes through unchanged, for the parser to refuse.
pub fn exact_numbers(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    if !b.contains(&b'.') && !b.iter().any(|c| matches!(c, b'e' | b'E')) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 64);
    let (mut i, mut copied) = (0, 0);
    let mut in_string = false;
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if c == b'-' || c.is_ascii_digit() {
            let start = i;
            i += 1;
            while i < b.len() && matches!(b[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                i += 1;
            }
            let token = &text[start..i];
            if token.contains(['.', 'e', 'E']) {
                out.push_str(&text[copied..start]);
                out.push('"');
                out.push_str(token);
                out.push('"');
                copied = i;
            }
            continue;
        }
        i += 1;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Reads an amount: a quoted number (as [`exact_numbers`] leaves it) or an integer.
pub fn amount(v: &Value, field: &str) -> Result<Decimal, AmountError> {
    let err = |why: String| AmountError {
        field: field.to_owned(),
        why,
    };
    match v {
        Value::String(s) => ledgerline_platform::json::parse_decimal_text(s).map_err(err),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            ledgerline_platform::json::parse_decimal_text(&n.to_string()).map_err(err)
        }
        Value::Number(n) => Err(err(format!(
            "{n} arrived as a float (the response was not read through exact_numbers)"
        ))),
        Value::Null => Err(err("missing".into())),
        other => Err(err(format!("not a number: {other}"))),
    }
}

/// The amount at `key` of an object, or at a JSON pointer (`/Invoice/AmountDue`).
pub fn amount_at(v: &Value, key: &str) -> Result<Decimal, AmountError> {
    let found = if key.starts_with('/') {
        v.pointer(key)
    } else {
        v.get(key)
    };
    amount(found.unwrap_or(&Value::Null), key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn fractions_are_quoted_and_integers_and_strings_kept() {
        let text = r#"{"Total":1234.5678901234567890123,"Day":20,"Name":"1.5 kg \"x\" 2.5","Rate":1e-3,"Neg":-0.10,"L":[1,2.50]}"#;
        let fixed = exact_numbers(text);
        assert_eq!(
            fixed,
            r#"{"Total":"1234.5678901234567890123","Day":20,"Name":"1.5 kg \"x\" 2.5","Rate":"1e-3","Neg":"-0.10","L":[1,"2.50"]}"#
        );
        let v: Value = serde_json::from_str(&fixed).unwrap();
        assert_eq!(
            amount_at(&v, "Total").unwrap(),
            Decimal::from_str("1234.5678901234567890123").unwrap(),
            "20 significant digits survive"
        );
        assert_eq!(amount_at(&v, "Day").unwrap(), Decimal::from(20));
        assert_eq!(
            amount_at(&v, "Neg").unwrap(),
            Decimal::from_str("-0.10").unwrap()
        );
        assert_eq!(
            amount_at(&v, "Rate").unwrap(),
            Decimal::from_str("0.001").unwrap()
        );
        assert_eq!(v["Name"], "1.5 kg \"x\" 2.5", "strings are untouched");
    }

    #[test]
    fn unreadable_amounts_are_errors_never_zero() {
        let v: Value = serde_json::json!({"Total": "abc", "Flag": true, "F": 1.5});
        assert!(amount_at(&v, "Total").is_err());
        assert!(amount_at(&v, "Flag").is_err());
        assert!(amount_at(&v, "Missing").is_err());
        assert!(amount_at(&v, "F").is_err(), "a float is refused");
    }

    #[test]
    fn text_without_fractions_is_borrowed() {
        assert!(matches!(exact_numbers(r#"{"a":1}"#), Cow::Borrowed(_)));
        assert!(matches!(exact_numbers(r#"{"a":"1.5"}"#), Cow::Borrowed(_)));
    }
}
