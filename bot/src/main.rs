//! `cairn`: an AI production engineer that lives in Slack.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // One TLS stack for every client in the process (database, HTTP); installing it before
    // anything connects avoids rustls picking, or panicking between, providers at runtime.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = cairn_bot::cli::Cli::parse();
    cairn_bot::cli::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cairn_bot::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
