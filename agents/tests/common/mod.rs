//! A small hand-built production for the ranking tests: a time line, the `web → api → db`
//! chain with `other` beside it, and evidence on it.

// Each suite compiles this module on its own and uses part of it.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};

use cairn_agents::{Domain, Evidence, Signal};
use cairn_connectors::{ServiceNode, TimeWindow, Topology};

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
}

/// The hour the incidents are investigated over.
pub fn window() -> TimeWindow {
    TimeWindow {
        start: t0(),
        end: t0() + Duration::hours(1),
    }
}

/// When the page came, 40 minutes into the window.
pub fn page_ms() -> i64 {
    (t0() + Duration::minutes(40)).timestamp_millis()
}

/// `web → api → db`, and `other` on its own.
pub fn topology() -> Topology {
    let node = |name: &str, deps: &[&str]| ServiceNode {
        name: name.into(),
        kind: Some("service".into()),
        team: None,
        runtime: None,
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
    };
    Topology {
        services: vec![
            node("web", &["api"]),
            node("api", &["db"]),
            node("db", &[]),
            node("other", &[]),
        ],
    }
}

/// Evidence of `signal` on `service` with `score`, starting `onset_min` minutes in.
pub fn evidence(
    service: &str,
    domain: Domain,
    signal: Signal,
    score: f64,
    onset_min: Option<i64>,
) -> Evidence {
    Evidence {
        onset_ms: onset_min.map(|m| (t0() + Duration::minutes(m)).timestamp_millis()),
        ..Evidence::new(
            domain,
            signal,
            service,
            "test",
            "q",
            window(),
            score,
            format!("{service} {signal:?}"),
        )
    }
}
