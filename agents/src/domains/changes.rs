//! Changes: deploys, configuration and flag changes, scaling near the onset.

use async_trait::async_trait;
use chrono::Duration;

use cairn_connectors::{ChangeKind, EventQuery, SourceError, TimeWindow};

use super::{Agent, Context};
use crate::evidence::{Domain, Evidence, Signal};

/// How far before the onset a change is a suspect.
const LOOKBACK_MIN: i64 = 30;

pub struct Changes;

#[async_trait]
impl Agent for Changes {
    fn name(&self) -> &'static str {
        "changes"
    }

    async fn survey(&self, cx: &Context<'_>) -> Result<Vec<Evidence>, SourceError> {
        let onset = cx.incident.onset;
        let start = (onset - Duration::minutes(LOOKBACK_MIN)).max(cx.window().start);
        let window = TimeWindow {
            start,
            end: (onset + Duration::minutes(2))
                .min(cx.window().end)
                .max(start),
        };
        let changes = cx
            .source
            .changes(&EventQuery {
                window,
                service: None,
            })
            .await?;
        Ok(changes
            .into_iter()
            .filter(|c| c.kind != ChangeKind::Scale)
            .map(|c| {
                let before_min = (onset - c.ts).num_seconds() as f64 / 60.0;
                // Closer to the onset is more suspicious; a change after the page barely counts.
                let closeness = if before_min >= 0.0 {
                    (-before_min / 12.0).exp()
                } else {
                    0.3
                };
                let signal = match c.kind {
                    ChangeKind::Deploy => Signal::Deploy,
                    _ => Signal::ConfigChange,
                };
                let what = c
                    .version
                    .as_deref()
                    .filter(|v| !c.summary.contains(*v))
                    .map_or_else(String::new, |v| format!(" ({v})"));
                let query = format!(
                    "changes to {} between {} and {}",
                    c.service,
                    window.start.format("%H:%M"),
                    window.end.format("%H:%M")
                );
                let reason = format!(
                    "{}{what} {} {:.0} min before the page{}",
                    c.summary,
                    if c.author.is_some() {
                        "by ".to_owned() + c.author.as_deref().unwrap_or("")
                    } else {
                        String::new()
                    },
                    before_min.max(0.0),
                    c.diff
                        .as_deref()
                        .map_or_else(String::new, |d| format!(": {d}"))
                )
                .replace("  ", " ");
                Evidence {
                    observed: before_min,
                    onset_ms: Some(c.ts.timestamp_millis()),
                    link: c.link.clone(),
                    ..Evidence::new(
                        Domain::Changes,
                        signal,
                        c.service.clone(),
                        cx.source.name().to_owned(),
                        query,
                        TimeWindow {
                            start: c.ts,
                            end: c.ts,
                        },
                        0.85 * closeness,
                        reason,
                    )
                }
            })
            .collect())
    }
}
