//! The domain agents: one specialist per angle, all behind [`Agent`].
//!
//! Round 1 calls [`Agent::survey`] on every agent at once; later rounds call
//! [`Agent::examine`] with the leading suspects so an agent can look further where the
//! evidence points. Agents only read through the metered source and only write evidence.
//! [`precedent`] is the exception: it reads no source but the ledger of round 1 and the past
//! cases the caller passed, so the orchestrator runs it between round 1 and the ranking.

pub mod changes;
pub mod database;
pub mod infrastructure;
pub mod logs;
pub mod metrics;
pub mod network;
pub mod precedent;
pub mod topology;
pub mod traces;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use cairn_connectors::{DataSource, Series, SeriesSelector, SourceError, TimeWindow, Topology};

use crate::evidence::{Domain, Evidence, Signal};
use crate::incident::Incident;
use crate::signals::{shift_floored, strength, Direction, Points};

/// How far before the page a fault's first effects may already show.
pub const ONSET_LEAD_MS: i64 = 2 * 60_000;

/// How long after the page a signal may first move and still be part of what was paged.
pub const LATE_AFTER_PAGE_MS: i64 = 3 * 60_000;
/// What a signal that first moved later than that still counts.
const LATE_WEIGHT: f64 = 0.4;

/// The least noise of a share of failures, as a part of its ceiling (half a percent).
pub const SHARE_NOISE: f64 = 0.005;

/// What every agent of one investigation shares.
pub struct Context<'a> {
    pub incident: &'a Incident,
    pub source: &'a dyn DataSource,
    /// The service graph (empty when no source knows it).
    pub topology: Topology,
    /// Baseline before, anomaly after: the onset less a lead.
    pub cut_ms: i64,
    /// When the investigation's time budget runs out.
    pub deadline: std::time::Instant,
}

