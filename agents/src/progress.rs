//! Progress of an investigation as a stream of events, for renderers (the terminal, the
//! Slack status message) to show while it runs.

use serde::Serialize;
use tokio::sync::mpsc;

use crate::hypothesis::FaultKind;
use crate::investigation::Verdict;

/// Something that happened during an investigation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// A round began: 1 surveys every domain; later rounds test the leaders.
    RoundStarted {
        round: u32,
    },
    AgentStarted {
        agent: &'static str,
    },
    AgentFinished {
        agent: &'static str,
        evidence: usize,
        elapsed_ms: u64,
        error: Option<String>,
    },
    EvidenceFound {
        agent: &'static str,
        service: String,
        reason: String,
    },
    HypothesisRaised {
        service: String,
        kind: Option<FaultKind>,
        confidence: f64,
    },
    HypothesisUpdated {
        service: String,
        kind: Option<FaultKind>,
        confidence: f64,
        why: String,
    },
    Done {
        verdict: Verdict,
        queries: usize,
    },
}

/// Where progress goes: nowhere, or a channel a renderer reads.
#[derive(Debug, Clone, Default)]
pub struct ProgressSink {
    tx: Option<mpsc::UnboundedSender<Progress>>,
}

impl ProgressSink {
    /// A sink that drops everything.
    pub fn none() -> Self {
        Self { tx: None }
    }

    /// A sink and the receiver a renderer reads from.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Progress>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx: Some(tx) }, rx)
    }

    /// Sends an event; a renderer that went away is not an error.
    pub fn send(&self, event: Progress) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event);
        }
    }
}
