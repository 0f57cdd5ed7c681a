//! The `cairn` binary's library: command line, configuration and the front doors.
//!
//! `main.rs` only parses arguments and calls [`cli::run`]; everything here is testable
//! without a process. This crate is the only one that knows about the terminal, HTTP and
//! Slack; it drives `cairn-agents` and renders what they find.

pub mod cli;
pub mod config;
pub mod demo;
pub mod eval;
pub mod findings;
pub mod knowledge;
pub mod render;
pub mod serve;
pub mod simulate;
pub mod slack;
pub mod sources;
