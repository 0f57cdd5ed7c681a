//! Slack: request signatures, text that is safe to post, and the thread's Block Kit messages.

pub mod blocks;
pub mod command;
pub mod signature;
pub mod text;
