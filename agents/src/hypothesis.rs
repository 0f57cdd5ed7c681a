//! Hypotheses: a suspected root cause with the evidence for it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::evidence::Evidence;

/// A confidence in `[0, 1]`; constructed only through [`Confidence::new`], which clamps.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Confidence(f64);

impl Confidence {
    /// Clamps `value` into `[0, 1]`; NaN becomes 0.
    pub fn new(value: f64) -> Self {
        Self(if value.is_nan() { 0.0 } else { value.clamp(0.0, 1.0) })
    }

    /// The value in `[0, 1]`.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.0}%", self.0 * 100.0)
    }
}

/// The fault catalogue of the scenario format: what can be wrong with a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    BadDeploy,
    ConfigChange,
    MemoryLeak,
    CpuSaturation,
    DbPoolExhaustion,
    SlowQuery,
    DependencyLatency,
    NetworkLoss,
    DnsFailure,
    CertExpired,
    DiskFull,
    NodeFailure,
    TrafficSpike,
    CacheFailure,
    RateLimited,
    QueueBacklog,
}

impl FaultKind {
    /// The catalogue name (`bad_deploy`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadDeploy => "bad_deploy",
            Self::ConfigChange => "config_change",
            Self::MemoryLeak => "memory_leak",
            Self::CpuSaturation => "cpu_saturation",
            Self::DbPoolExhaustion => "db_pool_exhaustion",
            Self::SlowQuery => "slow_query",
            Self::DependencyLatency => "dependency_latency",
            Self::NetworkLoss => "network_loss",
            Self::DnsFailure => "dns_failure",
            Self::CertExpired => "cert_expired",
            Self::DiskFull => "disk_full",
            Self::NodeFailure => "node_failure",
            Self::TrafficSpike => "traffic_spike",
            Self::CacheFailure => "cache_failure",
            Self::RateLimited => "rate_limited",
            Self::QueueBacklog => "queue_backlog",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A suspected root cause: a service, what may be wrong with it, and why we think so.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hypothesis {
    pub service: String,
    /// The fault kind, when the evidence says which; `None` means "something is wrong here".
    pub kind: Option<FaultKind>,
    pub confidence: Confidence,
    /// Evidence for the hypothesis, strongest first.
    pub supporting: Vec<Evidence>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_clamps() {
        assert_eq!(Confidence::new(1.7).get(), 1.0);
        assert_eq!(Confidence::new(-0.2).get(), 0.0);
        assert_eq!(Confidence::new(f64::NAN).get(), 0.0);
        assert_eq!(Confidence::new(0.42).to_string(), "42%");
    }
}
