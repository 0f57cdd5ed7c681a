//! Broken flows: the lines one request writes in one service follow its code, so lines that
//! always came together before the onset keep coming together — unless the code now stops
//! between them (an exception thrown, an early return, a call that fails). Invariants of the
//! form "every request that logs A also logs B" are mined from the baseline, in the spirit
//! of invariant mining over console logs (Lou et al., USENIX ATC 2010), and checked after
//! the onset. A request is a span when lines carry `span_id`, else a trace (`trace_id`);
//! lines carrying neither take no part.

use std::collections::{BTreeMap, HashMap};

use cairn_connectors::LogRecord;

/// Fewest baseline requests logging A for "A brings B" to be an invariant at all.
const MIN_HELD: usize = 8;
/// Share of those that must also log B (a rare other branch is tolerated).
const MIN_HOLD_SHARE: f64 = 0.95;
/// Fewest requests after the onset that break it.
const MIN_BROKEN: usize = 3;
/// Share of the requests logging A after the onset that must break it.
const MIN_BROKEN_SHARE: f64 = 0.2;
/// How far the breaks must stand above what the baseline allows, in standard deviations.
const MIN_Z: f64 = 4.0;
/// A "request" writing more kinds of line than this is a log dump, not one request's flow.
const MAX_LINES_PER_REQUEST: usize = 200;
/// Requests whose lines end this close to the end of the logs may simply be cut off.
const EDGE_MS: i64 = 5_000;

/// An invariant of one service's requests that held before the onset and broke after.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokenFlow {
    pub service: String,
    /// The line the requests still write (its template, code location kept).
    pub from: String,
    /// The line that used to follow and no longer does.
    pub missing: String,
    /// Requests after the onset that wrote `from`, and of those how many lacked `missing`.
    pub after: usize,
    pub broken: usize,
    /// Baseline requests that wrote `from`, and of those how many also wrote `missing`.
    pub before: usize,
    pub held: usize,
    /// When the first broken request began.
    pub first_ms: i64,
}

impl BrokenFlow {
    /// The share of requests after the onset that broke the flow.
    pub fn share(&self) -> f64 {
        self.broken as f64 / self.after.max(1) as f64
    }
}

#[derive(Default)]
struct Request {
    first_ms: i64,
    last_ms: i64,
    /// Interned templates the request wrote, sorted and unique, each with when it was
    /// first written.
    lines: Vec<(u32, i64)>,
}

/// The key of the request a line belongs to.
fn request_of(r: &LogRecord) -> Option<&str> {
    r.attrs
        .get("span_id")
        .and_then(|v| v.as_str())
        .or(r.trace_id.as_deref())
        .filter(|k| !k.is_empty())
}

/// Every service's strongest broken flow, strongest first. `cut_ms` splits baseline from
/// after; a request belongs to the side where it began.
pub fn broken_flows(lines: &[LogRecord], cut_ms: i64) -> Vec<BrokenFlow> {
    let end_ms = lines
        .iter()
        .map(|r| r.ts.timestamp_millis())
        .max()
        .unwrap_or(i64::MIN);
    // Per service: interned templates and requests by key.
    #[derive(Default)]
    struct Service<'a> {
        names: Vec<String>,
        ids: HashMap<String, u32>,
        requests: HashMap<&'a str, Request>,
    }
    let mut services: BTreeMap<&str, Service> = BTreeMap::new();
    for r in lines {
        let Some(key) = request_of(r) else { continue };
        let s = services.entry(r.service.as_str()).or_default();
        let tpl = super::flow_template(&r.message);
        let id = match s.ids.get(&tpl) {
            Some(id) => *id,
            None => {
                let id = s.names.len() as u32;
                s.names.push(tpl.clone());
                s.ids.insert(tpl, id);
                id
            }
        };
        let ms = r.ts.timestamp_millis();
        let req = s.requests.entry(key).or_insert(Request {
            first_ms: ms,
            last_ms: ms,
            lines: Vec::new(),
        });
        req.first_ms = req.first_ms.min(ms);
        req.last_ms = req.last_ms.max(ms);
        match req.lines.binary_search_by_key(&id, |l| l.0) {
            Ok(at) => req.lines[at].1 = req.lines[at].1.min(ms),
            Err(at) => req.lines.insert(at, (id, ms)),
        }
    }
    let mut out: Vec<BrokenFlow> = services
        .into_iter()
        .filter_map(|(service, s)| {
            let (before, after): (Vec<&Request>, Vec<&Request>) = s
                .requests
                .values()
                .filter(|q| q.last_ms < end_ms - EDGE_MS)
                .partition(|q| q.first_ms < cut_ms);
            strongest(service, &s.names, &before, &after)
        })
        .collect();
    out.sort_by(|a, b| {
        b.share()
            .total_cmp(&a.share())
            .then(a.service.cmp(&b.service))
    });
    out
}

