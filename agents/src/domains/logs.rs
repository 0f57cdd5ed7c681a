//! Logs: template mining in the spirit of Drain — numbers, ids, addresses and quoted values
//! masked so lines of one kind share a template — then new and bursting error templates per
//! service, and the error classes that name their cause (DNS, TLS, resets, 429, pools,
//! disks, memory), credited to the peer the line names when it names one. Per request,
//! the code paths that used to run through and now stop halfway ([`flows`]).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use cairn_connectors::{LogQuery, LogRecord, SourceError, TimeWindow};

use super::{Agent, Context};
use crate::evidence::{Domain, Evidence, Signal};

mod flows;

/// Most lines read for one investigation.
const MAX_LINES: usize = 400_000;
/// Tokens of a line that make its template.
const TEMPLATE_TOKENS: usize = 14;

pub struct Logs;

/// A line's template: variable tokens masked as `<*>`.
pub fn template(message: &str) -> String {
    mask(message, false)
}

/// A line's template with its code location kept (`TripServiceImpl#366`, `trip.go:88`):
/// two lines of one method differ only there, and a flow is told by which lines it reached.
pub fn flow_template(message: &str) -> String {
    mask(message, true)
}

fn mask(message: &str, keep_locations: bool) -> String {
    let first_line = message.lines().next().unwrap_or("");
    let mut out = String::with_capacity(first_line.len().min(256));
    for (i, token) in first_line
        .split_whitespace()
        .take(TEMPLATE_TOKENS)
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        if token.starts_with('"') || token.contains("://") {
            out.push_str("<*>");
            continue;
        }
        // Within a token, every segment (a run of letters and digits) holding a digit is a
        // variable: `k455`, `3d4220b0`, `10.2.3.4:8080`, `42ms`. A line number after a name
        // and `#` or `:` is a code location, kept when asked.
        let mut rest = token;
        while !rest.is_empty() {
            let end = rest
                .find(|c: char| !c.is_alphanumeric())
                .unwrap_or(rest.len());
            let segment = &rest[..end];
            let digits = segment.bytes().any(|b| b.is_ascii_digit());
            let location = keep_locations
                && digits
                && segment.bytes().all(|b| b.is_ascii_digit())
                && matches!(out.as_bytes(), [.., l, b'#' | b':'] if l.is_ascii_alphabetic());
            if digits && !location {
                out.push_str("<*>");
            } else {
                out.push_str(segment);
            }
            rest = &rest[end..];
            if let Some(c) = rest.chars().next() {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

fn is_error(record: &LogRecord) -> bool {
    let level = record.level.as_deref().unwrap_or("").to_ascii_lowercase();
    if matches!(
        level.as_str(),
        "error" | "err" | "fatal" | "critical" | "severe" | "panic"
    ) {
        return true;
    }
    if !level.is_empty() && level != "unknown" {
        return false;
    }
    let m = record.message.to_ascii_lowercase();
    ["exception", "error", "failed", "panic", "fatal"]
        .iter()
        .any(|w| m.contains(w))
}

/// The cause a line names, if it names one, and whether it is about a peer.
fn classify(message: &str) -> Option<(Signal, bool)> {
    let m = message.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    Some(
        if has(&[
            "no such host",
            "unknownhost",
            "name or service not known",
            "name resolution",
            "nxdomain",
        ]) {
            (Signal::DnsFailure, true)
        } else if has(&[
            "x509",
            "certificate has expired",
            "certificateexpired",
            "sslhandshake",
            "tls handshake",
            "bad certificate",
        ]) {
            (Signal::TlsFailure, true)
        } else if has(&["connection reset", "broken pipe", "econnreset"]) {
            (Signal::PacketLoss, true)
        } else if has(&["too many requests", "rate limit"])
            || m.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|t| t == "429")
        {
            (Signal::RateLimited, true)
        } else if has(&["no space left", "enospc", "disk full"]) {
            (Signal::DiskFull, false)
        } else if has(&[
            "outofmemory",
            "out of memory",
            "memoryerror",
            "heap limit",
            "oomkilled",
        ]) {
            (Signal::OomKill, false)
        } else if has(&[
            "connection is not available",
            "pool timed out",
            "queuepool limit",
            "acquire connection",
            "too many clients",
        ]) {
            (Signal::PoolExhaustion, false)
        } else if has(&["duration: "]) && has(&["statement", "execute"])
            || has(&["still waiting for", "lock timeout"])
        {
            (Signal::SlowQueries, false)
        } else if has(&["timeout", "timed out", "deadline exceeded"]) {
            (Signal::Latency, true)
        } else {
            return None;
        },
    )
}

/// Whether a line reports a call that timed out (slowness, though logged as an error).
pub fn is_timeout(message: &str) -> bool {
    classify(message).is_some_and(|(signal, _)| signal == Signal::Latency)
}

/// A line's first line, at most 160 characters, to quote in a reason.
fn first_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(160)
        .collect()
}

/// The known service a line names, other than the one that wrote it.
fn peer_in<'a>(message: &str, own: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .copied()
        .find(|n| *n != own && message.contains(n))
}

