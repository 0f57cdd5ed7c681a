//! Cairn's data sources.
//!
//! Every source of production data — a telemetry bundle today; Prometheus, Loki, Kubernetes
//! and GitHub later — implements one query interface, [`DataSource`]. The agents only ever
//! see that trait, so they cannot tell a bundle from a live system. [`SourceSet`] combines
//! several sources: every query goes to each source and the answers merge.
//!
//! Invariant: nothing in this crate opens a bundle's `expect.yaml`. The answer to an
//! incident is not data; only the scorer in `cairn-bot` reads it.

pub mod bundle;
pub mod fault;
pub mod github;
pub mod http;
pub mod kubernetes;
pub mod loki;
pub mod model;
pub mod pagerduty;
pub mod prometheus;
mod selector;
pub mod set;
pub mod source;
pub mod time;

pub use bundle::{capture, Bundle, BundleCounts, BundleError, BundleFiles, BundleMeta};
pub use fault::FaultKind;
pub use model::*;
pub use set::{SourceFailure, SourceSet};
pub use source::{DataSource, SourceError};
