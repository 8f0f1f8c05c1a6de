//! Address normalisation: trimmed and collapsed whitespace, countries as ISO 3166-1 alpha-2 (from
//! a code or a name, via `celes`), region codes and postcodes upper-cased, shouted or all-lower
//! city names title-cased, street lines folded to Xero's limits. When anything changed, the
//! address as sent is kept in `original`.

use crate::clarity;
use celes::Country;
use ledgerline_contract::v1::Address;
use std::str::FromStr;

/// Xero: AddressLine1..4, 500 characters each.
pub const MAX_LINES: usize = 4;
/// Xero: characters per address line.
pub const MAX_LINE_CHARS: usize = 500;
/// Xero: City and Region.
pub const MAX_CITY_CHARS: usize = 255;
/// Xero: PostalCode.
pub const MAX_POSTAL_CHARS: usize = 50;
/// Xero: Country.
pub const MAX_COUNTRY_CHARS: usize = 50;

/// Normalises one address.
pub fn normalize(src: &clarity::Address) -> Address {
    let company = clean(src.company.as_deref());
    let mut lines = Vec::new();
    for l in [&src.street1, &src.street2, &src.street3] {
        let l = clean(l.as_deref());
        if !l.is_empty() {
            lines.push(l);
        }
    }
    let lines = fold_lines(lines);
    let city = truncate(&fix_case(&clean(src.city.as_deref())), MAX_CITY_CHARS);
    let region_code = clean(src.region_code.as_deref()).to_uppercase();
    let region_name = truncate(&clean(src.region_name.as_deref()), MAX_CITY_CHARS);
    let postal_code = truncate(
        &clean(src.postal_code.as_deref()).to_uppercase(),
        MAX_POSTAL_CHARS,
    );
    let code_in = clean(src.country_code.as_deref());
    let name_in = clean(src.country_name.as_deref());
    let (country_code, country_name) = match country(&code_in).or_else(|| country(&name_in)) {
        Some(c) => {
            let name = match country(&name_in) {
                // A name as sent (in any case) reads better than the ISO long form, but an
                // abbreviation ("USA") does not.
                Some(n) if n.alpha2 == c.alpha2 && name_in.chars().count() > 3 => {
                    title_case(&name_in)
                }
                _ => c.long_name.to_owned(),
            };
            (c.alpha2.to_owned(), truncate(&name, MAX_COUNTRY_CHARS))
        }
        // Unknown country: keep what was sent as the name, so a person can see it.
        None => (
            String::new(),
            truncate(
                if name_in.is_empty() {
                    &code_in
                } else {
                    &name_in
                },
                MAX_COUNTRY_CHARS,
            ),
        ),
    };
    let mut out = Address {
        company,
        lines,
        city,
        region_code,
        region_name,
        postal_code,
        country_code,
        country_name,
        original: String::new(),
    };
    if changed(src, &out) {
        out.original = serde_json::to_string(src).expect("address serializes");
    }
    out
}

/// Resolves a code (alpha-2, alpha-3, numeric) or an English name or alias, in any case.
pub fn country(raw: &str) -> Option<Country> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(c) = Country::from_str(t) {
        return Some(c);
    }
    // celes keys names without spaces or punctuation ("newzealand").
    let squashed: String = t
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    let squashed = squashed
        .strip_prefix("the")
        .filter(|s| s.len() > 3)
        .unwrap_or(&squashed);
    Country::from_str(squashed)
        .or_else(|_| Country::from_alias(squashed))
        .or_else(|_| Country::from_name(squashed))
        .ok()
}

fn changed(src: &clarity::Address, out: &Address) -> bool {
    let same = |a: &Option<String>, b: &str| a.as_deref().unwrap_or("") == b;
    let src_lines: Vec<&str> = [&src.street1, &src.street2, &src.street3]
        .into_iter()
        .filter_map(|l| l.as_deref())
        .filter(|l| !l.is_empty())
        .collect();
    let country_ok = src
        .country_code
        .as_deref()
        .is_none_or(|c| c == out.country_code)
        && src
            .country_name
            .as_deref()
            .is_none_or(|n| n == out.country_name)
        && (src.country_code.is_some() || out.country_code.is_empty());
    !(same(&src.company, &out.company)
        && src_lines == out.lines.iter().map(String::as_str).collect::<Vec<_>>()
        && same(&src.city, &out.city)
        && same(&src.region_code, &out.region_code)
        && same(&src.region_name, &out.region_name)
        && same(&src.postal_code, &out.postal_code)
        && country_ok)
}