impl Context<'_> {
    pub fn window(&self) -> TimeWindow {
        self.incident.window
    }

    pub fn cut(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.cut_ms).unwrap_or(self.incident.onset)
    }

    /// From the cut to the window's end: where anomalies are looked for.
    pub fn after_cut(&self) -> TimeWindow {
        TimeWindow {
            start: self.cut(),
            end: self.window().end,
        }
    }

    /// What evidence of `signal` that first moved at `onset_ms` still counts (1 or
    /// [`LATE_WEIGHT`]). A symptom that began well after the page did not cause it: a later
    /// consequence, or something else. (A cause — saturation, a pool, a cache — keeps its
    /// meaning when it shows late: a page can fire on an early wobble before the real
    /// trouble.)
    pub fn lateness(&self, signal: Signal, onset_ms: Option<i64>) -> f64 {
        let late = onset_ms
            .is_some_and(|t| t > self.incident.onset.timestamp_millis() + LATE_AFTER_PAGE_MS);
        if late && !crate::investigation::is_cause(signal) {
            LATE_WEIGHT
        } else {
            1.0
        }
    }

    /// Every series of `metric` in the window (all services).
    pub async fn metric(&self, metric: &str) -> Result<Vec<Series>, SourceError> {
        self.source
            .series(&SeriesSelector {
                metric: Some(metric.to_owned()),
                ..SeriesSelector::all(self.window())
            })
            .await
    }

    /// The cut for data captured only around the page (short trace or log captures): the
    /// usual cut when enough of the data lies before it, else a later one up to the page,
    /// so there is a baseline at all.
    pub fn cut_for(&self, mut times: Vec<i64>) -> i64 {
        if times.is_empty() {
            return self.cut_ms;
        }
        times.sort_unstable();
        let page = self.incident.onset.timestamp_millis();
        let enough = |cut: i64| times.partition_point(|t| *t < cut) * 5 >= times.len();
        [self.cut_ms, page - 60_000, page - 30_000, page]
            .into_iter()
            .find(|c| enough(*c))
            .unwrap_or(self.cut_ms)
    }

    /// Known service names, longest first (for finding names inside text).
    pub fn service_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .topology
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        names
    }

    /// The kind the topology gives a service (`database`, `external`…), if any.
    pub fn kind_of(&self, service: &str) -> Option<&str> {
        self.topology
            .service(service)
            .and_then(|s| s.kind.as_deref())
    }

    /// Evidence that `points` shifted in `direction` after the cut, when it did.
    #[allow(clippy::too_many_arguments)]
    pub fn shifted(
        &self,
        domain: Domain,
        signal: Signal,
        service: &str,
        query: String,
        points: &Points,
        direction: Direction,
        min_z: f64,
        describe: impl Fn(f64, f64) -> String,
    ) -> Option<Evidence> {
        self.shifted_floored(
            domain, signal, service, query, points, direction, min_z, 0.0, describe,
        )
    }

    /// [`Self::shifted`] with the baseline's noise taken to be at least `sigma_floor` — for a
    /// share of failures (0–`ceiling`), [`SHARE_NOISE`] of its ceiling: a move smaller than
    /// that is noise however quiet the baseline was (from 0 failures to 1.5% is no outage).
    #[allow(clippy::too_many_arguments)]
    pub fn shifted_floored(
        &self,
        domain: Domain,
        signal: Signal,
        service: &str,
        query: String,
        points: &Points,
        direction: Direction,
        min_z: f64,
        sigma_floor: f64,
        describe: impl Fn(f64, f64) -> String,
    ) -> Option<Evidence> {
        let mut s = shift_floored(points, self.cut_ms, direction, sigma_floor)?;
        // A series that stopped reporting well before the window's end (a pod that served
        // nothing more) has not stayed anomalous: it went quiet.
        if let (true, Some(first), Some(last)) = (s.ongoing, points.first(), points.last()) {
            let step = (last.0 - first.0) / (points.len() as i64 - 1).max(1);
            if self.window().end.timestamp_millis() - last.0 > 3 * step.max(1) {
                s.ongoing = false;
            }
        }
        // A sustained move counts more than one spike.
        let z = s.z.min(s.sustained_z.max(s.z * 0.6));
        if z < min_z {
            return None;
        }
        // A blip that came and went before the data ends counts for less.
        let mut score = strength(z) * (0.1 + 0.9 * s.persistence());
        score *= self.lateness(signal, s.onset_ms);
        Some(Evidence {
            observed: s.peak,
            baseline: s.baseline,
            onset_ms: s.onset_ms,
            trend: trend(points, self.cut_ms),
            ..Evidence::new(
                domain,
                signal,
                service,
                self.source.name(),
                query,
                self.after_cut(),
                score,
                describe(s.baseline, s.peak),
            )
        })
    }
}

/// A specialist that surveys one domain and, later, examines suspects.
#[async_trait]
pub trait Agent: Send + Sync {
    /// Its name in progress events.
    fn name(&self) -> &'static str;

    /// Round 1: everything in this domain that left its baseline.
    async fn survey(&self, cx: &Context<'_>) -> Result<Vec<Evidence>, SourceError>;

    /// Later rounds: look closer at the leading suspects (and at what the ledger holds).
    async fn examine(
        &self,
        _cx: &Context<'_>,
        _suspects: &[String],
        _ledger: &[Evidence],
    ) -> Result<Vec<Evidence>, SourceError> {
        Ok(Vec::new())
    }
}

/// The standard line-up of agents that query the sources (precedent runs apart).
pub fn all() -> Vec<Box<dyn Agent>> {
    vec![
        Box::new(changes::Changes),
        Box::new(metrics::Metrics),
        Box::new(topology::TopologyAgent),
        Box::new(logs::Logs),
        Box::new(traces::Traces),
        Box::new(infrastructure::Infrastructure),
        Box::new(database::Database),
        Box::new(network::Network),
    ]
}

/// Up to 32 points of `points` from a while before the cut to the end, for a sparkline.
pub fn trend(points: &Points, cut_ms: i64) -> Vec<f64> {
    let from = points.partition_point(|p| p.0 < cut_ms).saturating_sub(24);
    let tail = &points[from..];
    let stride = tail.len().div_ceil(32).max(1);
    tail.chunks(stride)
        .map(|c| c.iter().map(|p| p.1).fold(f64::MIN, f64::max))
        .collect()
}

/// Formats a number for a reason line: short, with sensible precision.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else if a >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}
