//! `cairn eval`: investigate every bundle under a directory and score the rankings.
//!
//! Each case runs the same investigation `serve` runs, on the bundle as its data source
//! (plus any configured sources), concurrently with a bound. Only after a case's
//! investigation has finished does [`score`] read its answer.

pub mod export;
pub mod learn;
pub mod score;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use cairn_agents::{investigate_with, Finding, Incident, Verdict};
use cairn_connectors::{Bundle, DataSource, SourceSet, TimeWindow};
use cairn_simulator::Scenario;

use crate::cli::{CliError, EvalArgs};
use crate::config::Config;
use score::{Expected, ScoredCase, Summary};

/// One investigated case, as written to the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The bundle's directory name.
    pub case: String,
    /// The directory the bundle sits in, relative to the evaluated root (`.` at the root).
    pub group: String,
    pub ranking: Vec<RankedService>,
    pub elapsed_ms: u64,
    /// Queries the investigation sent to its sources (each goes to every source that can
    /// answer it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queries: Option<usize>,
    pub verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
    /// Rank of the expected root-cause service, when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One entry of a case's ranking.
#[derive(Debug, Clone, Serialize)]
pub struct RankedService {
    pub service: String,
    pub kind: String,
    pub confidence: f64,
    /// The distinct domains of the evidence behind it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// The evidence behind it, one line each (`domain/signal: reason`), strongest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cases: Vec<CaseResult>,
    pub summary: Summary,
    /// The same summary per group (e.g. per dataset).
    pub groups: BTreeMap<String, Summary>,
}

/// One case to evaluate: a bundle directory, or a scenario file simulated in memory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Case {
    Bundle(PathBuf),
    Scenario(PathBuf),
}

impl Case {
    fn path(&self) -> &Path {
        match self {
            Case::Bundle(p) | Case::Scenario(p) => p,
        }
    }

    /// The case's name: the bundle's directory name or the scenario file's stem.
    fn name(&self) -> String {
        let path = self.path();
        let name = match self {
            Case::Bundle(_) => path.file_name(),
            Case::Scenario(_) => path.file_stem(),
        };
        name.map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

/// Runs `cairn eval`.
pub async fn run(config: &Config, args: &EvalArgs) -> Result<(), CliError> {
    if let Some(crate::cli::EvalAction::Export(export)) = &args.action {
        return export::run(config, export).await;
    }
    let (root, cases) = match (&args.bundles, &args.scenarios) {
        (Some(root), None) => {
            if !root.is_dir() {
                return Err(CliError::Usage(format!(
                    "--bundles {} is not a directory; pass the directory that holds the bundles.",
                    root.display()
                )));
            }
            let found: Vec<Case> = discover(root).into_iter().map(Case::Bundle).collect();
            if found.is_empty() {
                return Err(CliError::Usage(format!(
                    "no bundles under {} (a bundle is a directory with a bundle.yaml).",
                    root.display()
                )));
            }
            (root, found)
        }
        (None, Some(root)) => {
            if !root.is_dir() {
                return Err(CliError::Usage(format!(
                    "--scenarios {} is not a directory; pass the directory that holds the scenario files.",
                    root.display()
                )));
            }
            let found: Vec<Case> = discover_scenarios(root)
                .into_iter()
                .map(Case::Scenario)
                .collect();
            if found.is_empty() {
                return Err(CliError::Usage(format!(
                    "no scenario files (*.yaml, *.yml) under {}.",
                    root.display()
                )));
            }
            (root, found)
        }
        _ => {
            return Err(CliError::Usage(
                "pass exactly one of --bundles DIR or --scenarios DIR.".to_owned(),
            ))
        }
    };
    let bundles = cases;
    let extra = crate::sources::build(config).await?;
    let jobs = args
        .jobs
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));

