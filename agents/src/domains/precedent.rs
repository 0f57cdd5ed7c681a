//! Precedent: past incidents and recorded knowledge that resemble this one.
//!
//! Not wired yet: institutional knowledge arrives with the knowledge issue. Until then this
//! agent finds nothing and says so in the progress stream, rather than pretending.

use async_trait::async_trait;

use cairn_connectors::SourceError;

use super::{Agent, Context};
use crate::evidence::Evidence;

pub struct Precedent;

#[async_trait]
impl Agent for Precedent {
    fn name(&self) -> &'static str {
        "precedent"
    }

    async fn survey(&self, _cx: &Context<'_>) -> Result<Vec<Evidence>, SourceError> {
        Ok(Vec::new())
    }
}
