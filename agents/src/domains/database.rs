//! Databases and their clients: pool waits, statement latency and locks; caches' hit ratios;
//! queues' consumer lag.

use std::collections::BTreeMap;

use async_trait::async_trait;

use cairn_connectors::{Series, SourceError};

use super::{num, Agent, Context};
use crate::evidence::{Domain, Evidence, Signal};
use crate::signals::{points, ratio, signal_of, sum, Direction, Points};

pub struct Database;

fn group(series: Vec<Series>, label: &str) -> BTreeMap<String, Vec<Series>> {
    let mut out: BTreeMap<String, Vec<Series>> = BTreeMap::new();
    for s in series {
        if let Some(v) = s.labels.get(label) {
            out.entry(v.clone()).or_default().push(s);
        }
    }
    out
}

fn total(series: &[Series]) -> Points {
    sum(&series.iter().map(signal_of).collect::<Vec<_>>())
}

#[async_trait]
impl Agent for Database {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn survey(&self, cx: &Context<'_>) -> Result<Vec<Evidence>, SourceError> {
        let mut out = Vec::new();
        // Client pools: threads waiting for a connection.
        for (client, series) in group(cx.metric("hikaricp_connections_pending").await?, "service") {
            let pending = sum(&series
                .iter()
                .map(|s| points(&s.samples))
                .collect::<Vec<_>>());
            let pools: Vec<String> = series
                .iter()
                .filter_map(|s| s.labels.get("pool").cloned())
                .collect();
            if let Some(e) = cx.shifted(
                Domain::Database,
                Signal::PoolExhaustion,
                &client,
                format!("hikaricp_connections_pending{{service=\"{client}\"}}"),
                &pending,
                Direction::Up,
                4.0,
                |b, p| {
                    format!(
                        "{} threads waiting for a {} connection (baseline {})",
                        num(p),
                        pools.join("/"),
                        num(b)
                    )
                },
            ) {
                if e.observed >= 1.0 {
                    out.push(e);
                }
            }
        }
        // Statement time per call, and the template that takes it.
        let seconds = group(
            cx.metric("pg_stat_statements_seconds_total").await?,
            "service",
        );
        let calls = group(
            cx.metric("pg_stat_statements_calls_total").await?,
            "service",
        );
        for (db, secs) in &seconds {
            let Some(n) = calls.get(db) else { continue };
            let mean: Points = ratio(&total(secs), &total(n))
                .into_iter()
                .map(|(t, v)| (t, v * 1000.0))
                .collect();
            if let Some(mut e) = cx.shifted(Domain::Database, Signal::SlowQueries, db, format!("rate(pg_stat_statements_seconds_total{{service=\"{db}\"}}) / rate(pg_stat_statements_calls_total)"), &mean, Direction::Up, 4.0, |b, p| format!("statements take {} ms on average (baseline {} ms)", num(p), num(b))) {
                if e.observed > 2.0 * e.baseline {
                    // Which template takes the time.
                    let hottest = secs
                        .iter()
                        .map(|s| (s.labels.get("queryid").cloned().unwrap_or_default(), signal_of(s).iter().filter(|p| p.0 >= cx.cut_ms).map(|p| p.1).sum::<f64>()))
                        .max_by(|a, b| a.1.total_cmp(&b.1));
                    let all: f64 = secs.iter().map(|s| signal_of(s).iter().filter(|p| p.0 >= cx.cut_ms).map(|p| p.1).sum::<f64>()).sum();
                    if let Some((id, t)) = hottest {
                        e.reason = format!("{}; statement {id} takes {:.0}% of the time", e.reason, 100.0 * t / all.max(1e-9));
                    }
                    out.push(e);
                }
            }
        }
        for (db, series) in group(cx.metric("pg_locks_count").await?, "service") {
            let locks = sum(&series
                .iter()
                .map(|s| points(&s.samples))
                .collect::<Vec<_>>());
            if let Some(mut e) = cx.shifted(
                Domain::Database,
                Signal::SlowQueries,
                &db,
                format!("pg_locks_count{{service=\"{db}\"}}"),
                &locks,
                Direction::Up,
                4.0,
                |b, p| format!("{} locks held or awaited (baseline {})", num(p), num(b)),
            ) {
                e.score *= 0.8;
                out.push(e);
            }
        }
        // Caches: hit ratio, and whether they answer.
        let hits = group(cx.metric("redis_keyspace_hits_total").await?, "service");
        let misses = group(cx.metric("redis_keyspace_misses_total").await?, "service");
        for (cache, h) in &hits {
            let Some(m) = misses.get(cache) else { continue };
            let (h, m) = (total(h), total(m));
            let lookups = sum(&[h.clone(), m.clone()]);
            let hit_ratio = ratio(&h, &lookups);
            if let Some(e) = cx.shifted(
                Domain::Database,
                Signal::CacheMisses,
                cache,
                format!("rate(redis_keyspace_hits_total{{service=\"{cache}\"}}) / (hits + misses)"),
                &hit_ratio,
                Direction::Down,
                4.0,
                |b, p| format!("cache hit ratio {:.0}% → {:.0}%", b * 100.0, p * 100.0),
            ) {
                out.push(e);
            }
        }
        for (cache, series) in group(cx.metric("redis_up").await?, "service") {
            let up = sum(&series
                .iter()
                .map(|s| points(&s.samples))
                .collect::<Vec<_>>());
            // Pages come minutes after a cache goes down: look back before the cut.
            let down_before = up
                .iter()
                .any(|p| p.0 < cx.cut_ms - 10 * 60_000 && p.1 < 0.5);
            if let Some(first) = up
                .iter()
                .find(|p| p.0 >= cx.cut_ms - 10 * 60_000 && p.1 < 0.5)
                .filter(|_| !down_before)
            {
                out.push(Evidence {
                    baseline: 1.0,
                    onset_ms: Some(first.0),
                    ..Evidence::new(
                        Domain::Database,
                        Signal::CacheMisses,
                        cache.clone(),
                        cx.source.name().to_owned(),
                        format!("redis_up{{service=\"{cache}\"}}"),
                        cx.window(),
                        0.95,
                        "the cache stopped answering (redis_up = 0)".to_owned(),
                    )
                });
            }
        }
        // Queues: consumer lag.
        for (queue, series) in group(cx.metric("kafka_consumergroup_lag").await?, "service") {
            let lag = sum(&series
                .iter()
                .map(|s| points(&s.samples))
                .collect::<Vec<_>>());
            if let Some(e) = cx.shifted(
                Domain::Database,
                Signal::ConsumerLag,
                &queue,
                format!("kafka_consumergroup_lag{{service=\"{queue}\"}}"),
                &lag,
                Direction::Up,
                4.0,
                |b, p| format!("consumers {} messages behind (baseline {})", num(p), num(b)),
            ) {
                if e.observed > 5.0 * e.baseline.max(10.0) {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }
}
