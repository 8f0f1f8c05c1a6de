//! Xero's JSON conventions: MS-JSON dates (`/Date(ms+0000)/`) and lenient date input.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Formats an instant the way Xero writes `UpdatedDateUTC`.
pub fn ms_date(t: DateTime<Utc>) -> String {
    format!("/Date({}+0000)/", t.timestamp_millis())
}

/// Formats a calendar date (midnight UTC) the way Xero writes `Date` and `DueDate`.
pub fn ms_day(d: NaiveDate) -> String {
    ms_date(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()))
}

/// Parses `/Date(ms+0000)/`, `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS[Z|offset]`.
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
        let digits: String = inner
            .chars()
            .enumerate()
            .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '-'))
            .map(|(_, c)| c)
            .collect();
        let ms: i64 = digits.parse().ok()?;
        return Utc.timestamp_millis_opt(ms).single();
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()))
}

/// Parses a request date into a calendar date.
pub fn parse_day(s: &str) -> Option<NaiveDate> {
    parse_instant(s).map(|t| t.date_naive())
}

/// `#[serde(with = ...)]` for a `NaiveDate` written as `/Date(ms+0000)/`.
pub mod day {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes Xero's MS-JSON form.
    pub fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&ms_day(*d))
    }

    /// Reads any of the accepted date forms.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let s = String::deserialize(d)?;
        parse_day(&s).ok_or_else(|| D::Error::custom(format!("invalid date {s:?}")))
    }
}

/// `#[serde(with = ...)]` for an optional `NaiveDate`.
pub mod opt_day {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes `Some` as MS-JSON and `None` as null.
    pub fn serialize<S: Serializer>(d: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&ms_day(*d)),
            None => s.serialize_none(),
        }
    }

    /// Reads a date, null, or an empty string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => parse_day(&s)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("invalid date {s:?}"))),
        }
    }
}

/// `#[serde(with = ...)]` for a `DateTime<Utc>` written as `/Date(ms+0000)/`.
pub mod instant {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes Xero's MS-JSON form.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&ms_date(*t))
    }

    /// Reads any of the accepted forms.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        parse_instant(&s).ok_or_else(|| D::Error::custom(format!("invalid date {s:?}")))
    }
}

/// `#[serde(with = ...)]` for an ISO-8601 string companion field (`UpdatedDateUTCString`).
pub mod iso {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes `YYYY-MM-DDTHH:MM:SS`.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format("%Y-%m-%dT%H:%M:%S").to_string())
    }

    /// Reads any of the accepted forms.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        parse_instant(&s).ok_or_else(|| D::Error::custom(format!("invalid date {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_in_ms_json() {
        let d = NaiveDate::from_ymd_opt(2019, 3, 11).unwrap();
        assert_eq!(ms_day(d), "/Date(1552262400000+0000)/");
        assert_eq!(parse_day("/Date(1552262400000+0000)/"), Some(d));
        assert_eq!(parse_day("2019-03-11"), Some(d));
        assert_eq!(parse_day("2019-03-11T00:00:00"), Some(d));
        assert_eq!(parse_day("nonsense"), None);
    }
}