/// Trims and collapses runs of whitespace to one space.
pub fn clean(s: Option<&str>) -> String {
    let s = s.unwrap_or("");
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Title-cases text that is all upper or all lower case; mixed case is left as the store had it.
fn fix_case(s: &str) -> String {
    let letters = s.chars().filter(|c| c.is_alphabetic());
    let has_upper = letters.clone().any(char::is_uppercase);
    let has_lower = letters.clone().any(char::is_lowercase);
    if has_upper && has_lower || !(has_upper || has_lower) {
        return s.to_owned();
    }
    title_case(s)
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        start = c.is_whitespace() || c == '-';
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Splits over-long lines at a space (else hard), then merges the overflow into the last of
/// the allowed lines; only text beyond the last line's limit is lost (and kept in `original`).
pub fn fold_lines(lines: Vec<String>) -> Vec<String> {
    let mut split = Vec::new();
    for line in lines {
        let mut rest: &str = &line;
        while rest.chars().count() > MAX_LINE_CHARS {
            let cut = rest
                .char_indices()
                .take(MAX_LINE_CHARS + 1)
                .filter(|(_, c)| *c == ' ')
                .map(|(i, _)| i)
                .last()
                .filter(|i| *i > 0)
                .unwrap_or_else(|| {
                    rest.char_indices()
                        .nth(MAX_LINE_CHARS)
                        .map_or(rest.len(), |(i, _)| i)
                });
            split.push(rest[..cut].trim_end().to_owned());
            rest = rest[cut..].trim_start();
        }
        if !rest.is_empty() {
            split.push(rest.to_owned());
        }
    }
    if split.len() > MAX_LINES {
        let tail = split.split_off(MAX_LINES - 1).join(", ");
        split.push(truncate(&tail, MAX_LINE_CHARS));
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(code: Option<&str>, name: Option<&str>) -> clarity::Address {
        clarity::Address {
            street1: Some("  12   Queen Street ".into()),
            city: Some("AUCKLAND".into()),
            region_code: Some("auk".into()),
            postal_code: Some(" sw1a 1aa ".into()),
            country_code: code.map(Into::into),
            country_name: name.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn countries_from_codes_and_names() {
        for (code, name, want) in [
            (Some("NZ"), None, "NZ"),
            (Some("nz"), None, "NZ"),
            (None, Some("new zealand"), "NZ"),
            (None, Some("NEW ZEALAND"), "NZ"),
            (Some("NZ"), Some("new zealand"), "NZ"),
            (None, Some("Australia"), "AU"),
            (Some("AUS"), None, "AU"),
            (None, Some("United Kingdom"), "GB"),
            (None, Some("United States"), "US"),
            (None, Some("USA"), "US"),
        ] {
            let a = normalize(&addr(code, name));
            assert_eq!(a.country_code, want, "{code:?} {name:?}");
        }
        let a = normalize(&addr(None, Some("new zealand")));
        assert_eq!(a.country_name, "New Zealand");
        let a = normalize(&addr(None, Some("Atlantis")));
        assert_eq!(
            (a.country_code.as_str(), a.country_name.as_str()),
            ("", "Atlantis")
        );
    }

    #[test]
    fn cleans_and_keeps_original() {
        let a = normalize(&addr(Some("NZ"), Some("New Zealand")));
        assert_eq!(a.lines, ["12 Queen Street"]);
        assert_eq!(a.city, "Auckland");
        assert_eq!(a.region_code, "AUK");
        assert_eq!(a.postal_code, "SW1A 1AA");
        assert!(a.original.contains("AUCKLAND"), "{}", a.original);
        let tidy = clarity::Address {
            street1: Some("12 Queen Street".into()),
            city: Some("Auckland".into()),
            country_code: Some("NZ".into()),
            country_name: Some("New Zealand".into()),
            ..Default::default()
        };
        assert_eq!(normalize(&tidy).original, "");
    }

    #[test]
    fn folds_long_lines() {
        let long = "word ".repeat(300);
        let lines = fold_lines(vec![long.clone(), "b".into(), "c".into(), "d".into()]);
        assert_eq!(lines.len(), MAX_LINES);
        assert!(lines.iter().all(|l| l.chars().count() <= MAX_LINE_CHARS));
        assert!(lines[0].ends_with("word"));
        let hard = fold_lines(vec!["x".repeat(1200)]);
        assert_eq!(
            hard.iter().map(String::len).collect::<Vec<_>>(),
            [500, 500, 200]
        );
    }
}
