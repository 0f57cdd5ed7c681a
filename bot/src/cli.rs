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
    /// Runbooks: import markdown runbooks into the database.
    Runbooks(RunbooksArgs),
    /// Institutional knowledge: search records, incidents and runbooks.
    Knowledge(KnowledgeArgs),
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
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub action: Option<EvalAction>,
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
    /// Measure learning: correct every case with its answer as an engineer would, then
    /// investigate each again with the other cases' knowledge, and (scenarios) a similar
    /// incident with another seed with all of it.
    #[arg(long)]
    pub learn: bool,
}

/// `cairn eval` subcommands.
#[derive(Debug, Subcommand)]
pub enum EvalAction {
    /// Write an incident's window as a bundle, with expect.yaml from its confirmed root
    /// cause: the team's own history becomes test cases.
    Export(ExportArgs),
}

/// Arguments of `cairn eval export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The incident's id (as in /api/incidents and the thread).
    #[arg(value_name = "INCIDENT_ID")]
    pub incident: i64,
    /// Directory to write the bundle into (created; must be empty if it exists).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Arguments of `cairn runbooks`.
#[derive(Debug, Args)]
pub struct RunbooksArgs {
    #[command(subcommand)]
    pub action: RunbooksAction,
}

/// `cairn runbooks` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunbooksAction {
    /// Load markdown runbooks (front matter: title, services, alerts, tags) from DIR;
    /// re-importing a file updates it and adds nothing.
    Import {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Arguments of `cairn knowledge`.
#[derive(Debug, Args)]
pub struct KnowledgeArgs {
    #[command(subcommand)]
    pub action: KnowledgeAction,
}

/// `cairn knowledge` subcommands.
#[derive(Debug, Subcommand)]
pub enum KnowledgeAction {
    /// Search knowledge records, incidents and runbooks: one result a line,
    /// `<type>\t<id>\t<title>`.
    Search {
        /// Words to look for.
        #[arg(
            value_name = "QUERY",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        query: Vec<String>,
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
        /// At most this many results.
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
    },
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
        Command::Runbooks(args) => match args.action {
            RunbooksAction::Import { dir } => import_runbooks(&config, &dir).await,
        },
        Command::Knowledge(args) => match args.action {
            KnowledgeAction::Search { query, json, limit } => {
                search(&config, &query.join(" "), json, limit).await
            }
        },
    }
}

async fn open_store(config: &Config) -> Result<cairn_knowledge::Store, CliError> {
    let store = cairn_knowledge::Store::connect(config.database_url.as_str())
        .await
        .map_err(|e| {
            CliError::Failed(format!(
                "cannot open the database (CAIRN_DATABASE_URL): {e}"
            ))
        })?;
    store
        .migrate()
        .await
        .map_err(|e| CliError::Failed(format!("migration failed: {e}")))?;
    Ok(store)
}

async fn import_runbooks(config: &Config, dir: &std::path::Path) -> Result<(), CliError> {
    if !dir.is_dir() {
        return Err(CliError::Usage(format!(
            "{} is not a directory; pass the directory that holds the markdown runbooks.",
            dir.display()
        )));
    }
    let store = open_store(config).await?;
    let report = store
        .import_runbooks(dir, chrono::Utc::now())
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    for skipped in &report.skipped {
        eprintln!("skipped {skipped}");
    }
    println!("runbooks: {report}");
    Ok(())
}

async fn search(config: &Config, query: &str, json: bool, limit: usize) -> Result<(), CliError> {
    let store = open_store(config).await?;
    let index = crate::knowledge::open_index(&config.data_dir, &store).await?;
    let hits = index
        .search(query, None, limit)
        .map_err(|e| CliError::Failed(format!("search failed: {e}")))?;
    if json {
        let out = serde_json::json!({"results": hits.iter().map(|h| serde_json::json!({
            "type": h.doc_type.as_str(), "id": h.id, "title": h.title, "excerpt": h.excerpt, "score": h.score,
        })).collect::<Vec<_>>()});
        println!("{out}");
    } else {
        for h in &hits {
            let title: String = h
                .title
                .chars()
                .map(|c| if c == '\t' || c == '\n' { ' ' } else { c })
                .collect();
            println!("{}\t{}\t{}", h.doc_type.as_str(), h.id, title);
        }
    }
    Ok(())
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
