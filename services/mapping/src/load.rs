//! Loading: embedded defaults, then the operator's file, then the KV overlay entries (in key
//! order), merged table by table (arrays replace), deserialized and validated. Every error names
//! where the bad value came from, the key and the reason.

use crate::schema::{Mapping, PLACEHOLDERS, placeholders};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// The embedded defaults (also the starting point every file is merged over).
pub const DEFAULTS: &str = include_str!("defaults.toml");

/// Origin name of the embedded defaults in errors.
pub const DEFAULTS_ORIGIN: &str = "embedded defaults";

/// A mapping that failed to load, naming the source, the key and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping {origin}: {key}: {reason}")]
pub struct MappingError {
    /// The file path, `kv mapping_overlay/<key>`, or "embedded defaults".
    pub origin: String,
    /// The key at fault (`tax_codes.GST15.rate`), or a position when the text does not parse.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl MappingError {
    fn new(origin: &str, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            origin: origin.to_owned(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// One layer of the mapping: its origin and TOML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Where it came from, for errors.
    pub origin: String,
    /// TOML text (a partial mapping).
    pub text: String,
}

impl Layer {
    /// A layer from a file.
    pub fn from_file(path: &Path) -> Result<Self, MappingError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| MappingError::new(&origin, "(file)", format!("cannot read: {e}")))?;
        Ok(Self { origin, text })
    }

    /// A layer from a KV overlay entry.
    pub fn from_overlay(key: &str, value: &[u8]) -> Result<Self, MappingError> {
        let origin = format!(
            "kv {}/{key}",
            ledgerline_contract::buckets::MAPPING_OVERLAY.bucket
        );
        let text = String::from_utf8(value.to_vec())
            .map_err(|_| MappingError::new(&origin, "(value)", "not UTF-8 text"))?;
        Ok(Self { origin, text })
    }
}

/// A validated mapping and its revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// The mapping.
    pub mapping: Mapping,
    /// Short hash of the mapping's canonical form: equal mappings have equal revisions, whatever
    /// the files looked like.
    pub revision: String,
}

impl Effective {
    /// The embedded defaults.
    pub fn defaults() -> Self {
        load_layers(&[]).expect("embedded defaults are valid")
    }
}

/// Loads the defaults with the given layers on top, validating the result.
pub fn load_layers(layers: &[Layer]) -> Result<Effective, MappingError> {
    let mut merged = parse_table(DEFAULTS_ORIGIN, DEFAULTS)?;
    let mut origins: Vec<(String, toml::Table)> = Vec::new();
    for layer in layers {
        let table = parse_table(&layer.origin, &layer.text)?;
        // Each layer alone (over the defaults) must deserialize, so a type error names its layer.
        let mut alone = parse_table(DEFAULTS_ORIGIN, DEFAULTS)?;
        merge(&mut alone, table.clone());
        deserialize(&layer.origin, alone)?;
        merge(&mut merged, table.clone());
        origins.push((layer.origin.clone(), table));
    }
    let mut mapping = deserialize("merged mapping", merged)?;
    normalize(&mut mapping);
    if let Err((key, reason)) = validate(&mapping) {
        // Blame the topmost layer that sets the key (or its table).
        let origin = origins
            .iter()
            .rev()
            .find(|(_, t)| sets(t, &key))
            .map(|(o, _)| o.as_str())
            .unwrap_or(DEFAULTS_ORIGIN);
        return Err(MappingError::new(origin, key, reason));
    }
    let revision = revision(&mapping);
    Ok(Effective { mapping, revision })
}

/// The revision of a mapping: the first 12 hex digits of SHA-256 over its canonical JSON.
pub fn revision(mapping: &Mapping) -> String {
    let json = serde_json::to_vec(mapping).expect("mapping serializes");
    let digest = Sha256::digest(&json);
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_table(origin: &str, text: &str) -> Result<toml::Table, MappingError> {
    text.parse::<toml::Table>().map_err(|e| {
        let at = e
            .span()
            .map(|s| line_col(text, s.start))
            .unwrap_or_else(|| "(text)".to_owned());
        MappingError::new(origin, at, e.message().trim().to_owned())
    })
}

fn deserialize(origin: &str, table: toml::Table) -> Result<Mapping, MappingError> {
    // Round-trip through text so the error carries a span, from which the key is recovered.
    let text =
        toml::to_string(&table).map_err(|e| MappingError::new(origin, "(table)", e.to_string()))?;
    toml::from_str::<Mapping>(&text).map_err(|e| {
        let key = e
            .span()
            .map(|s| key_at(&text, s.start))
            .unwrap_or_else(|| "(mapping)".to_owned());
        MappingError::new(origin, key, e.message().trim().to_owned())
    })
}

fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {col}")
}

