//! OpenMetrics text with timestamps (`name{labels} value ts_seconds`), parsed by hand.
//!
//! This is the hot path of opening a bundle (millions of sample lines), so a sample line is
//! checked without allocating; labels are decoded only the first time a series is seen.
//! What this reader accepts beyond strict OpenMetrics, to be kind to hand-written files:
//! blank lines, any `#` comment, runs of spaces or tabs between fields, a trailing comma in
//! a label set. What it refuses: a sample without a timestamp (bundles need one) and
//! anything but blank lines after `# EOF`.

use std::collections::BTreeMap;
use std::io::BufRead;

use super::files::LineReader;
use super::index::SeriesBuilder;
use super::BundleError;
use crate::model::Series;

/// Timestamps beyond this many milliseconds from 1970 are out of chrono's range.
const MAX_ABS_TS_MS: f64 = 8.0e15;

/// One line of the exposition.
#[derive(Debug, PartialEq)]
pub(crate) enum Line<'a> {
    /// Empty or whitespace only.
    Blank,
    /// `# TYPE`, `# HELP`, `# UNIT` or any other comment: nothing to index.
    Comment,
    /// `# EOF`, the end of the exposition.
    Eof,
    /// A sample.
    Sample(RawSample<'a>),
}

/// A sample line, checked but not yet decoded.
#[derive(Debug, PartialEq)]
pub(crate) struct RawSample<'a> {
    /// `name{labels}` exactly as written: the key that finds an already-seen series.
    pub series: &'a str,
    pub name: &'a str,
    /// Between the braces, still escaped; empty when the sample has no labels.
    pub labels: &'a str,
    pub value: f64,
    pub ts_ms: i64,
}

/// Reads a whole metrics file into series (NaN samples are left out; see [`SeriesBuilder`]).
pub(crate) fn read<R: BufRead>(lines: &mut LineReader<R>) -> Result<Vec<Series>, BundleError> {
    let mut builder = SeriesBuilder::default();
    let mut eof_at = None;
    while let Some((n, line)) = lines.next_line()? {
        // Samples of a series usually come in a run; a line repeating the previous line's
        // series text skips label scanning and the series lookup.
        if let Some(rest) = builder.continues_run(line).filter(|_| eof_at.is_none()) {
            let (value, ts_ms) = parse_point(rest).map_err(|e| lines.malformed(n, e))?;
            builder.push_to_run(value, ts_ms);
            continue;
        }
        let parsed = parse_line(line);
        match (parsed, eof_at) {
            (Ok(Line::Blank), _) => {}
            (_, Some(eof)) => {
                return Err(lines.malformed(n, format!("content after `# EOF` (line {eof})")));
            }
            (Ok(Line::Comment), None) => {}
            (Ok(Line::Eof), None) => eof_at = Some(n),
            (Ok(Line::Sample(sample)), None) => {
                builder.add(&sample).map_err(|e| lines.malformed(n, e))?;
            }
            (Err(e), None) => return Err(lines.malformed(n, e)),
        }
    }
    if eof_at.is_none() {
        tracing::warn!(
            file = lines.file(),
            "metrics end without `# EOF`; read them anyway"
        );
    }
    Ok(builder.finish())
}

/// Parses one line; the error says what is wrong, without file or line.
pub(crate) fn parse_line(line: &str) -> Result<Line<'_>, String> {
    if line.trim().is_empty() {
        return Ok(Line::Blank);
    }
    if let Some(comment) = line.strip_prefix('#') {
        return parse_comment(comment);
    }
    parse_sample(line).map(Line::Sample)
}

fn parse_comment(comment: &str) -> Result<Line<'_>, String> {
    if comment.trim_end() == " EOF" {
        return Ok(Line::Eof);
    }
    let mut words = comment.split_ascii_whitespace();
    if let Some(keyword @ ("TYPE" | "HELP" | "UNIT")) = words.next() {
        let name = words.next().unwrap_or("");
        if name.is_empty() || metric_name_len(name) != name.len() {
            return Err(format!(
                "`# {keyword}` needs a metric name, found {}",
                excerpt(name)
            ));
        }
    }
    Ok(Line::Comment)
}

