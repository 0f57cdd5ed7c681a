//! What an investigation starts from.

use chrono::{DateTime, Utc};

use cairn_connectors::{Alert, TimeWindow};

/// An incident to investigate: a page, or a question, with the window to look at.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub title: String,
    /// When the trouble started, as far as the page knows.
    pub onset: DateTime<Utc>,
    /// The data to look at: history before the onset and what followed it.
    pub window: TimeWindow,
    /// The service the page or question is about, if it names one.
    pub entry_service: Option<String>,
}

impl Incident {
    /// The incident a page opens: onset at `startsAt`, looking at `window`.
    pub fn from_alert(alert: &Alert, window: TimeWindow) -> Self {
        Self {
            title: alert.title().to_owned(),
            onset: alert.starts_at,
            window,
            entry_service: alert.service().map(str::to_owned),
        }
    }
}