/// The dotted key at `offset` in TOML text written by `toml::to_string`: the nearest table header
/// above it plus the key on its line.
fn key_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let header = before[..line_start]
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('['))
        .map(|l| l.trim().trim_matches(|c| c == '[' || c == ']').to_owned());
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned());
    match (header, key) {
        (Some(h), Some(k)) if !line.trim_start().starts_with('[') => format!("{h}.{k}"),
        (_, Some(k)) => k,
        (Some(h), None) => h,
        (None, None) => "(mapping)".to_owned(),
    }
}

/// Deep merge: tables merge key by key, anything else (arrays included) is replaced.
pub fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn sets(table: &toml::Table, dotted: &str) -> bool {
    let mut current = table;
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let name = part.split('[').next().unwrap_or(part);
        match current.get(name) {
            None => return false,
            Some(toml::Value::Table(t)) if i + 1 < parts.len() => current = t,
            Some(_) => return true,
        }
    }
    true
}

fn normalize(m: &mut Mapping) {
    m.lines.tax_tolerance = m.lines.tax_tolerance.normalize();
    for t in m.tax_codes.values_mut() {
        t.rate = t.rate.normalize();
    }
    m.currency.base = m.currency.base.trim().to_ascii_uppercase();
    for c in &mut m.currency.allowed {
        *c = c.trim().to_ascii_uppercase();
    }
    m.currency.allowed.sort();
    m.currency.allowed.dedup();
}

/// The Clarity statuses of api_version 2026-11; each must be mapped.
pub const CLARITY_STATUSES: [&str; 13] = [
    "Pending",
    "On Hold",
    "Confirmed",
    "Backordered",
    "Split",
    "Partial Payment Received",
    "Full Payment Received",
    "Processing",
    "Shipped",
    "Shipped from Vendor",
    "Ready for Pickup",
    "Completed",
    "Void",
];

type Invalid = (String, String);

fn bad(key: impl Into<String>, reason: impl Into<String>) -> Result<(), Invalid> {
    Err((key.into(), reason.into()))
}

fn account_code(key: &str, code: &str) -> Result<(), Invalid> {
    // Xero AccountCode: up to 10 characters.
    if code.trim().is_empty() || code.len() > 10 {
        return bad(
            key,
            format!("{code:?} is not an account code (1 to 10 characters)"),
        );
    }
    Ok(())
}