fn parse_sample(line: &str) -> Result<RawSample<'_>, String> {
    let name_end = metric_name_len(line);
    if name_end == 0 {
        return Err(format!("expected a metric name, found {}", excerpt(line)));
    }
    let name = &line[..name_end];
    let (labels, series_end) = if line.as_bytes().get(name_end) == Some(&b'{') {
        let close = scan_labels(line, name_end + 1, |_, _| Ok(()))?;
        (&line[name_end + 1..close], close + 1)
    } else {
        ("", name_end)
    };
    let series = &line[..series_end];
    let rest = &line[series_end..];
    if !rest.starts_with([' ', '\t']) {
        return Err(format!(
            "expected a space before the value, found {}",
            excerpt(rest)
        ));
    }
    let (value, ts_ms) = parse_point(rest)?;
    Ok(RawSample {
        series,
        name,
        labels,
        value,
        ts_ms,
    })
}

/// The `value ts_seconds [# exemplar]` after a series.
fn parse_point(rest: &str) -> Result<(f64, i64), String> {
    let mut fields = rest.split_ascii_whitespace();
    let value = fields.next().unwrap_or("");
    let value: f64 = value
        .parse()
        .map_err(|_| format!("expected a sample value, found {}", excerpt(value)))?;
    let ts = fields
        .next()
        .ok_or("sample has no timestamp; bundle metrics need `value ts_seconds`")?;
    let ts_ms = parse_timestamp_seconds(ts)?;
    match fields.next() {
        // An exemplar (`# {trace_id="…"} 1.0`) annotates the sample; nothing here uses it.
        None => {}
        Some(more) if more.starts_with('#') => {}
        Some(more) => return Err(format!("unexpected {} after the timestamp", excerpt(more))),
    }
    Ok((value, ts_ms))
}

/// Float seconds to integer milliseconds, rounded to the nearest.
fn parse_timestamp_seconds(text: &str) -> Result<i64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("expected a timestamp in seconds, found {}", excerpt(text)))?;
    let ms = (seconds * 1000.0).round();
    if !ms.is_finite() || ms.abs() > MAX_ABS_TS_MS {
        return Err(format!("timestamp {} is out of range", excerpt(text)));
    }
    Ok(ms as i64)
}

/// Length of the metric name at the start of `s`: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn metric_name_len(s: &str) -> usize {
    name_len(
        s,
        |b| b.is_ascii_alphabetic() || b == b'_' || b == b':',
        |b| b.is_ascii_alphanumeric() || b == b'_' || b == b':',
    )
}

/// Length of the label name at the start of `s`: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn label_name_len(s: &str) -> usize {
    name_len(
        s,
        |b| b.is_ascii_alphabetic() || b == b'_',
        |b| b.is_ascii_alphanumeric() || b == b'_',
    )
}

fn name_len(s: &str, first: impl Fn(u8) -> bool, rest: impl Fn(u8) -> bool) -> usize {
    match s.as_bytes().split_first() {
        Some((&b, tail)) if first(b) => 1 + tail.iter().take_while(|&&b| rest(b)).count(),
        _ => 0,
    }
}

