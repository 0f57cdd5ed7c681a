//! The fault catalogue shared by the simulator, the agents and scoring: what can be wrong
//! with a service (`shared/spec/scenario.md`, "Fault kinds").

use std::fmt;

use serde::{Deserialize, Serialize};

/// The fault catalogue of the scenario format: what can be wrong with a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    /// Every kind, in the catalogue's order.
    pub const ALL: [Self; 16] = [
        Self::BadDeploy,
        Self::ConfigChange,
        Self::MemoryLeak,
        Self::CpuSaturation,
        Self::DbPoolExhaustion,
        Self::SlowQuery,
        Self::DependencyLatency,
        Self::NetworkLoss,
        Self::DnsFailure,
        Self::CertExpired,
        Self::DiskFull,
        Self::NodeFailure,
        Self::TrafficSpike,
        Self::CacheFailure,
        Self::RateLimited,
        Self::QueueBacklog,
    ];

    /// The kind with catalogue name `name`, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in FaultKind::ALL {
            assert_eq!(FaultKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
        }
        assert_eq!(FaultKind::parse("bad-deploy"), None);
    }
}