    let started = Instant::now();
    if args.learn {
        let report = learn::evaluate(&bundles, &extra, jobs).await?;
        print!("{}", learn::render(&report));
        eprintln!(
            "{} cases in {:.1} s ({} at a time)",
            report.cases.len(),
            started.elapsed().as_secs_f64(),
            jobs
        );
        if let Some(path) = &args.json {
            write_json(path, &report)?;
        }
        return Ok(());
    }
    let report = evaluate(root, &bundles, &extra, jobs).await;
    print_table(&report);
    eprintln!(
        "{} cases in {:.1} s ({} at a time)",
        report.cases.len(),
        started.elapsed().as_secs_f64(),
        jobs
    );
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    match report.summary.errors {
        0 => Ok(()),
        n => Err(CliError::Failed(format!(
            "{n} of {} cases could not be investigated (see the table).",
            report.cases.len()
        ))),
    }
}

/// Writes a report as pretty JSON to `path`.
fn write_json(path: &Path, report: &impl Serialize) -> Result<(), CliError> {
    let json = serde_json::to_vec_pretty(report)
        .map_err(|e| CliError::Failed(format!("cannot encode the report: {e}")))?;
    std::fs::write(path, json)
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))
}

/// Every scenario file (`*.yaml`, `*.yml`) under `root`, sorted by path.
pub fn discover_scenarios(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every bundle directory under `root` (or `root` itself), sorted by path.
pub fn discover(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        if is_bundle(&dir) {
            found.push(dir);
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

fn is_bundle(dir: &Path) -> bool {
    dir.join("bundle.yaml").is_file() || dir.join("bundle.yaml.gz").is_file()
}

/// Investigates and scores every bundle, `jobs` at a time.
pub async fn evaluate(
    root: &Path,
    bundles: &[Case],
    extra: &[Arc<dyn DataSource>],
    jobs: usize,
) -> Report {
    let progress = progress_bar(bundles.len() as u64);
    let mut cases: Vec<CaseResult> = stream::iter(bundles.iter().cloned())
        .map(|dir| {
            let progress = progress.clone();
            async move {
                let result = evaluate_case(root, dir, extra).await;
                progress.set_message(result.case.clone());
                progress.inc(1);
                result
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    progress.finish_and_clear();
    cases.sort_by(|a, b| (&a.group, &a.case).cmp(&(&b.group, &b.case)));

    let scored: Vec<(String, ScoredCase)> = cases
        .iter()
        .map(|c| {
            let abstained = c
                .ranking
                .first()
                .is_none_or(|r| r.confidence < cairn_agents::investigation::CONFIDENCE_THRESHOLD);
            (
                c.group.clone(),
                ScoredCase {
                    expected: c.expected.clone(),
                    hit: c.hit,
                    abstained,
                    failed: c.error.is_some(),
                },
            )
        })
        .collect();
    let summary = score::summarize(scored.iter().map(|(_, s)| s));
    let mut groups: BTreeMap<String, Vec<&ScoredCase>> = BTreeMap::new();
    for (group, s) in &scored {
        groups.entry(group.clone()).or_default().push(s);
    }
    let groups = groups
        .into_iter()
        .map(|(g, s)| (g, score::summarize(s)))
        .collect();
    Report {
        cases,
        summary,
        groups,
    }
}

async fn evaluate_case(root: &Path, case_def: Case, extra: &[Arc<dyn DataSource>]) -> CaseResult {
    let case = case_def.name();
    let dir = case_def.path().to_owned();
    let group = dir
        .parent()
        .and_then(|p| p.strip_prefix(root).ok())
        .map(|p| p.display().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| ".".into());
    let started = Instant::now();
    let (outcome, expected) = match &case_def {
        Case::Bundle(dir) => {
            let outcome = investigate_bundle(dir, extra).await;
            // The investigation is over; only now is the answer read.
            (outcome, score::read_expected(dir))
        }
        Case::Scenario(path) => match simulate_scenario(path.clone(), 0).await {
            Ok((bundle, expect_text)) => {
                let outcome = investigate_opened(bundle, extra, Arc::default()).await;
                let shown = format!("{} (expect)", path.display());
                (
                    outcome,
                    expect_text
                        .map(|t| score::parse_expected(&t, &shown))
                        .transpose(),
                )
            }
            Err(e) => (Err(e), Ok(None)),
        },
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let mut result = CaseResult {
        case,
        group,
        ranking: Vec::new(),
        elapsed_ms,
        queries: None,
        verdict: None,
        expected: None,
        hit: None,
        error: None,
    };
    match outcome {
        Ok(finding) => {
            result.verdict = Some(finding.verdict);
            result.queries = Some(finding.queries);
            result.ranking = finding
                .ranking
                .iter()
                .map(|h| RankedService {
                    service: h.service.clone(),
                    kind: h
                        .kind
                        .map_or_else(|| "unknown".to_owned(), |k| k.as_str().to_owned()),
                    confidence: (h.confidence.get() * 1000.0).round() / 1000.0,
                    domains: h.domains().iter().map(|d| d.as_str().to_owned()).collect(),
                    evidence: h
                        .supporting
                        .iter()
                        .map(|e| {
                            format!(
                                "{}/{:?} {:.2}: {}",
                                e.domain.as_str(),
                                e.signal,
                                e.score,
                                e.reason
                            )
                        })
                        .chain(
                            h.contradicting
                                .iter()
                                .map(|e| format!("against: {}", e.reason)),
                        )
                        .collect(),
                })
                .collect();
        }
        Err(e) => result.error = Some(e.to_string()),
    }
    match expected {
        Ok(expected) => {
            if let Some(Expected::RootCause { service, .. }) = &expected {
                let services: Vec<&str> =
                    result.ranking.iter().map(|r| r.service.as_str()).collect();
                result.hit = score::rank_of(&services, service);
            }
            result.expected = expected;
        }
        Err(e) => {
            result.error = Some(
                result
                    .error
                    .map_or(e.clone(), |prev| format!("{prev}; {e}")),
            )
        }
    }
    result
}

/// Simulates a scenario in memory; returns its bundle and the text of its `expect.yaml`,
/// which stays with the scorer.
/// `reseed` is added to the scenario's seed (0: as written).
async fn simulate_scenario(
    path: PathBuf,
    reseed: u64,
) -> Result<(Bundle, Option<String>), CliError> {
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || {
        let mut scenario = Scenario::load(&path).map_err(|e| CliError::Failed(e.to_string()))?;
        scenario.seed = scenario.seed.wrapping_add(reseed);
        let simulation = cairn_simulator::simulate(&scenario)
            .map_err(|e| CliError::Failed(format!("{shown}: {e}")))?;
        for warning in &simulation.warnings {
            eprintln!("warning: {shown}: {warning}");
        }
        let expect = simulation
            .files
            .get(score::EXPECT_FILE)
            .map(|b| String::from_utf8_lossy(b).into_owned());
        let bundle = Bundle::from_files(&simulation.files)
            .map_err(|e| CliError::Failed(format!("{shown}: simulated bundle: {e}")))?;
        Ok((bundle, expect))
    })
    .await
    .map_err(|e| CliError::Failed(format!("simulating {} stopped: {e}", "scenario")))?
}

/// Opens the bundle, combines it with the extra sources and investigates its page.
async fn investigate_bundle(
    dir: &Path,
    extra: &[Arc<dyn DataSource>],
) -> Result<Finding, CliError> {
    let bundle = crate::sources::open_bundle(dir.to_owned()).await?;
    investigate_opened(bundle, extra, Arc::default()).await
}

/// Investigates the page of an opened bundle, with the extra sources alongside and what
/// past incidents taught (`precedents`).
async fn investigate_opened(
    bundle: Bundle,
    extra: &[Arc<dyn DataSource>],
    precedents: Arc<Vec<cairn_agents::PastCase>>,
) -> Result<Finding, CliError> {
    let window = bundle.meta().window;
    let incident = match bundle.alert() {
        Some(alert) => Incident::from_alert(alert, window),
        None => Incident {
            title: bundle.meta().name.clone(),
            onset: default_onset(window),
            window,
            entry_service: None,
        },
    };
    let mut sources: Vec<Arc<dyn DataSource>> = vec![Arc::new(bundle)];
    sources.extend(extra.iter().cloned());
    let set = SourceSet::new(sources);
    let options = cairn_agents::Options {
        precedents,
        ..cairn_agents::Options::default()
    };
    let finding = investigate_with(&incident, &set, options)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    for unreadable in set.unreadable() {
        tracing::warn!(case = %incident.title, "investigated without a source: {unreadable}");
    }
    Ok(finding)
}

/// Without a page, assume the trouble began three quarters into the window: bundles are
/// cut with most of their span as history before the incident.
fn default_onset(window: TimeWindow) -> chrono::DateTime<chrono::Utc> {
    window.start + (window.end - window.start) * 3 / 4
}

pub(crate) fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {wide_msg}")
    {
        bar.set_style(style);
    }
    bar
}

fn fmt_ratio(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"))
}

/// Prints the per-case table and the summaries to stdout.
pub fn print_table(report: &Report) {
    print!("{}", render_table(report));
}

/// The per-case table and summaries as text.
pub fn render_table(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let width = report
        .cases
        .iter()
        .map(|c| c.case.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let expected_width = report
        .cases
        .iter()
        .map(|c| expected_label(c).len())
        .max()
        .unwrap_or(8)
        .max(8);
    let _ = writeln!(
        out,
        "{:<width$}  {:<expected_width$}  {:>4}  {:>7}  top 3",
        "case", "expected", "rank", "ms"
    );
    for c in &report.cases {
        let rank = match (&c.expected, c.hit, &c.error) {
            (_, _, Some(_)) => "err".to_owned(),
            (Some(Expected::RootCause { .. }), Some(r), _) => r.to_string(),
            (Some(Expected::RootCause { .. }), None, _) => "-".to_owned(),
            (Some(Expected::NoIssue), _, _) => {
                if c.verdict == Some(Verdict::NoRootCauseFound) {
                    "ok".to_owned()
                } else {
                    "FP".to_owned()
                }
            }
            (None, _, _) => "".to_owned(),
        };
        let top: Vec<String> = c
            .ranking
            .iter()
            .take(3)
            .map(|r| format!("{} {:.2}", r.service, r.confidence))
            .collect();
        let tail = c.error.clone().unwrap_or_else(|| top.join(", "));
        let _ = writeln!(
            out,
            "{:<width$}  {:<expected_width$}  {:>4}  {:>7}  {}",
            c.case,
            expected_label(c),
            rank,
            c.elapsed_ms,
            tail
        );
    }
    let _ = writeln!(out);
    let gw = report
        .groups
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(3)
        .max(5);
    let _ = writeln!(
        out,
        "{:<gw$}  {:>5}  {:>5}  {:>5}  {:>5}  {:>5}  {:>11}",
        "group", "cases", "AC@1", "AC@3", "AC@5", "Avg@5", "no-issue ok"
    );
    let mut line = |name: &str, s: &Summary| {
        let spec = if s.no_issue_cases > 0 {
            format!("{}/{}", s.no_issue_abstained, s.no_issue_cases)
        } else {
            "–".into()
        };
        let _ = writeln!(
            out,
            "{:<gw$}  {:>5}  {:>5}  {:>5}  {:>5}  {:>5}  {:>11}",
            name,
            s.cases,
            fmt_ratio(s.ac1),
            fmt_ratio(s.ac3),
            fmt_ratio(s.ac5),
            fmt_ratio(s.avg5),
            spec
        );
    };
    if report.groups.len() > 1 {
        for (name, s) in &report.groups {
            line(name, s);
        }
    }
    line("all", &report.summary);
    out
}

fn expected_label(c: &CaseResult) -> String {
    match &c.expected {
        Some(Expected::RootCause { service, .. }) => service.clone(),
        Some(Expected::NoIssue) => "(no issue)".to_owned(),
        None => "?".to_owned(),
    }
}