/// Walks the label set starting at byte `pos` (just after `{`), calling `each(name, escaped
/// value)` per label; returns the index of the closing `}`.
///
/// Every delimiter is ASCII, so each byte index used to slice is a char boundary.
fn scan_labels<'a>(
    line: &'a str,
    mut pos: usize,
    mut each: impl FnMut(&'a str, &'a str) -> Result<(), String>,
) -> Result<usize, String> {
    let bytes = line.as_bytes();
    let skip_blanks = |mut p: usize| {
        while matches!(bytes.get(p), Some(b' ' | b'\t')) {
            p += 1;
        }
        p
    };
    loop {
        pos = skip_blanks(pos);
        if bytes.get(pos) == Some(&b'}') {
            return Ok(pos);
        }
        let rest = &line[pos..];
        let name_end = pos + label_name_len(rest);
        if name_end == pos {
            return Err(format!(
                "expected a label name or `}}`, found {}",
                excerpt(rest)
            ));
        }
        let name = &line[pos..name_end];
        pos = skip_blanks(name_end);
        if bytes.get(pos) != Some(&b'=') {
            return Err(format!("expected `=` after label `{name}`"));
        }
        pos = skip_blanks(pos + 1);
        if bytes.get(pos) != Some(&b'"') {
            return Err(format!("expected a quoted value for label `{name}`"));
        }
        let value_start = pos + 1;
        pos = value_start;
        loop {
            match bytes.get(pos) {
                None => return Err(format!("unterminated value for label `{name}`")),
                Some(b'"') => break,
                Some(b'\\') => match bytes.get(pos + 1) {
                    Some(b'\\' | b'"' | b'n') => pos += 2,
                    None => return Err(format!("unterminated value for label `{name}`")),
                    Some(_) => {
                        let c = line.get(pos + 1..).and_then(|s| s.chars().next());
                        let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
                        return Err(format!(
                            "unknown escape `\\{c}` in the value of label `{name}`"
                        ));
                    }
                },
                Some(_) => pos += 1,
            }
        }
        each(name, &line[value_start..pos])?;
        pos = skip_blanks(pos + 1);
        match bytes.get(pos) {
            Some(b',') => pos += 1,
            Some(b'}') => return Ok(pos),
            _ => return Err(format!("expected `,` or `}}` after label `{name}`")),
        }
    }
}

/// Decodes a label set checked by [`parse_line`] (the text between the braces).
pub(crate) fn decode_labels(block: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    // The block lacks its braces; scanning it with a closing brace appended keeps one scanner.
    let closed = format!("{block}}}");
    scan_labels(&closed, 0, |name, escaped| {
        if labels.insert(name.to_owned(), unescape(escaped)).is_some() {
            return Err(format!("label `{name}` appears twice"));
        }
        Ok(())
    })?;
    Ok(labels)
}

