//! The serde-shaped files: JSON Lines (one record a line), one JSON document, one YAML document.

use std::io::BufRead;

use serde::de::DeserializeOwned;

use super::files::LineReader;
use super::BundleError;

/// Reads one record per non-blank line; unknown fields are ignored, a bad line is an error.
pub(crate) fn read_jsonl<T: DeserializeOwned, R: BufRead>(
    lines: &mut LineReader<R>,
) -> Result<Vec<T>, BundleError> {
    let mut records = Vec::new();
    while let Some((n, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(record) => records.push(record),
            Err(e) => return Err(lines.malformed(n, json_message(&e))),
        }
    }
    Ok(records)
}

/// Reads a file holding one JSON document.
pub(crate) fn read_json<T: DeserializeOwned, R: BufRead>(
    lines: &mut LineReader<R>,
) -> Result<T, BundleError> {
    let text = lines.read_to_string()?;
    // serde_json counts lines from 1 and says 0 when it has no position.
    serde_json::from_str(&text)
        .map_err(|e| lines.malformed(e.line().max(1) as u64, json_message(&e)))
}

/// Reads a file holding one YAML document.
pub(crate) fn read_yaml<T: DeserializeOwned, R: BufRead>(
    lines: &mut LineReader<R>,
) -> Result<T, BundleError> {
    let text = lines.read_to_string()?;
    parse_yaml(&text, lines)
}

/// Parses `text`, read from `lines`, as one YAML document.
pub(crate) fn parse_yaml<T: DeserializeOwned, R>(
    text: &str,
    lines: &LineReader<R>,
) -> Result<T, BundleError> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let message = e.to_string();
        match e.location() {
            Some(at) => {
                let position = format!(" at line {} column {}", at.line(), at.column());
                let message = message.replacen(&position, "", 1);
                lines.malformed(
                    at.line() as u64,
                    format!("{message} (column {})", at.column()),
                )
            }
            // No position: the document is empty or cut short; the first line is the best guess.
            None => lines.malformed(1, message),
        }
    })
}

/// serde_json's message without its own `at line L column C`, which would repeat the file
/// position (and within a JSONL line always says line 1), with the column kept.
fn json_message(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match message.strip_suffix(&position) {
        Some(bare) => format!("{bare} (column {})", e.column()),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Change, InfraEvent, LogRecord, Span};
    use proptest::prelude::*;

    fn lines(text: &str) -> LineReader<&[u8]> {
        LineReader::new(text.as_bytes(), "logs.jsonl")
    }

    #[test]
    fn jsonl_reads_records_and_skips_blank_lines() {
        let text = "{\"ts\":1000,\"service\":\"api\",\"message\":\"a\",\"new_field\":[1]}\n\n{\"ts\":\"1970-01-01T00:00:02Z\",\"service\":\"db\",\"message\":\"b\"}\r\n";
        let logs: Vec<LogRecord> = read_jsonl(&mut lines(text)).unwrap();
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[1].ts.timestamp_millis(), 2000);
    }

    #[test]
    fn jsonl_error_names_file_line_and_column() {
        let text = "{\"ts\":1,\"service\":\"a\",\"message\":\"m\"}\n{\"ts\":1,\"message\":\"m\"}\n";
        let err = read_jsonl::<LogRecord, _>(&mut lines(text)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "logs.jsonl:2: missing field `service` (column 22)"
        );
        let err = read_jsonl::<LogRecord, _>(&mut lines("not json\n")).unwrap_err();
        assert_eq!(err.to_string(), "logs.jsonl:1: expected ident (column 2)");
        let err = read_jsonl::<LogRecord, _>(&mut lines(
            "{\"ts\":\"noon\",\"service\":\"a\",\"message\":\"m\"}",
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "logs.jsonl:1: `noon` is not an RFC 3339 time or integer epoch milliseconds (column 12)"
        );
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let bytes = b"{}\n\xff\xfe\n";
        let err =
            read_jsonl::<serde_json::Value, _>(&mut LineReader::new(&bytes[..], "events.jsonl"))
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "events.jsonl:2: not valid UTF-8 (at byte 1 of the line)"
        );
    }

    proptest! {
        #[test]
        fn jsonl_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_jsonl::<LogRecord, _>(&mut LineReader::new(bytes.as_slice(), "logs.jsonl"));
            let _ = read_jsonl::<Span, _>(&mut LineReader::new(bytes.as_slice(), "traces.jsonl"));
            let _ = read_yaml::<crate::model::Topology, _>(&mut LineReader::new(bytes.as_slice(), "topology.yaml"));
            let _ = read_json::<crate::model::Alert, _>(&mut LineReader::new(bytes.as_slice(), "alert.json"));
        }

        #[test]
        fn records_with_any_timestamp_never_panic(ts in prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<String>().prop_map(|s| serde_json::Value::String(s).to_string()),
            "\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})\"",
            any::<f64>().prop_map(|f| f.to_string()),
        ]) {
            let change = format!("{{\"ts\":{ts},\"service\":\"a\",\"kind\":\"deploy\",\"summary\":\"s\"}}");
            let event = format!("{{\"ts\":{ts},\"object\":\"pod/a\",\"reason\":\"r\",\"message\":\"m\"}}");
            let _ = read_jsonl::<Change, _>(&mut lines(&change));
            let _ = read_jsonl::<InfraEvent, _>(&mut lines(&event));
        }

        #[test]
        fn parse_timestamp_never_panics(text in any::<String>()) {
            let _ = crate::time::parse_timestamp(&text);
        }

        #[test]
        // Years 1 to 9999: RFC 3339 has four-digit years.
        fn epoch_millis_and_rfc3339_agree(ms in -62_135_596_800_000i64..253_402_300_800_000) {
            let Some(t) = crate::time::parse_timestamp(&ms.to_string()) else {
                return Err(TestCaseError::fail("in-range milliseconds must parse"));
            };
            prop_assert_eq!(t.timestamp_millis(), ms);
            let again = crate::time::parse_timestamp(&t.to_rfc3339());
            prop_assert_eq!(again, Some(t));
        }
    }
}
