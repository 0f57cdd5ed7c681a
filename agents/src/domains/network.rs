//! Network: packet drops and resets, certificates, rate limits and slow externals, and what
//! each caller sees from each dependency.

use std::collections::BTreeMap;

use async_trait::async_trait;

use cairn_connectors::{Series, SourceError};

use super::{num, Agent, Context};
use crate::evidence::{Domain, Evidence, Signal};
use crate::signals::{points, ratio, signal_of, sum, Direction, Points};

pub struct Network;

fn by<'a>(
    series: &'a [Series],
    key: impl Fn(&Series) -> Option<String>,
) -> BTreeMap<String, Vec<&'a Series>> {
    let mut out: BTreeMap<String, Vec<&'a Series>> = BTreeMap::new();
    for s in series {
        if let Some(k) = key(s) {
            out.entry(k).or_default().push(s);
        }
    }
    out
}

fn total(series: &[&Series]) -> Points {
    sum(&series.iter().map(|s| signal_of(s)).collect::<Vec<_>>())
}

#[async_trait]
impl Agent for Network {
    fn name(&self) -> &'static str {
        "network"
    }

    async fn survey(&self, cx: &Context<'_>) -> Result<Vec<Evidence>, SourceError> {
        let mut out = Vec::new();
        let service = |s: &Series| s.service().map(str::to_owned);
        // Packets dropped on receive.
        let dropped = cx
            .metric("container_network_receive_packets_dropped_total")
            .await?;
        for (name, series) in by(&dropped, service) {
            let rate = total(&series);
            if let Some(e) = cx.shifted(
                Domain::Network,
                Signal::PacketLoss,
                &name,
                format!(
                    "rate(container_network_receive_packets_dropped_total{{service=\"{name}\"}})"
                ),
                &rate,
                Direction::Up,
                5.0,
                |b, p| {
                    format!(
                        "dropping {} packets/s on receive (baseline {})",
                        num(p),
                        num(b)
                    )
                },
            ) {
                if e.observed > 1.0 {
                    out.push(e);
                }
            }
        }
        // Certificates.
        let expiry = cx.metric("probe_ssl_earliest_cert_expiry").await?;
        for (name, series) in by(&expiry, service) {
            for s in series {
                let expired = s.samples.iter().find(|p| {
                    p.ts_ms >= cx.cut_ms - 10 * 60_000 && p.value * 1000.0 <= p.ts_ms as f64
                });
                let valid_before = s.samples.iter().any(|p| {
                    p.ts_ms < cx.cut_ms - 10 * 60_000 && p.value * 1000.0 > p.ts_ms as f64
                });
                if let (Some(p), true) = (
                    expired,
                    valid_before
                        || s.samples
                            .first()
                            .is_some_and(|f| f.value * 1000.0 > f.ts_ms as f64),
                ) {
                    let at = chrono::DateTime::from_timestamp(p.value as i64, 0)
                        .map(|t| t.format("%H:%M:%S").to_string())
                        .unwrap_or_default();
                    out.push(Evidence {
                        observed: p.value,
                        onset_ms: Some((p.value * 1000.0) as i64),
                        ..Evidence::new(
                            Domain::Network,
                            Signal::TlsFailure,
                            name.clone(),
                            cx.source.name().to_owned(),
                            format!(
                                "probe_ssl_earliest_cert_expiry{{service=\"{name}\"}} - time()"
                            ),
                            cx.window(),
                            0.9,
                            format!("its TLS certificate expired at {at}"),
                        )
                    });
                    break;
                }
            }
        }
        // Blackbox probes of externals: status and duration.
        let status = cx.metric("probe_http_status_code").await?;
        for (name, series) in by(&status, service) {
            let codes: Vec<(i64, f64)> = series.iter().flat_map(|s| points(&s.samples)).collect();
            let limited_before = codes
                .iter()
                .filter(|p| p.0 < cx.cut_ms && p.1 == 429.0)
                .count();
            let limited_after = codes
                .iter()
                .filter(|p| p.0 >= cx.cut_ms && p.1 == 429.0)
                .count();
            if limited_after >= 2 && limited_before == 0 {
                let first = codes
                    .iter()
                    .find(|p| p.0 >= cx.cut_ms - 10 * 60_000 && p.1 == 429.0)
                    .map(|p| p.0);
                out.push(Evidence {
                    observed: 429.0,
                    baseline: 200.0,
                    onset_ms: first,
                    ..Evidence::new(Domain::Network, Signal::RateLimited, name.clone(), cx.source.name().to_owned(), format!("probe_http_status_code{{service=\"{name}\"}} == 429"), cx.window(), 0.8, format!("answers 429 Too Many Requests ({limited_after} probes since the onset, none before)"))
                });
            }
        }
        let duration = cx.metric("probe_duration_seconds").await?;
        for (name, series) in by(&duration, service) {
            let d = sum(&series
                .iter()
                .map(|s| points(&s.samples))
                .collect::<Vec<_>>());
            if let Some(e) = cx.shifted(
                Domain::Network,
                Signal::ExternalLatency,
                &name,
                format!("probe_duration_seconds{{service=\"{name}\"}}"),
                &d,
                Direction::Up,
                5.0,
                |b, p| {
                    format!(
                        "probes take {} ms (baseline {} ms)",
                        num(p * 1000.0),
                        num(b * 1000.0)
                    )
                },
            ) {
                if e.observed > 2.0 * e.baseline {
                    out.push(e);
                }
            }
        }
        // What callers see from each dependency: error share and latency per edge, credited
        // to the dependency.
        let counts = cx.metric("http_client_requests_seconds_count").await?;
        let sums = cx.metric("http_client_requests_seconds_sum").await?;
        let edge = |s: &Series| Some(format!("{}→{}", s.service()?, s.labels.get("peer")?));
        let count_by_edge = by(&counts, edge);
        let sum_by_edge = by(&sums, edge);
        for (key, series) in &count_by_edge {
            let Some((caller, peer)) = key.split_once('→') else {
                continue;
            };
            let all = total(series);
            let external = cx.kind_of(peer) == Some("external");
            for (outcome, signal) in [
                ("CLIENT_ERROR", Signal::RateLimited),
                ("SERVER_ERROR", Signal::Errors),
            ] {
                let bad: Vec<&Series> = series
                    .iter()
                    .copied()
                    .filter(|s| s.labels.get("outcome").map(String::as_str) == Some(outcome))
                    .collect();
                if bad.is_empty() {
                    continue;
                }
                let share = ratio(&total(&bad), &all);
                let signal = if signal == Signal::RateLimited && !external {
                    Signal::Errors
                } else {
                    signal
                };
                if let Some(mut e) = cx.shifted(Domain::Network, signal, peer, format!("{outcome} share of http_client_requests_seconds_count{{service=\"{caller}\",peer=\"{peer}\"}}"), &share, Direction::Up, 5.0, |b, p| format!("{caller} sees {:.1}% {outcome} from {peer} (baseline {:.1}%)", p * 100.0, b * 100.0)) {
                    if e.observed < 0.02 {
                        continue;
                    }
                    // Evidence from the outside of a service, about it.
                    e.score *= 0.8;
                    out.push(e);
                }
            }
            if let Some(s) = sum_by_edge.get(key) {
                let mean: Points = ratio(&total(s), &all)
                    .into_iter()
                    .map(|(t, v)| (t, v * 1000.0))
                    .collect();
                let signal = if external {
                    Signal::ExternalLatency
                } else {
                    Signal::Latency
                };
                if let Some(mut e) = cx.shifted(Domain::Network, signal, peer, format!("rate(http_client_requests_seconds_sum{{service=\"{caller}\",peer=\"{peer}\"}}) / rate(…_count)"), &mean, Direction::Up, 5.0, |b, p| format!("{caller} waits {} ms for {peer} (baseline {} ms)", num(p), num(b))) {
                    if e.observed > 1.5 * e.baseline {
                        e.score *= 0.8;
                        out.push(e);
                    }
                }
            }
        }
        Ok(out)
    }
}
