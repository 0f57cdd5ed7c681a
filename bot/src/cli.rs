//! The command line: one closed enum of commands, each a thin call into the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::eval;

/// Cairn: an AI production engineer that lives in Slack.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, propagate_version = true)]
#[command(about = "Cairn: an AI production engineer that lives in Slack.")]
pub struct Cli {
    /// Configuration file (TOML); default ./cairn.toml when present. Environment variables
    /// (CAIRN_*) override it.
    #[arg(long, global = true, env = "CAIRN_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// What `cairn` can do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a simulated incident end to end: the page, the live investigation and the thread
    /// as Slack would show it. Offline: no accounts, no network, no model.
    Demo(DemoArgs),
    /// Run the bot: HTTP endpoints for Slack and pages, workers, the Slack outbox.
    Serve,
    /// Apply database migrations to CAIRN_DATABASE_URL.
    Migrate,
    /// Investigate every telemetry bundle (or simulated scenario) under a directory and
    /// score the rankings.
    Eval(EvalArgs),
    /// Write the telemetry bundle a scenario file produces.
    Simulate(SimulateArgs),
}

/// Arguments of `cairn demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// A built-in scenario name (see scenarios/) or a scenario file; default
    /// shop-checkout-bad-deploy.
    #[arg(long, value_name = "NAME")]
    pub scenario: Option<String>,
    /// No colour (also the default when output is not a terminal).
    #[arg(long)]
    pub plain: bool,
}

/// Arguments of `cairn simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Scenario file (scenario format v1).
    #[arg(long, value_name = "FILE")]
    pub scenario: PathBuf,
    /// Directory to write the bundle into (created if missing; must be empty if it exists).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Arguments of `cairn eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Directory holding telemetry bundles (searched recursively).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "scenarios",
        conflicts_with = "scenarios"
    )]
    pub bundles: Option<PathBuf>,
    /// Directory holding scenario files (searched recursively); each is simulated in
    /// memory, investigated and scored against its `expect`.
    #[arg(long, value_name = "DIR")]
    pub scenarios: Option<PathBuf>,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Investigations to run at once (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
}

/// A failed command, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad usage: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// Bad configuration: exit code 2.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The command ran and failed: exit code 1.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// The process exit code: 2 for usage and configuration, 1 for failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Config(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

/// Sets up `tracing` from `RUST_LOG` (default `info`), logging to stderr.
pub fn init_tracing() {
    // By default the migration runner's and the SQL driver's per-step chatter stays out:
    // `cairn migrate` prints its own one-line report.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sea_orm_migration=warn,sqlx=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Runs one command to completion.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Demo(args) = &cli.command {
        // The demo needs no configuration: it runs the same anywhere.
        return crate::demo::run(args).await;
    }
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Demo(_) => unreachable!("handled above"),
        Command::Serve => crate::serve::run(&config).await,
        Command::Migrate => migrate(&config).await,
        Command::Eval(args) => eval::run(&config, &args).await,
        Command::Simulate(args) => crate::simulate::run(&args),
    }
}

async fn migrate(config: &Config) -> Result<(), CliError> {
    let url = config.database_url.as_str();
    let store = cairn_knowledge::Store::connect(url)
        .await
        .map_err(|e| CliError::Failed(format!("cannot open the database: {e}")))?;
    let report = store
        .migrate()
        .await
        .map_err(|e| CliError::Failed(format!("migration failed: {e}")))?;
    println!("{report}");
    Ok(())
}
