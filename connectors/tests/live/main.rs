//! The live sources against faithful fakes of their documented HTTP APIs, one module per
//! source kind. One test binary rather than six: each would link the whole crate and its
//! Kubernetes client again, which is most of their build time.

mod github;
mod http;
mod kubernetes;
mod loki;
mod pagerduty;
mod prometheus;