/// The invariant of one service that broke most clearly, if one did: the one most requests
/// broke, and of those the one whose two lines came closest together — the last line the
/// requests still reached, and the first they no longer do.
fn strongest(
    service: &str,
    names: &[String],
    before: &[&Request],
    after: &[&Request],
) -> Option<BrokenFlow> {
    let n = names.len();
    // Baseline: requests writing each template, and each pair together (with the time
    // from the first line to the second, summed).
    let mut alone = vec![0usize; n];
    for q in before {
        for &(a, _) in &q.lines {
            alone[a as usize] += 1;
        }
    }
    // Only lines frequent enough to hold an invariant are paired (both sides of one are).
    let frequent = |t: u32| alone[t as usize] >= MIN_HELD;
    let mut together: HashMap<(u32, u32), (usize, i64)> = HashMap::new();
    for q in before
        .iter()
        .filter(|q| q.lines.len() <= MAX_LINES_PER_REQUEST)
    {
        for &(a, at) in q.lines.iter().filter(|l| frequent(l.0)) {
            for &(b, bt) in q.lines.iter().filter(|l| frequent(l.0)) {
                if a != b {
                    let pair = together.entry((a, b)).or_default();
                    pair.0 += 1;
                    pair.1 += bt - at;
                }
            }
        }
    }
    // "A brings B", where B came after A: what a request that stops after A lacks.
    let invariants: Vec<((u32, u32), usize, f64)> = together
        .into_iter()
        .filter(|((a, _), (held, gap))| {
            let base = alone[*a as usize];
            base >= MIN_HELD && *held as f64 >= MIN_HOLD_SHARE * base as f64 && *gap >= 0
        })
        .map(|(pair, (held, gap))| (pair, held, gap as f64 / held as f64))
        .collect();
    let has = |q: &Request, t: u32| q.lines.binary_search_by_key(&t, |l| l.0).is_ok();
    let mut best: Option<((usize, f64, f64), BrokenFlow)> = None;
    for ((a, b), held, gap) in invariants {
        let mut wrote = 0;
        let mut broken = 0;
        let mut first_ms = i64::MAX;
        for q in after {
            if has(q, a) {
                wrote += 1;
                if !has(q, b) {
                    broken += 1;
                    first_ms = first_ms.min(q.first_ms);
                }
            }
        }
        let base = alone[a as usize];
        // The baseline's own rate of breaking it, smoothed so 0 of 18 is not "never".
        let p = ((base - held) as f64 + 1.0) / (base as f64 + 2.0);
        let expected = wrote as f64 * p;
        let z = (broken as f64 - expected) / (expected * (1.0 - p)).sqrt().max(1e-9);
        if broken < MIN_BROKEN || (broken as f64) < MIN_BROKEN_SHARE * wrote as f64 || z < MIN_Z {
            continue;
        }
        // Most broken, then the closest pair, then the clearest; names settle the rest.
        let rank = (broken, -gap, z);
        let better = best.as_ref().is_none_or(|(r, f)| {
            let order = rank
                .0
                .cmp(&r.0)
                .then(rank.1.total_cmp(&r.1))
                .then(rank.2.total_cmp(&r.2))
                .then_with(|| (&f.from, &f.missing).cmp(&(&names[a as usize], &names[b as usize])));
            order.is_gt()
        });
        if better {
            best = Some((
                rank,
                BrokenFlow {
                    service: service.to_owned(),
                    from: names[a as usize].clone(),
                    missing: names[b as usize].clone(),
                    after: wrote,
                    broken,
                    before: base,
                    held,
                    first_ms,
                },
            ));
        }
    }
    best.map(|(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn line(ms: i64, service: &str, span: &str, message: &str) -> LogRecord {
        LogRecord {
            ts: DateTime::from_timestamp_millis(ms).unwrap(),
            service: service.to_owned(),
            level: Some("info".to_owned()),
            message: message.to_owned(),
            pod: None,
            trace_id: None,
            attrs: [("span_id".to_owned(), serde_json::json!(span))]
                .into_iter()
                .collect(),
        }
    }

    /// `requests` requests of `service`, one per second from `start`; each writes the
    /// query line and, unless `breaks(i)`, the line that follows it.
    fn requests(
        out: &mut Vec<LogRecord>,
        service: &str,
        start: i64,
        count: usize,
        breaks: impl Fn(usize) -> bool,
    ) {
        for i in 0..count {
            let ms = start + i as i64 * 1_000;
            let span = format!("{service}-{start}-{i}");
            out.push(line(
                ms,
                service,
                &span,
                "INFO t.s.TripServiceImpl#366 [getTickets] trip G1234",
            ));
            if !breaks(i) {
                out.push(line(
                    ms + 5,
                    service,
                    &span,
                    "INFO t.s.TripServiceImpl#372 [getTickets] distance 42",
                ));
            }
        }
    }

    #[test]
    fn a_flow_that_stops_halfway_after_the_onset_is_broken() {
        let cut = 100_000;
        let mut lines = Vec::new();
        requests(&mut lines, "trips", 0, 40, |_| false);
        requests(&mut lines, "trips", cut, 40, |i| i % 4 != 0);
        // Another service whose flow holds, and one too young to have an invariant.
        requests(&mut lines, "seats", 0, 40, |_| false);
        requests(&mut lines, "seats", cut, 40, |_| false);
        requests(&mut lines, "fresh", cut, 40, |i| i % 2 == 0);
        let flows = broken_flows(&lines, cut);
        assert_eq!(flows.len(), 1, "{flows:?}");
        let f = &flows[0];
        assert_eq!(f.service, "trips");
        assert!(
            f.from.contains("#366") && f.missing.contains("#372"),
            "{f:?}"
        );
        // The last few requests lie within the edge of the logs and are left out.
        assert_eq!((f.before, f.held), (40, 40));
        assert!(f.after >= 34 && f.broken * 4 >= f.after * 3 - 3, "{f:?}");
        assert_eq!(f.first_ms, cut + 1_000);
    }

    #[test]
    fn the_odd_break_the_baseline_also_had_is_no_finding() {
        let cut = 100_000;
        let mut lines = Vec::new();
        requests(&mut lines, "trips", 0, 40, |i| i == 7);
        requests(&mut lines, "trips", cut, 40, |i| [3, 20, 30].contains(&i));
        assert!(broken_flows(&lines, cut).is_empty());
    }

    #[test]
    fn lines_without_a_request_take_no_part() {
        let cut = 100_000;
        let mut lines = Vec::new();
        requests(&mut lines, "trips", 0, 40, |_| false);
        requests(&mut lines, "trips", cut, 40, |i| i % 2 == 0);
        for l in &mut lines {
            l.attrs = Default::default();
        }
        assert!(broken_flows(&lines, cut).is_empty());
    }
}