#[async_trait]
impl Agent for Logs {
    fn name(&self) -> &'static str {
        "logs"
    }

    async fn survey(&self, cx: &Context<'_>) -> Result<Vec<Evidence>, SourceError> {
        let lines = cx
            .source
            .logs(&LogQuery {
                window: cx.window(),
                service: None,
                contains: None,
                limit: MAX_LINES,
            })
            .await?;
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let names = cx.service_names();
        let cut_ms = cx.cut_for(lines.iter().map(|r| r.ts.timestamp_millis()).collect());
        // Per service: minutes with logs before and after, templates seen before, error
        // counts after by template.
        #[derive(Default)]
        struct Tally {
            minutes_before: BTreeSet<i64>,
            minutes_after: BTreeSet<i64>,
            errors_before: usize,
            errors_after: usize,
            seen_before: BTreeSet<String>,
            new_after: BTreeMap<String, (usize, String, i64)>,
        }
        let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
        // Causes named in lines after the cut: (credited service, signal) → (count, example, first).
        let mut causes: BTreeMap<(String, Signal), (usize, String, i64, String)> = BTreeMap::new();
        let mut last_seen: BTreeMap<(String, Signal), i64> = BTreeMap::new();
        let coverage_end = lines
            .iter()
            .map(|r| r.ts.timestamp_millis())
            .max()
            .unwrap_or(cx.cut_ms);
        let mut causes_before: BTreeMap<(String, Signal), usize> = BTreeMap::new();
        for r in &lines {
            let t = tally.entry(r.service.clone()).or_default();
            let ms = r.ts.timestamp_millis();
            let after = ms >= cut_ms;
            let minute = ms / 60_000;
            if after {
                t.minutes_after.insert(minute);
            } else {
                t.minutes_before.insert(minute);
            }
            // Warnings count only where a cause is logged at warn level (slow statements).
            let error = is_error(r)
                || r.level.as_deref().is_some_and(|l| {
                    l.eq_ignore_ascii_case("warn") || l.eq_ignore_ascii_case("warning")
                }) && classify(&r.message).is_some_and(|(s, _)| s == Signal::SlowQueries);
            if !error {
                if !after {
                    t.seen_before.insert(template(&r.message));
                }
                continue;
            }
            let tpl = template(&r.message);
            if after {
                t.errors_after += 1;
                if !t.seen_before.contains(&tpl) {
                    let entry = t.new_after.entry(tpl).or_insert((0, r.message.clone(), ms));
                    entry.0 += 1;
                }
            } else {
                t.errors_before += 1;
                t.seen_before.insert(tpl);
            }
            if let Some((signal, about_peer)) = classify(&r.message) {
                let credited = if about_peer {
                    peer_in(&r.message, &r.service, &names).unwrap_or(&r.service)
                } else {
                    &r.service
                };
                let key = (credited.to_owned(), signal);
                if after {
                    last_seen.insert(key.clone(), ms);
                    let entry =
                        causes
                            .entry(key)
                            .or_insert((0, r.message.clone(), ms, r.service.clone()));
                    entry.0 += 1;
                } else {
                    *causes_before.entry(key).or_default() += 1;
                }
            }
        }
        let mut out = Vec::new();
        let window = TimeWindow {
            start: cx.cut(),
            end: cx.window().end,
        };
        let mk = |service: &str,
                  signal: Signal,
                  score: f64,
                  onset: Option<i64>,
                  query: String,
                  reason: String,
                  observed: f64,
                  baseline: f64| Evidence {
            observed,
            baseline,
            onset_ms: onset,
            ..Evidence::new(
                Domain::Logs,
                signal,
                service,
                cx.source.name(),
                query,
                window,
                score,
                reason,
            )
        };
        for (service, t) in &tally {
            let before_rate = t.errors_before as f64 / t.minutes_before.len().max(1) as f64;
            let after_rate = t.errors_after as f64 / t.minutes_after.len().max(1) as f64;
            if t.errors_after >= 3 && after_rate > 3.0 * before_rate.max(0.5) {
                let ratio = after_rate / before_rate.max(0.5);
                out.push(mk(
                    service,
                    Signal::Errors,
                    (0.3 + 0.1 * ratio.ln()).clamp(0.3, 0.8),
                    None,
                    format!("error-level logs of {service}, per minute, before vs after the onset"),
                    format!("{after_rate:.1} error lines/min (baseline {before_rate:.1})"),
                    after_rate,
                    before_rate,
                ));
            }
            if let Some((tpl, (count, example, first))) =
                t.new_after.iter().max_by_key(|(_, v)| v.0)
            {
                // A handful of lines of an unseen template is chance; it takes a burst.
                if *count >= 3
                    && (*count as f64) >= 0.5 * t.minutes_after.len() as f64
                    && !t.minutes_before.is_empty()
                {
                    let short = first_line(example);
                    out.push(Evidence {
                        template: Some(tpl.clone()),
                        ..mk(
                            service,
                            Signal::NewErrorTemplate,
                            (0.4 + 0.05 * (*count as f64).ln()).min(0.75),
                            Some(*first),
                            format!("log templates of {service} not seen before the onset"),
                            format!("new error: \"{short}\" ({count}×)"),
                            *count as f64,
                            0.0,
                        )
                    });
                }
            }
        }
        for ((service, signal), (count, example, first, writer)) in causes {
            let before = causes_before
                .get(&(service.clone(), signal))
                .copied()
                .unwrap_or(0);
            if count < 3 || count < 4 * before.max(1) && before > 0 {
                continue;
            }
            let short = first_line(&example);
            let from = if writer == service {
                String::new()
            } else {
                format!(" in {writer}'s logs")
            };
            let mut score = match signal {
                Signal::Latency => 0.35,
                _ => (0.55 + 0.05 * (count as f64).ln()).min(0.85),
            };
            // Lines that stopped well before the logs end were a blip that passed.
            let last = last_seen
                .get(&(service.clone(), signal))
                .copied()
                .unwrap_or(first);
            if last < coverage_end - 3 * 60_000 {
                score *= 0.1 + 0.9 * ((last - first) as f64 / (8.0 * 60_000.0)).min(1.0);
            }
            out.push(mk(
                &service,
                signal,
                score,
                Some(first),
                format!("logs mentioning {service} after the onset, by error class"),
                format!("{count} lines{from}: \"{short}\""),
                count as f64,
                before as f64,
            ));
        }
        // Requests that used to run a path through and now stop halfway.
        for f in flows::broken_flows(&lines, cut_ms) {
            let score =
                (0.3 + 0.5 * f.share()).min(0.8) * cx.lateness(Signal::Errors, Some(f.first_ms));
            out.push(mk(
                &f.service,
                Signal::Errors,
                score,
                Some(f.first_ms),
                format!("log lines of {} per request, before vs after the onset", f.service),
                format!(
                    "{} of {} requests stopped after \"{}\" without \"{}\" (before: {} of {} went on)",
                    f.broken,
                    f.after,
                    readable(&f.from),
                    readable(&f.missing),
                    f.held,
                    f.before
                ),
                f.broken as f64,
                (f.before - f.held) as f64,
            ));
        }
        Ok(out)
    }
}

