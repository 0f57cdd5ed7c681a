//! Text that is safe to post: escaped so nothing pings anyone, credentials redacted, and cut
//! to Slack's limits on a character boundary.

/// Escapes `& < >` (Slack's control characters), so `<!channel>`, `<@U123>` and links from
/// data never become mentions, and drops characters that garble or spoof text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // NUL and other controls (tabs and newlines stay), bidirectional overrides and
            // zero-width characters: they hide or reorder text.
            '\t' | '\n' => out.push(c),
            c if c.is_control() => {}
            '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200B}'..='\u{200F}'
            | '\u{FEFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Replaces credential-like strings with `[redacted]`: AWS access keys, Slack tokens,
/// private key blocks, bearer tokens, passwords in URLs.
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    // Private key blocks, whole: from `-----BEGIN … PRIVATE KEY-----` to the end marker.
    while let Some(begin) = out.find("-----BEGIN") {
        if !out[begin..].contains("PRIVATE KEY-----") {
            break;
        }
        let end = match out[begin..].find("-----END") {
            Some(i) => {
                let from = begin + i + "-----END".len();
                out[from..]
                    .find("-----")
                    .map_or(out.len(), |j| from + j + "-----".len())
            }
            None => out.len(),
        };
        out.replace_range(begin..end, "[redacted]");
    }
    let words: Vec<String> = out
        .split_inclusive(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .map(str::to_owned)
        .collect();
    let mut result = String::with_capacity(out.len());
    let mut bearer = false;
    for w in words {
        let (token, tail) = match w.char_indices().last() {
            Some((i, c)) if c.is_whitespace() || c == '"' || c == '\'' => (&w[..i], &w[i..]),
            _ => (w.as_str(), ""),
        };
        let lower = token.to_ascii_lowercase();
        let secret = bearer && !token.is_empty()
            || is_aws_key(token)
            || ["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xapp-"]
                .iter()
                .any(|p| token.contains(p));
        if secret {
            result.push_str("[redacted]");
        } else if let Some(redacted) = url_password(token) {
            result.push_str(&redacted);
        } else {
            result.push_str(token);
        }
        result.push_str(tail);
        if !token.is_empty() {
            bearer = lower == "bearer";
        }
    }
    result
}

fn is_aws_key(token: &str) -> bool {
    token.char_indices().any(|(i, _)| {
        let rest = &token[i..];
        (rest.starts_with("AKIA") || rest.starts_with("ASIA"))
            && rest.len() >= 20
            && rest[..20]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    })
}

/// `scheme://user:password@host` with the password replaced.
fn url_password(token: &str) -> Option<String> {
    let scheme_end = token.find("://")? + 3;
    let at = token[scheme_end..].find('@')? + scheme_end;
    let colon = token[scheme_end..at].find(':')? + scheme_end;
    Some(format!("{}[redacted]{}", &token[..colon + 1], &token[at..]))
}

/// At most `max` characters; a cut string ends with `…`.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Data headed for Slack: redacted, escaped, cut to `max` characters.
pub fn safe(text: &str, max: usize) -> String {
    truncate(&escape(&redact(text)), max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mentions_from_data_never_ping() {
        assert_eq!(
            escape("<!channel> deploy <@U123> & <https://x|y>"),
            "&lt;!channel&gt; deploy &lt;@U123&gt; &amp; &lt;https://x|y&gt;"
        );
        assert_eq!(escape("a\u{202E}b\u{200B}c\0d"), "abcd");
    }

    #[test]
    fn credentials_are_redacted() {
        let line = "key AKIAIOSFODNN7EXAMPLE token xoxb-123-456-abc url postgres://app:hunter2@db:5432/x Authorization: Bearer eyJhbGciOi";
        let out = redact(line);
        for secret in ["AKIAIOSFODNN7EXAMPLE", "xoxb-123", "hunter2", "eyJhbGciOi"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("postgres://app:[redacted]@db:5432/x"), "{out}");
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nafter";
        assert!(!redact(key).contains("MIIEow"), "{}", redact(key));
    }

    proptest! {
        #[test]
        fn safe_text_fits_and_has_no_raw_brackets(text in "\\PC{0,400}", max in 1usize..300) {
            let out = safe(&text, max);
            prop_assert!(out.chars().count() <= max);
            prop_assert!(!out.contains('<') && !out.contains('>'));
        }
    }
}