/// Undoes the three escapes OpenMetrics label values have (`\\`, `\"`, `\n`).
fn unescape(escaped: &str) -> String {
    if !escaped.contains('\\') {
        return escaped.to_owned();
    }
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// A short, quoted piece of the input for error messages (lines can be long).
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    if text.is_empty() {
        return "nothing".to_owned();
    }
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(line: &str) -> RawSample<'_> {
        match parse_line(line) {
            Ok(Line::Sample(s)) => s,
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        parse_line(line).expect_err(line)
    }

    fn read_text(text: &str) -> Result<Vec<Series>, BundleError> {
        read(&mut LineReader::new(text.as_bytes(), "metrics.om"))
    }

    #[test]
    fn sample_with_labels_value_and_timestamp() {
        let s = sample(r#"http_requests_total{service="api",code="500"} 12.5 1700000000.25"#);
        assert_eq!(s.name, "http_requests_total");
        assert_eq!(s.series, r#"http_requests_total{service="api",code="500"}"#);
        assert_eq!(s.value, 12.5);
        assert_eq!(s.ts_ms, 1_700_000_000_250);
        let labels = decode_labels(s.labels).unwrap();
        assert_eq!(labels["service"], "api");
        assert_eq!(labels["code"], "500");
    }

    #[test]
    fn sample_without_labels_and_special_values() {
        let s = sample("up 1 1700000000");
        assert_eq!((s.name, s.labels, s.value), ("up", "", 1.0));
        assert!(sample("x NaN 1").value.is_nan());
        assert_eq!(sample("x +Inf 1").value, f64::INFINITY);
        assert_eq!(sample("x -Inf 1").value, f64::NEG_INFINITY);
        assert_eq!(sample("x{} 2 1").labels, "");
        assert_eq!(sample("x 1 1.5e9").ts_ms, 1_500_000_000_000);
        assert_eq!(sample("x 1 -0.001").ts_ms, -1);
    }

    #[test]
    fn label_values_unescape() {
        let s = sample(r#"m{a="q\"uote",b="back\\slash",c="new\nline",d="} ,=",} 1 1"#);
        let labels = decode_labels(s.labels).unwrap();
        assert_eq!(labels["a"], "q\"uote");
        assert_eq!(labels["b"], "back\\slash");
        assert_eq!(labels["c"], "new\nline");
        assert_eq!(labels["d"], "} ,=");
    }

    #[test]
    fn exemplars_and_comments_are_ignored() {
        assert_eq!(
            sample(r#"m_bucket{le="1"} 3 1 # {trace_id="abc"} 0.5 1"#).value,
            3.0
        );
        assert_eq!(parse_line("# TYPE m counter"), Ok(Line::Comment));
        assert_eq!(parse_line("# HELP m what m is"), Ok(Line::Comment));
        assert_eq!(parse_line("# a free comment"), Ok(Line::Comment));
        assert_eq!(parse_line("# EOF"), Ok(Line::Eof));
        assert_eq!(parse_line("   "), Ok(Line::Blank));
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        assert_eq!(
            error("m{a=\"1\"} abc 1"),
            r#"expected a sample value, found "abc""#
        );
        assert_eq!(
            error("m 1"),
            "sample has no timestamp; bundle metrics need `value ts_seconds`"
        );
        assert_eq!(
            error("m"),
            "expected a space before the value, found nothing"
        );
        assert_eq!(
            error(r#"m{a="1"}x 1 1"#),
            r#"expected a space before the value, found "x 1 1""#
        );
        assert_eq!(error("m 1 2 3"), r#"unexpected "3" after the timestamp"#);
        assert_eq!(
            error("m 1 soon"),
            r#"expected a timestamp in seconds, found "soon""#
        );
        assert_eq!(error("m 1 inf"), r#"timestamp "inf" is out of range"#);
        assert_eq!(error("m 1 NaN"), r#"timestamp "NaN" is out of range"#);
        assert_eq!(error("9m 1 1"), r#"expected a metric name, found "9m 1 1""#);
        assert_eq!(error(r#"m{a="1} 1 1"#), "unterminated value for label `a`");
        assert_eq!(error(r#"m{a="1\"#), "unterminated value for label `a`");
        assert_eq!(
            error(r#"m{a="\t"} 1 1"#),
            "unknown escape `\\t` in the value of label `a`"
        );
        assert_eq!(
            error(r#"m{a=1} 1 1"#),
            "expected a quoted value for label `a`"
        );
        assert_eq!(
            error(r#"m{a="1" b="2"} 1 1"#),
            "expected `,` or `}` after label `a`"
        );
        assert_eq!(
            error(r#"m{="1"} 1 1"#),
            r#"expected a label name or `}`, found "=\"1\"} 1 1""#
        );
        assert_eq!(
            error("# TYPE"),
            "`# TYPE` needs a metric name, found nothing"
        );
        let twice = sample(r#"m{a="1",a="2"} 1 1"#);
        assert_eq!(
            decode_labels(twice.labels),
            Err("label `a` appears twice".to_owned())
        );
    }

    #[test]
    fn reader_groups_sorts_and_drops_nan() {
        let series = read_text(concat!(
            "m{b=\"2\",a=\"1\"} 3 3\n",
            "m{a=\"1\",b=\"2\"} 1 1\n",
            "m{a=\"1\",b=\"2\"} NaN 2\n",
            "m{a=\"1\",b=\"2\"} 9 1\n",
            "only_nan NaN 1\n",
            "# EOF\n",
        ))
        .unwrap();
        assert_eq!(
            series.len(),
            1,
            "the all-NaN series is left out: {series:?}"
        );
        let points: Vec<(i64, f64)> = series[0]
            .samples
            .iter()
            .map(|s| (s.ts_ms, s.value))
            .collect();
        // Both label orders are one series; the repeated timestamp keeps the last value written.
        assert_eq!(points, vec![(1_000, 9.0), (3_000, 3.0)]);
    }

    #[test]
    fn eof_rules() {
        let after = read_text("m 1 1\n# EOF\nm 2 2\n").unwrap_err();
        assert_eq!(
            after.to_string(),
            "metrics.om:3: content after `# EOF` (line 2)"
        );
        assert_eq!(
            read_text("m 1 1\n").unwrap().len(),
            1,
            "a missing `# EOF` is accepted"
        );
        assert_eq!(read_text("").unwrap().len(), 0);
    }

    /// Formats a label value the way an OpenMetrics writer must.
    fn escape(value: &str) -> String {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    fn format_value(v: f64) -> String {
        match v {
            f64::INFINITY => "+Inf".to_owned(),
            f64::NEG_INFINITY => "-Inf".to_owned(),
            v => format!("{v:?}"),
        }
    }

    fn format_seconds(ms: i64) -> String {
        let sign = if ms < 0 { "-" } else { "" };
        format!(
            "{sign}{}.{:03}",
            ms.unsigned_abs() / 1000,
            ms.unsigned_abs() % 1000
        )
    }

    fn arb_series() -> impl Strategy<Value = Series> {
        let labels = proptest::collection::btree_map("[a-z_][a-z0-9_]{0,6}", any::<String>(), 0..4);
        let samples = proptest::collection::btree_map(
            -4_000_000_000_000i64..4_000_000_000_000,
            prop_oneof![
                any::<f64>().prop_filter("NaN is dropped", |v| !v.is_nan()),
                Just(f64::INFINITY)
            ],
            1..6,
        );
        ("[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", labels, samples).prop_map(|(metric, labels, samples)| {
            Series {
                metric,
                labels,
                samples: samples
                    .into_iter()
                    .map(|(ts_ms, value)| crate::model::Sample { ts_ms, value })
                    .collect(),
            }
        })
    }

    proptest! {
        #[test]
        fn parse_line_never_panics(line in any::<String>()) {
            let _ = parse_line(&line);
        }

        #[test]
        fn reader_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read(&mut LineReader::new(bytes.as_slice(), "metrics.om"));
        }

        #[test]
        fn near_miss_lines_never_panic(line in r#"[a-z_]{0,3}(\{([a-z_=",\\ }{]|"[^"]*"){0,12}\})?[ \t]{0,2}[-+0-9.eEinfINaN]{0,6}[ ]{0,2}[-0-9.#e ]{0,8}"#) {
            if let Ok(Line::Sample(s)) = parse_line(&line) {
                let _ = decode_labels(s.labels);
            }
        }

        #[test]
        fn formatted_series_parse_back(mut expected in proptest::collection::vec(arb_series(), 0..5)) {
            let mut text = String::new();
            for series in &expected {
                let labels: Vec<String> =
                    series.labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
                for s in &series.samples {
                    let set = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
                    text += &format!("{}{set} {} {}\n", series.metric, format_value(s.value), format_seconds(s.ts_ms));
                }
            }
            text += "# EOF\n";
            // Two generated series may share a name and labels; the reader merges them.
            expected.sort_by(|a, b| (&a.metric, &a.labels).cmp(&(&b.metric, &b.labels)));
            let mut merged: Vec<Series> = Vec::new();
            for series in expected {
                match merged.last_mut() {
                    Some(last) if last.metric == series.metric && last.labels == series.labels => {
                        for s in series.samples {
                            match last.samples.iter_mut().find(|have| have.ts_ms == s.ts_ms) {
                                Some(have) => *have = s,
                                None => last.samples.push(s),
                            }
                        }
                        last.samples.sort_by_key(|s| s.ts_ms);
                    }
                    _ => merged.push(series),
                }
            }
            prop_assert_eq!(read_text(&text).unwrap(), merged);
        }
    }
}
