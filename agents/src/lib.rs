//! Cairn's investigation: given an incident and the data sources, find what caused it.
//!
//! The agents see production only through [`cairn_connectors::DataSource`]; they never know
//! whether it is a bundle or a live system, and never see the expected answer of a case.
//! This crate knows nothing about Slack, HTTP or the terminal: callers render a [`Finding`].

pub mod evidence;
pub mod hypothesis;
pub mod incident;
pub mod investigation;
pub mod metrics;
pub mod stats;

pub use evidence::{Domain, Evidence};
pub use hypothesis::{Confidence, FaultKind, Hypothesis};
pub use incident::Incident;
pub use investigation::{investigate, Finding, InvestigationError, Verdict};
