//! Text inside PromQL and LogQL selectors: both take Go's double-quoted strings and RE2
//! regular expressions, so one escaping serves Prometheus and Loki.

use std::fmt::Write;

/// `value` inside a double-quoted string (Go's syntax: a raw newline would end the query).
pub(crate) fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// `value` as a literal inside an RE2 regular expression.
pub(crate) fn regex_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The start of a text from a source, for an error message: one line of at most 200
/// characters after `: `, or nothing when the text is blank.
pub(crate) fn snippet(text: &str) -> String {
    let line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect();
    if line.is_empty() {
        String::new()
    } else {
        format!(": {line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_regex_literals() {
        assert_eq!(quoted("a\"b\\c\nd\u{1}"), "a\\\"b\\\\c\\nd\\u0001");
        assert_eq!(regex_literal("a.b|c"), "a\\.b\\|c");
        assert_eq!(snippet("  oops \n  it broke "), ": oops it broke");
        assert_eq!(snippet(" \n"), "");
    }
}