fn validate(m: &Mapping) -> Result<(), Invalid> {
    for s in CLARITY_STATUSES {
        if !m.status.contains_key(s) {
            return bad(
                format!("status.\"{s}\""),
                "every Clarity status needs a canonical status",
            );
        }
    }
    if m.lines.tax_tolerance < Decimal::ZERO || m.lines.tax_tolerance > Decimal::ONE {
        return bad("lines.tax_tolerance", "must be between 0 and 1");
    }
    for (code, t) in &m.tax_codes {
        let key = format!("tax_codes.{code}");
        if t.rate < Decimal::ZERO || t.rate >= Decimal::ONE {
            return bad(
                format!("{key}.rate"),
                format!("{} is not a fraction in [0, 1)", t.rate),
            );
        }
        if t.tax_type.trim().is_empty() {
            return bad(format!("{key}.tax_type"), "must not be empty");
        }
        if let Some(a) = &t.sales_account {
            account_code(&format!("{key}.sales_account"), a)?;
        }
    }
    if !m.tax_codes.contains_key(&m.tax.default_code) {
        return bad(
            "tax.default_code",
            format!("{:?} is not one of [tax_codes]", m.tax.default_code),
        );
    }
    if m.tax.untaxed_tax_type.trim().is_empty() {
        return bad("tax.untaxed_tax_type", "must not be empty");
    }
    let a = &m.accounts;
    for (k, v) in [
        ("product", &a.product),
        ("shipping", &a.shipping),
        ("handling", &a.handling),
        ("fee", &a.fee),
        ("discount", &a.discount),
        ("rounding", &a.rounding),
    ] {
        account_code(&format!("accounts.{k}"), v)?;
    }
    for (k, p) in [
        ("number", &m.invoice.number),
        ("reference", &m.invoice.reference),
        ("credit_note_number", &m.invoice.credit_note_number),
    ] {
        if let Some(unknown) = placeholders(p)
            .into_iter()
            .find(|n| !PLACEHOLDERS.contains(&n.as_str()))
        {
            return bad(
                format!("invoice.{k}"),
                format!(
                    "unknown placeholder {{{unknown}}} (known: {})",
                    PLACEHOLDERS.join(", ")
                ),
            );
        }
    }
    let number = placeholders(&m.invoice.number);
    if !number.iter().any(|n| n == "number" || n == "id") {
        return bad(
            "invoice.number",
            "must contain {number} or {id}, so each order's number is unique",
        );
    }
    if !placeholders(&m.invoice.credit_note_number)
        .iter()
        .any(|n| n == "return")
    {
        return bad("invoice.credit_note_number", "must contain {return}");
    }
    if m.invoice.default_due_days > 366 {
        return bad("invoice.default_due_days", "at most 366 days");
    }
    account_code("payments.default_account", &m.payments.default_account)?;
    for (method, code) in &m.payments.methods {
        account_code(&format!("payments.methods.\"{method}\""), code)?;
    }
    if m.tracking.len() > 2 {
        return bad(
            "tracking",
            "Xero allows at most two active tracking categories",
        );
    }
    let mut names = BTreeMap::new();
    for (i, t) in m.tracking.iter().enumerate() {
        let key = format!("tracking[{i}]");
        if t.name.trim().is_empty() || t.name.len() > 100 {
            return bad(format!("{key}.name"), "1 to 100 characters");
        }
        if names.insert(t.name.to_lowercase(), i).is_some() {
            return bad(format!("{key}.name"), format!("{:?} appears twice", t.name));
        }
        for (j, r) in t.rules.iter().enumerate() {
            if r.value.trim().is_empty() || r.value.len() > 100 {
                return bad(format!("{key}.rules[{j}].value"), "1 to 100 characters");
            }
            if let Some(c) = &r.country
                && (c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return bad(
                    format!("{key}.rules[{j}].country"),
                    format!("{c:?} is not an ISO 3166-1 alpha-2 code"),
                );
            }
        }
    }
    for (i, f) in m.fields.iter().enumerate() {
        if f.attribute.trim().is_empty() {
            return bad(format!("fields[{i}].attribute"), "must not be empty");
        }
    }
    let currency = |key: &str, c: &str| {
        if iso_code(c) {
            Ok(())
        } else {
            bad(key, format!("{c:?} is not an ISO 4217 code"))
        }
    };
    currency("currency.base", &m.currency.base)?;
    for c in &m.currency.allowed {
        currency("currency.allowed", c)?;
    }
    if m.contacts.guest_contact_name.trim().is_empty() {
        return bad("contacts.guest_contact_name", "must not be empty");
    }
    Ok(())
}