/// A template to quote: masked values, and the labels before them, left out; at most 8
/// words.
fn readable(template: &str) -> String {
    let tokens: Vec<&str> = template.split(' ').collect();
    let masked = |t: &str| !t.replace("<*>", "").chars().any(char::is_alphabetic);
    let kept: Vec<&str> = tokens
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            !masked(t)
                && !((t.ends_with(':') || t.ends_with('='))
                    && tokens.get(i + 1).is_some_and(|n| masked(n)))
        })
        .map(|(_, t)| *t)
        .take(8)
        .collect();
    kept.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_mask_variables() {
        assert_eq!(
            template("Timeout calling payments: no response after 2000 ms"),
            "Timeout calling payments: no response after <*> ms"
        );
        assert_eq!(
            template("user 3f1a9c2e0b logged in from 10.2.3.4"),
            "user <*> logged in from <*>.<*>.<*>.<*>"
        );
        assert_eq!(
            template("path=/api/v1/x/3d4220b0 failed"),
            template("path=/api/v1/x/9c1f00aa failed")
        );
        assert_eq!(
            template("bad body on /api/v1/ledger/k455"),
            template("bad body on /api/v1/ledger/k12")
        );
        assert_eq!(classify("bad body on /api/v1/x/k429"), None);
        assert_eq!(
            template("GET /api/v1/items/42 200"),
            template("GET /api/v1/items/97 200")
        );
    }

    #[test]
    fn flow_templates_keep_code_locations_only() {
        let at = |line: u32| {
            flow_template(&format!(
                "18:25:11.776 INFO t.s.TripServiceImpl#{line} TraceID: 82eb SpanID: 79ef [getTickets] trip G1234"
            ))
        };
        assert_ne!(at(366), at(372));
        assert_eq!(template(&at(366)), template(&at(372)));
        assert_eq!(
            flow_template("at Foo.bar(Foo.java:123) from 10.2.3.4:8080 at 18:25:11"),
            "at Foo.bar(Foo.java:123) from <*>.<*>.<*>.<*>:<*> at <*>:<*>:<*>"
        );
        assert_eq!(
            readable(&at(366)),
            "INFO t.s.TripServiceImpl#366 [getTickets] trip"
        );
    }

    #[test]
    fn classes_name_their_peer() {
        assert_eq!(
            classify(
                "dial tcp: lookup payments.prod.svc.cluster.local on 10.96.0.10:53: no such host"
            ),
            Some((Signal::DnsFailure, true))
        );
        assert_eq!(
            peer_in(
                "lookup payments.prod.svc on x",
                "checkout",
                &["payments-db", "payments"]
            ),
            Some("payments")
        );
        assert_eq!(
            classify("HikariPool-1 - Connection is not available, request timed out after 3000ms."),
            Some((Signal::PoolExhaustion, false))
        );
    }
}
