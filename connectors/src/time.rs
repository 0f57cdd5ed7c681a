//! Timestamps as the bundle format writes them: RFC 3339 strings or Unix epoch milliseconds.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer};

/// Parses a timestamp given as an RFC 3339 string or as integer Unix epoch milliseconds.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Utc.timestamp_millis_opt(ms).single();
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Serde helper: deserialises a timestamp in either bundle form.
pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<DateTime<Utc>, D::Error> {
    de.deserialize_any(TimestampVisitor)
}

/// Visits numbers as epoch milliseconds and strings as either form, without the trial
/// parses (and thrown-away errors) of an untagged enum: this runs once per record.
struct TimestampVisitor;

impl serde::de::Visitor<'_> for TimestampVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an RFC 3339 time or integer epoch milliseconds")
    }

    fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Self::Value, E> {
        Utc.timestamp_millis_opt(ms)
            .single()
            .ok_or_else(|| E::custom(format!("{ms} is out of range for epoch milliseconds")))
    }

    fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Self::Value, E> {
        let ms = i64::try_from(ms)
            .map_err(|_| E::custom(format!("{ms} is out of range for epoch milliseconds")))?;
        self.visit_i64(ms)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        parse_timestamp(text).ok_or_else(|| {
            E::custom(format!(
                "`{text}` is not an RFC 3339 time or integer epoch milliseconds"
            ))
        })
    }
}

/// Serde helper for optional timestamps.
pub fn deserialize_opt<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "deserialize")] DateTime<Utc>);
    Option::<Wrap>::deserialize(de).map(|o| o.map(|w| w.0))
}
