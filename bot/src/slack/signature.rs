//! Slack request signatures (v0): HMAC-SHA256 over `v0:{timestamp}:{raw body}` with the
//! signing secret, compared in constant time, within five minutes of now either way.

use ring::hmac;

/// Oldest (or most future) request timestamp accepted, in seconds from now.
pub const MAX_SKEW_S: i64 = 300;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("missing signature headers")]
    Missing,
    #[error("request timestamp outside the five-minute window")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a hex string; `None` when it is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Hex of the v0 signature of `body` at `timestamp` (what Slack sends after `v0=`).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(b"v0:");
    ctx.update(timestamp.as_bytes());
    ctx.update(b":");
    ctx.update(body);
    hex(ctx.sign().as_ref())
}

/// Checks a request: `timestamp` and `signature` are the `X-Slack-Request-Timestamp` and
/// `X-Slack-Signature` headers, `body` the raw bytes as received, `now` Unix seconds.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refusal> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(Refusal::Missing);
    };
    let ts: i64 = timestamp.trim().parse().map_err(|_| Refusal::Stale)?;
    if (now - ts).abs() > MAX_SKEW_S {
        return Err(Refusal::Stale);
    }
    let given = signature
        .strip_prefix("v0=")
        .and_then(unhex)
        .ok_or(Refusal::Mismatch)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut message = Vec::with_capacity(body.len() + timestamp.len() + 4);
    message.extend_from_slice(b"v0:");
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b':');
    message.extend_from_slice(body);
    // `hmac::verify` compares in constant time.
    hmac::verify(&key, &message, &given).map_err(|_| Refusal::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

    #[test]
    fn slack_documentation_example() {
        // The example from Slack's "Verifying requests from Slack" page.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(format!("v0={}", sign(SECRET, "1531420618", body)), expected);
        assert_eq!(
            verify(
                SECRET,
                Some("1531420618"),
                Some(expected),
                body,
                1531420618 + 10
            ),
            Ok(())
        );
    }

    #[test]
    fn refuses_missing_stale_and_altered() {
        let body = br#"{"type":"event_callback"}"#;
        let sig = format!("v0={}", sign(SECRET, "1000", body));
        assert_eq!(
            verify(SECRET, None, Some(&sig), body, 1000),
            Err(Refusal::Missing)
        );
        assert_eq!(
            verify(SECRET, Some("1000"), Some(&sig), body, 1000 + 301),
            Err(Refusal::Stale)
        );
        assert_eq!(
            verify(SECRET, Some("1000"), Some(&sig), body, 1000 - 301),
            Err(Refusal::Stale)
        );
        assert_eq!(
            verify(
                SECRET,
                Some("1000"),
                Some(&sig),
                br#"{"type": "event_callback"}"#,
                1000
            ),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some("1000"), Some(&sig), body, 1000),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some("1000"), Some("v0=zz"), body, 1000),
            Err(Refusal::Mismatch)
        );
    }

    proptest! {
        #[test]
        fn any_input_is_judged_without_panicking(ts in ".{0,20}", sig in ".{0,80}", body in proptest::collection::vec(any::<u8>(), 0..200), now in any::<i64>()) {
            let _ = verify(SECRET, Some(&ts), Some(&sig), &body, now);
        }

        #[test]
        fn only_the_signed_body_passes(body in proptest::collection::vec(any::<u8>(), 0..200), flip in 0usize..200) {
            let sig = format!("v0={}", sign(SECRET, "42", &body));
            prop_assert_eq!(verify(SECRET, Some("42"), Some(&sig), &body, 42), Ok(()));
            if !body.is_empty() {
                let mut altered = body.clone();
                let i = flip % altered.len();
                altered[i] ^= 1;
                prop_assert_eq!(verify(SECRET, Some("42"), Some(&sig), &altered, 42), Err(Refusal::Mismatch));
            }
        }
    }
}
