//! Cairn's investigation: given an incident and the data sources, find what caused it.
//!
//! An orchestrator ([`investigate_with`]) sends domain agents ([`domains`]) over the sources
//! at once, within a [`Budget`]; they write typed [`Evidence`] to one ledger; hypotheses are
//! ranked from it and tested in later rounds; progress streams out as [`Progress`] events.
//! Past incidents engineers settled ([`PastCase`]) weigh in when their symptoms' fingerprint
//! resembles this one's; every [`Finding`] carries its own fingerprint for the next time.
//! The agents see production only through [`cairn_connectors::DataSource`]; they never know
//! whether it is a bundle or a live system, and never see the expected answer of a case.
//! This crate knows nothing about Slack, HTTP or the terminal: callers render a [`Finding`].

pub mod budget;
pub mod correction;
pub mod domains;
pub mod evidence;
pub mod hypothesis;
pub mod incident;
pub mod investigation;
pub mod progress;
pub mod signals;
pub mod stats;

pub use budget::Budget;
pub use domains::precedent::{fingerprint, recall, PastCase, RecordKind, SIMILARITY_THRESHOLD};
pub use evidence::{Domain, Evidence, Ledger, Signal, Stance};
pub use hypothesis::{Confidence, FaultKind, Hypothesis, HypothesisStatus};
pub use incident::Incident;
pub use investigation::{
    investigate, investigate_with, Finding, InvestigationError, Options, Verdict,
};
pub use progress::{Progress, ProgressSink};