fn iso_code(c: &str) -> bool {
    iso_currency::Currency::from_code(c).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{DiscountRule, FieldTarget, PatternValues};
    use ledgerline_contract::v1::{LineKind, OrderStatus};

    fn layer(origin: &str, text: &str) -> Layer {
        Layer {
            origin: origin.to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn defaults_load_with_the_issue_defaults() {
        let e = Effective::defaults();
        let m = &e.mapping;
        assert_eq!(m.status_for("Pending"), Some(OrderStatus::Confirmed));
        assert_eq!(
            m.status_for("Partial Payment Received"),
            Some(OrderStatus::PartiallyPaid)
        );
        assert_eq!(
            m.status_for("Ready for Pickup"),
            Some(OrderStatus::Fulfilled)
        );
        assert_eq!(m.status_for("Void"), Some(OrderStatus::Cancelled));
        assert_eq!(
            m.tax_type_for(LineKind::Product, "GST15", true),
            Some("OUTPUT2")
        );
        assert_eq!(
            m.tax_type_for(LineKind::Product, "GST10", true),
            Some("TAX001")
        );
        assert_eq!(
            m.tax_type_for(LineKind::Product, "GST0", true),
            Some("ZERORATED")
        );
        assert_eq!(m.tax_type_for(LineKind::Product, "GST99", true), None);
        assert_eq!(
            m.tax_type_for(LineKind::Product, "GST99", false),
            Some("NONE")
        );
        assert_eq!(m.account_for(LineKind::Product, "GST15"), "200");
        assert_eq!(m.account_for(LineKind::Shipping, "GST15"), "210");
        assert_eq!(m.payment_account("Credit Card"), "090");
        assert_eq!(e.revision.len(), 12);
        assert_eq!(e.revision, Effective::defaults().revision);
    }

    #[test]
    fn layers_merge_and_change_the_revision() {
        let base = Effective::defaults();
        let file = layer(
            "mapping.toml",
            "[lines]\nunallocated_discount = \"allocate\"\n[tax_codes.GST0]\nsales_account = \"220\"\n",
        );
        let e = load_layers(std::slice::from_ref(&file)).unwrap();
        assert_eq!(e.mapping.lines.unallocated_discount, DiscountRule::Allocate);
        // Other keys of the merged tables survive.
        assert_eq!(
            e.mapping.lines.tax_tolerance,
            base.mapping.lines.tax_tolerance
        );
        assert_eq!(e.mapping.account_for(LineKind::Product, "GST0"), "220");
        assert_eq!(e.mapping.tax_codes["GST0"].tax_type, "ZERORATED");
        assert_ne!(e.revision, base.revision);
        // The overlay wins over the file.
        let overlay = layer(
            "kv mapping_overlay/a",
            "[lines]\nunallocated_discount = \"line\"\n",
        );
        let e2 = load_layers(&[file, overlay]).unwrap();
        assert_eq!(e2.mapping.lines.unallocated_discount, DiscountRule::Line);
        // Formatting does not change the revision; content does.
        let same = load_layers(&[layer("x", "[accounts]\nproduct = \"200\"  # same\n")]).unwrap();
        assert_eq!(same.revision, base.revision);
    }

    #[test]
    fn errors_name_origin_key_and_reason() {
        let err =
            load_layers(&[layer("m.toml", "[tax_codes.GST15]\nrate = \"1.5\"\n")]).unwrap_err();
        assert_eq!(
            (err.origin.as_str(), err.key.as_str()),
            ("m.toml", "tax_codes.GST15.rate"),
            "{err}"
        );
        let err = load_layers(&[layer(
            "m.toml",
            "[lines]\nunallocated_discount = \"spread\"\n",
        )])
        .unwrap_err();
        assert_eq!(err.origin, "m.toml");
        assert!(err.key.contains("unallocated_discount"), "{err}");
        assert!(
            err.reason.contains("spread") || err.reason.contains("variant"),
            "{err}"
        );
        let err = load_layers(&[layer("m.toml", "[accounts]\nproduct = \n")]).unwrap_err();
        assert!(err.key.starts_with("line 2"), "{err}");
        let err = load_layers(&[
            layer("m.toml", "[invoice]\nnumber = \"{store}-{number}\"\n"),
            layer(
                "kv mapping_overlay/x",
                "[invoice]\nnumber = \"INV-{nmber}\"\n",
            ),
        ])
        .unwrap_err();
        assert_eq!(
            (err.origin.as_str(), err.key.as_str()),
            ("kv mapping_overlay/x", "invoice.number"),
            "{err}"
        );
        let err = load_layers(&[layer("m.toml", "[bogus]\nx = 1\n")]).unwrap_err();
        assert!(err.reason.contains("bogus"), "{err}");
        let err = load_layers(&[layer("m.toml", "[currency]\nbase = \"nz\"\n")]).unwrap_err();
        assert_eq!(err.key, "currency.base", "{err}");
    }

    #[test]
    fn patterns_and_fields() {
        let mut m = Effective::defaults().mapping;
        let v = PatternValues {
            store: "main",
            number: "SO-1",
            id: "1",
            po: "",
            ret: "RMA-9",
        };
        assert_eq!(m.invoice_number(&v), "SO-1");
        let mut attrs = BTreeMap::new();
        assert_eq!(m.invoice_reference(&v, &attrs), "SO-1");
        m.fields.push(crate::schema::FieldRule {
            attribute: "CampaignSource".into(),
            target: FieldTarget::InvoiceReference,
        });
        attrs.insert("CampaignSource".to_owned(), "news".to_owned());
        assert_eq!(m.invoice_reference(&v, &attrs), "news");
        assert_eq!(m.credit_note_number(&v), "RMA-9");
        assert_eq!(crate::schema::render("{store}-{number}", &v), "main-SO-1");
    }

    #[test]
    fn tracking_rules() {
        let m = Effective::defaults().mapping;
        let mut attrs = BTreeMap::new();
        let t = m.tracking_for(&attrs, "NZ", "CAN");
        assert_eq!(t["Sales Channel"], "Web Store");
        assert_eq!(t["Region"], "South Island");
        assert_eq!(
            m.tracking_for(&attrs, "NZ", "auk")["Region"],
            "North Island"
        );
        assert_eq!(m.tracking_for(&attrs, "US", "CA")["Region"], "Other");
        attrs.insert("XeroTrackingRegion".to_owned(), "Export".to_owned());
        assert_eq!(m.tracking_for(&attrs, "NZ", "AUK")["Region"], "Export");
    }
}
