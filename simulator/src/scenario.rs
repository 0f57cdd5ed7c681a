//! Scenario format v1 (`shared/spec/scenario.md`): parsed strictly into types where invalid
//! states do not exist.
//!
//! The YAML is read into a generic tree first and walked by hand, so that every error can
//! name the key path (`faults[0].params.error_rate`) and what was expected there, and so
//! that an unknown key — usually a typo — is an error rather than a silent default.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use cairn_connectors::FaultKind;
use serde_yaml_ng::{Mapping, Value};

/// Why a scenario was refused: the file, where in it, and what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ScenarioError {
    /// The scenario file as the user named it.
    pub file: String,
    /// The key path (`topology[2].depends_on[0]`); empty for the document as a whole.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// What a topology entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeKind {
    Gateway,
    Service,
    Database,
    Cache,
    Queue,
    External,
}

impl NodeKind {
    const ALL: [Self; 6] = [
        Self::Gateway,
        Self::Service,
        Self::Database,
        Self::Cache,
        Self::Queue,
        Self::External,
    ];

    /// The name the format uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Service => "service",
            Self::Database => "database",
            Self::Cache => "cache",
            Self::Queue => "queue",
            Self::External => "external",
        }
    }
}

/// One service of the simulated production.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    /// What it calls (and, for queues, produces to or consumes from).
    pub depends_on: Vec<String>,
    /// The queues among `depends_on` it consumes from rather than produces to.
    pub consumes: Vec<String>,
}

/// Entry load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Mean total requests per second into the gateways.
    pub rps: f64,
    /// Amplitude of the 24-hour swing, in `[0, 1]`.
    pub diurnal: f64,
}

/// A scalar parameter of a fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Number(n) => write!(f, "{n}"),
            Param::Text(t) => f.write_str(t),
            Param::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Something that goes wrong: the fault under test, or (scaled by severity) noise.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub target: String,
    /// Seconds from the window's start.
    pub at: u64,
    /// Seconds it lasts; `None` means to the end of the window.
    pub duration: Option<u64>,
    pub params: BTreeMap<String, Param>,
    /// Share of the kind's default effect: 1 for faults, the noise's `severity` for noise.
    pub severity: f64,
}

/// Something that happens and is not the cause.
#[derive(Debug, Clone, PartialEq)]
pub enum Noise {
    /// A harmless change event.
    Deploy { target: String, at: u64 },
    /// A fault kind, weakened to `severity` (and usually short).
    Fault(Fault),
}

/// The signal an alert rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    ErrorRate,
    LatencyP99,
    Saturation,
    Availability,
    ConsumerLag,
}

impl Signal {
    const ALL: [Self; 5] = [
        Self::ErrorRate,
        Self::LatencyP99,
        Self::Saturation,
        Self::Availability,
        Self::ConsumerLag,
    ];

    /// The name the format uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ErrorRate => "error_rate",
            Self::LatencyP99 => "latency_p99",
            Self::Saturation => "saturation",
            Self::Availability => "availability",
            Self::ConsumerLag => "consumer_lag",
        }
    }
}

/// The rule that pages.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub service: String,
    pub signal: Signal,
    /// In the signal's unit (ratio, milliseconds or messages).
    pub threshold: f64,
    /// Seconds the condition must hold before the rule fires.
    pub for_s: u64,
    /// A mis-tuned rule: fires at this offset whatever the signal shows.
    pub at: Option<u64>,
}

/// The right answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    RootCause {
        service: String,
        kind: Option<FaultKind>,
    },
    NoIssue,
}

/// A parsed, validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    /// Seconds.
    pub duration: u64,
    /// Seconds between metric samples.
    pub step: u64,
    pub topology: Vec<Node>,
    pub load: Load,
    pub faults: Vec<Fault>,
    pub noise: Vec<Noise>,
    pub alert: AlertRule,
    pub expect: Expect,
}

impl Scenario {
    /// Reads and validates the scenario file at `path`.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: file.clone(),
            path: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file)
    }

    /// Parses and validates scenario text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ScenarioError> {
        let ctx = Ctx { file };
        let root: Value = serde_yaml_ng::from_str(text).map_err(|e| {
            let message = match e.location() {
                Some(at) => format!("line {}: not valid YAML: {e}", at.line()),
                None => format!("not valid YAML: {e}"),
            };
            ctx.err("", message)
        })?;
        let scenario = ctx.scenario(&root)?;
        ctx.validate(&scenario)?;
        Ok(scenario)
    }

    /// The topology entry called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.topology.iter().find(|n| n.name == name)
    }
}

/// Parses a duration: a positive integer and one of `s`, `m`, `h`; returns seconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    let unit = match text.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    (n > 0).then_some(n)?.checked_mul(unit)
}

/// Shows seconds the way a scenario writes them (`90m`, `15s`, `2h`).
pub fn format_duration(seconds: u64) -> String {
    if seconds > 0 && seconds.is_multiple_of(3600) {
        format!("{}h", seconds / 3600)
    } else if seconds > 0 && seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

struct Ctx<'f> {
    file: &'f str,
}

/// A mapping being read: keys are taken one by one, and what is left at the end is unknown.
struct Fields<'v> {
    path: String,
    map: &'v Mapping,
    taken: BTreeSet<String>,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

impl Ctx<'_> {
    fn err(&self, path: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.to_owned(),
            path: path.to_owned(),
            message: message.into(),
        }
    }

    /// Starts reading a mapping; a key outside `allowed` is an error before anything else,
    /// so a typo is reported as a typo rather than as the key it meant going missing.
    fn fields<'v>(
        &self,
        value: &'v Value,
        path: &str,
        allowed: &[&str],
    ) -> Result<Fields<'v>, ScenarioError> {
        match value {
            Value::Mapping(map) => {
                let fields = Fields {
                    path: path.to_owned(),
                    map,
                    taken: allowed.iter().map(|a| (*a).to_owned()).collect(),
                };
                self.finish(&fields, allowed)?;
                Ok(Fields {
                    taken: BTreeSet::new(),
                    ..fields
                })
            }
            other => Err(self.err(
                path,
                format!("expected a mapping of keys, found {}", describe(other)),
            )),
        }
    }

    fn finish(&self, fields: &Fields<'_>, allowed: &[&str]) -> Result<(), ScenarioError> {
        for key in fields.map.keys() {
            let name = match key {
                Value::String(s) => s.clone(),
                other => {
                    return Err(self.err(
                        &fields.path,
                        format!("keys must be text, found {}", describe(other)),
                    ))
                }
            };
            if !fields.taken.contains(&name) {
                let mut message = format!(
                    "unknown key `{name}`; expected one of: {}",
                    allowed.join(", ")
                );
                if let Some(close) = allowed.iter().find(|a| similar(a, &name)) {
                    message = format!(
                        "unknown key `{name}` (did you mean `{close}`?); expected one of: {}",
                        allowed.join(", ")
                    );
                }
                return Err(self.err(&child(&fields.path, &name), message));
            }
        }
        Ok(())
    }

    fn required<'v>(
        &self,
        f: &mut Fields<'v>,
        key: &str,
    ) -> Result<(&'v Value, String), ScenarioError> {
        self.optional(f, key)?
            .ok_or_else(|| self.err(&child(&f.path, key), "required key is missing"))
    }

    fn optional<'v>(
        &self,
        f: &mut Fields<'v>,
        key: &str,
    ) -> Result<Option<(&'v Value, String)>, ScenarioError> {
        f.taken.insert(key.to_owned());
        Ok(f.map
            .get(key)
            .filter(|v| !v.is_null())
            .map(|v| (v, child(&f.path, key))))
    }

    fn text(&self, (value, path): (&Value, String)) -> Result<String, ScenarioError> {
        match value {
            Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
            Value::String(_) => Err(self.err(&path, "expected non-empty text")),
            other => Err(self.err(&path, format!("expected text, found {}", describe(other)))),
        }
    }

    fn number(&self, (value, path): (&Value, String)) -> Result<f64, ScenarioError> {
        match value.as_f64() {
            Some(n) if n.is_finite() => Ok(n),
            _ => Err(self.err(
                &path,
                format!("expected a number, found {}", describe(value)),
            )),
        }
    }

    /// A number from 0 to 1, or `default` when absent.
    fn share(&self, entry: Option<(&Value, String)>, default: f64) -> Result<f64, ScenarioError> {
        let Some(entry) = entry else {
            return Ok(default);
        };
        let path = entry.1.clone();
        let n = self.number(entry)?;
        if (0.0..=1.0).contains(&n) {
            Ok(n)
        } else {
            Err(self.err(&path, "expected a number from 0 to 1"))
        }
    }

    fn duration(&self, (value, path): (&Value, String)) -> Result<u64, ScenarioError> {
        let expected =
            "expected a duration: a positive integer followed by s, m or h (like 90s, 15m, 2h)";
        match value {
            Value::String(s) => parse_duration(s.trim())
                .ok_or_else(|| self.err(&path, format!("`{s}` is not a duration; {expected}"))),
            other => Err(self.err(&path, format!("found {}; {expected}", describe(other)))),
        }
    }

    fn list<'v>(
        &self,
        (value, path): (&'v Value, String),
    ) -> Result<Vec<(&'v Value, String)>, ScenarioError> {
        match value {
            Value::Sequence(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| (v, format!("{path}[{i}]")))
                .collect()),
            other => Err(self.err(&path, format!("expected a list, found {}", describe(other)))),
        }
    }

    fn names(&self, entry: Option<(&Value, String)>) -> Result<Vec<String>, ScenarioError> {
        match entry {
            None => Ok(Vec::new()),
            Some(entry) => self
                .list(entry)?
                .into_iter()
                .map(|e| self.text(e))
                .collect(),
        }
    }

    fn fault_kind(&self, entry: (&Value, String)) -> Result<FaultKind, ScenarioError> {
        let path = entry.1.clone();
        let name = self.text(entry)?;
        FaultKind::parse(&name).ok_or_else(|| {
            let all: Vec<_> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
            self.err(
                &path,
                format!(
                    "unknown fault kind `{name}`; expected one of: {}",
                    all.join(", ")
                ),
            )
        })
    }

    fn scenario(&self, root: &Value) -> Result<Scenario, ScenarioError> {
        let mut f = self.fields(
            root,
            "",
            &[
                "version", "name", "seed", "duration", "step", "topology", "load", "faults",
                "noise", "alert", "expect",
            ],
        )?;
        let version_entry = self.required(&mut f, "version")?;
        let version = self.number(version_entry.clone())?;
        if version != 1.0 {
            return Err(self.err(
                "version",
                format!("scenario format version {version} is not supported; expected 1"),
            ));
        }
        let name = self.text(self.required(&mut f, "name")?)?;
        let seed_entry = self.required(&mut f, "seed")?;
        let seed = match seed_entry.0.as_u64() {
            Some(seed) => seed,
            None => {
                return Err(self.err(
                    &seed_entry.1,
                    format!(
                        "expected a non-negative integer, found {}",
                        describe(seed_entry.0)
                    ),
                ))
            }
        };
        let duration = self.duration(self.required(&mut f, "duration")?)?;
        let step_entry = self.required(&mut f, "step")?;
        let step_path = step_entry.1.clone();
        let step = self.duration(step_entry)?;
        if duration % step != 0 {
            return Err(self.err(
                &step_path,
                format!(
                    "the step ({}) must divide the duration ({})",
                    format_duration(step),
                    format_duration(duration)
                ),
            ));
        }
        let topology = self
            .list(self.required(&mut f, "topology")?)?
            .into_iter()
            .map(|entry| self.node(entry))
            .collect::<Result<Vec<_>, _>>()?;
        let load = self.load(self.required(&mut f, "load")?)?;
        let faults = match self.optional(&mut f, "faults")? {
            Some(entry) => self
                .list(entry)?
                .into_iter()
                .map(|e| self.fault(e, duration))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let noise = match self.optional(&mut f, "noise")? {
            Some(entry) => self
                .list(entry)?
                .into_iter()
                .map(|e| self.noise(e, duration))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let alert = self.alert(self.required(&mut f, "alert")?, duration)?;
        let expect = self.expect(self.required(&mut f, "expect")?)?;
        Ok(Scenario {
            name,
            seed,
            duration,
            step,
            topology,
            load,
            faults,
            noise,
            alert,
            expect,
        })
    }

    fn node(&self, (value, path): (&Value, String)) -> Result<Node, ScenarioError> {
        let mut f = self.fields(value, &path, &["name", "kind", "depends_on", "consumes"])?;
        let name = self.text(self.required(&mut f, "name")?)?;
        let kind = match self.optional(&mut f, "kind")? {
            None => NodeKind::Service,
            Some(entry) => {
                let path = entry.1.clone();
                let text = self.text(entry)?;
                NodeKind::ALL.into_iter().find(|k| k.as_str() == text).ok_or_else(|| {
                    self.err(&path, format!("unknown kind `{text}`; expected one of: gateway, service, database, cache, queue, external"))
                })?
            }
        };
        let depends_on = self.names(self.optional(&mut f, "depends_on")?)?;
        let consumes = self.names(self.optional(&mut f, "consumes")?)?;
        Ok(Node {
            name,
            kind,
            depends_on,
            consumes,
        })
    }

    fn load(&self, (value, path): (&Value, String)) -> Result<Load, ScenarioError> {
        let mut f = self.fields(value, &path, &["rps", "diurnal"])?;
        let rps_entry = self.required(&mut f, "rps")?;
        let rps_path = rps_entry.1.clone();
        let rps = self.number(rps_entry)?;
        if rps <= 0.0 {
            return Err(self.err(&rps_path, "expected a positive request rate"));
        }
        let diurnal = self.share(self.optional(&mut f, "diurnal")?, 0.0)?;
        Ok(Load { rps, diurnal })
    }

    fn window_checks(
        &self,
        path: &str,
        at: u64,
        duration: Option<u64>,
        window: u64,
    ) -> Result<(), ScenarioError> {
        if at >= window {
            return Err(self.err(
                &child(path, "at"),
                format!(
                    "{} lies outside the {} window",
                    format_duration(at),
                    format_duration(window)
                ),
            ));
        }
        if let Some(d) = duration {
            if at + d > window {
                return Err(self.err(
                    &child(path, "duration"),
                    format!(
                        "at + duration ({} + {}) ends after the {} window",
                        format_duration(at),
                        format_duration(d),
                        format_duration(window)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn at(&self, f: &mut Fields<'_>) -> Result<u64, ScenarioError> {
        // `at: 0s` is not a positive duration but is a natural way to say "from the start".
        let entry = self.required(f, "at")?;
        if entry.0.as_str() == Some("0s") || entry.0.as_str() == Some("0m") {
            return Ok(0);
        }
        self.duration(entry)
    }

    fn params(
        &self,
        entry: Option<(&Value, String)>,
    ) -> Result<BTreeMap<String, Param>, ScenarioError> {
        let Some((value, path)) = entry else {
            return Ok(BTreeMap::new());
        };
        let Value::Mapping(map) = value else {
            return Err(self.err(
                &path,
                format!(
                    "expected a mapping of scalar parameters, found {}",
                    describe(value)
                ),
            ));
        };
        let mut params = BTreeMap::new();
        for (key, value) in map {
            let key = key
                .as_str()
                .ok_or_else(|| self.err(&path, "parameter names must be text"))?;
            let here = child(&path, key);
            let param = match value {
                Value::Number(_) => Param::Number(self.number((value, here.clone()))?),
                Value::String(s) => Param::Text(s.clone()),
                Value::Bool(b) => Param::Bool(*b),
                other => {
                    return Err(self.err(
                        &here,
                        format!(
                            "parameters are scalars (a number, text or a boolean), found {}",
                            describe(other)
                        ),
                    ))
                }
            };
            params.insert(key.to_owned(), param);
        }
        Ok(params)
    }

    fn fault(&self, (value, path): (&Value, String), window: u64) -> Result<Fault, ScenarioError> {
        let mut f = self.fields(
            value,
            &path,
            &["kind", "target", "at", "duration", "params"],
        )?;
        let kind = self.fault_kind(self.required(&mut f, "kind")?)?;
        let target = self.text(self.required(&mut f, "target")?)?;
        let at = self.at(&mut f)?;
        let duration = self
            .optional(&mut f, "duration")?
            .map(|e| self.duration(e))
            .transpose()?;
        let params = self.params(self.optional(&mut f, "params")?)?;
        self.window_checks(&path, at, duration, window)?;
        Ok(Fault {
            kind,
            target,
            at,
            duration,
            params,
            severity: 1.0,
        })
    }

    fn noise(&self, (value, path): (&Value, String), window: u64) -> Result<Noise, ScenarioError> {
        let mut f = self.fields(
            value,
            &path,
            &["kind", "target", "at", "duration", "severity", "params"],
        )?;
        let kind_entry = self.required(&mut f, "kind")?;
        let is_deploy = kind_entry.0.as_str() == Some("deploy");
        let kind = if is_deploy {
            None
        } else {
            Some(self.fault_kind(kind_entry)?)
        };
        let target = self.text(self.required(&mut f, "target")?)?;
        let at = self.at(&mut f)?;
        let duration_entry = self.optional(&mut f, "duration")?;
        let severity_entry = self.optional(&mut f, "severity")?;
        let params_entry = self.optional(&mut f, "params")?;
        let Some(kind) = kind else {
            if let Some(entry) = [&duration_entry, &severity_entry, &params_entry]
                .into_iter()
                .flatten()
                .next()
            {
                return Err(self.err(
                    &entry.1,
                    "`deploy` noise takes neither duration, severity nor params",
                ));
            }
            self.window_checks(&path, at, None, window)?;
            return Ok(Noise::Deploy { target, at });
        };
        let duration = duration_entry.map(|e| self.duration(e)).transpose()?;
        let severity = self.share(severity_entry, 0.5)?;
        let params = self.params(params_entry)?;
        self.window_checks(&path, at, duration, window)?;
        Ok(Noise::Fault(Fault {
            kind,
            target,
            at,
            duration,
            params,
            severity,
        }))
    }

    fn alert(
        &self,
        (value, path): (&Value, String),
        window: u64,
    ) -> Result<AlertRule, ScenarioError> {
        let mut f = self.fields(
            value,
            &path,
            &["service", "signal", "threshold", "for", "at"],
        )?;
        let service = self.text(self.required(&mut f, "service")?)?;
        let signal_entry = self.required(&mut f, "signal")?;
        let signal_path = signal_entry.1.clone();
        let signal_name = self.text(signal_entry)?;
        let signal = Signal::ALL.into_iter().find(|s| s.as_str() == signal_name).ok_or_else(|| {
            self.err(&signal_path, format!("unknown signal `{signal_name}`; expected one of: error_rate, latency_p99, saturation, availability, consumer_lag"))
        })?;
        let threshold_entry = self.required(&mut f, "threshold")?;
        let threshold_path = threshold_entry.1.clone();
        let threshold = self.number(threshold_entry)?;
        let ratio = matches!(
            signal,
            Signal::ErrorRate | Signal::Saturation | Signal::Availability
        );
        if ratio && !(0.0..=1.0).contains(&threshold) {
            return Err(self.err(
                &threshold_path,
                format!("{signal_name} is a ratio; expected a threshold from 0 to 1"),
            ));
        }
        if threshold < 0.0 {
            return Err(self.err(&threshold_path, "expected a non-negative threshold"));
        }
        let for_s = match self.optional(&mut f, "for")? {
            Some(entry) if entry.0.as_str() == Some("0s") => 0,
            Some(entry) => self.duration(entry)?,
            None => 0,
        };
        let at = match self.optional(&mut f, "at")? {
            Some(entry) => {
                let at = if entry.0.as_str() == Some("0s") {
                    0
                } else {
                    self.duration(entry)?
                };
                self.window_checks(&path, at, None, window)?;
                Some(at)
            }
            None => None,
        };
        Ok(AlertRule {
            service,
            signal,
            threshold,
            for_s,
            at,
        })
    }

    fn expect(&self, (value, path): (&Value, String)) -> Result<Expect, ScenarioError> {
        let mut f = self.fields(value, &path, &["root_cause", "no_issue"])?;
        let root_cause = self.optional(&mut f, "root_cause")?;
        let no_issue = self.optional(&mut f, "no_issue")?;
        match (root_cause, no_issue) {
            (Some((value, path)), None) => {
                let mut f = self.fields(value, &path, &["service", "kind"])?;
                let service = self.text(self.required(&mut f, "service")?)?;
                let kind = self
                    .optional(&mut f, "kind")?
                    .map(|e| self.fault_kind(e))
                    .transpose()?;
                Ok(Expect::RootCause { service, kind })
            }
            (None, Some((Value::Bool(true), _))) => Ok(Expect::NoIssue),
            (None, Some((_, path))) => {
                Err(self.err(&path, "expected `no_issue: true` (or a root_cause instead)"))
            }
            (Some(_), Some(_)) => {
                Err(self.err(&path, "give either root_cause or no_issue, not both"))
            }
            (None, None) => Err(self.err(
                &path,
                "expected root_cause: {service, kind} or no_issue: true",
            )),
        }
    }

    fn validate(&self, s: &Scenario) -> Result<(), ScenarioError> {
        if s.topology.is_empty() {
            return Err(self.err("topology", "expected at least one service"));
        }
        let mut index = BTreeMap::new();
        for (i, node) in s.topology.iter().enumerate() {
            if index.insert(node.name.as_str(), i).is_some() {
                return Err(self.err(
                    &format!("topology[{i}].name"),
                    format!("`{}` is declared twice", node.name),
                ));
            }
        }
        let known = |name: &str, path: String| -> Result<(), ScenarioError> {
            if index.contains_key(name) {
                Ok(())
            } else {
                Err(self.err(&path, format!("`{name}` is not declared in topology")))
            }
        };
        for (i, node) in s.topology.iter().enumerate() {
            for (j, dep) in node.depends_on.iter().enumerate() {
                known(dep, format!("topology[{i}].depends_on[{j}]"))?;
                if dep == &node.name {
                    return Err(self.err(
                        &format!("topology[{i}].depends_on[{j}]"),
                        format!("`{dep}` depends on itself"),
                    ));
                }
            }
            for (j, queue) in node.consumes.iter().enumerate() {
                let path = format!("topology[{i}].consumes[{j}]");
                known(queue, path.clone())?;
                if s.topology[index[queue.as_str()]].kind != NodeKind::Queue {
                    return Err(self.err(
                        &path,
                        format!("`{queue}` is not a queue; only queues can be consumed"),
                    ));
                }
            }
        }
        if !s.topology.iter().any(|n| n.kind == NodeKind::Gateway) {
            // Load enters through gateways; without one, the services nothing calls take it.
        }
        for (i, fault) in s.faults.iter().enumerate() {
            known(&fault.target, format!("faults[{i}].target"))?;
        }
        for (i, noise) in s.noise.iter().enumerate() {
            let target = match noise {
                Noise::Deploy { target, .. } => target,
                Noise::Fault(f) => &f.target,
            };
            known(target, format!("noise[{i}].target"))?;
        }
        known(&s.alert.service, "alert.service".to_owned())?;
        if let Expect::RootCause { service, .. } = &s.expect {
            known(service, "expect.root_cause.service".to_owned())?;
        }
        if let Some(cycle) = find_cycle(s) {
            return Err(self.err(
                "topology",
                format!("dependency cycle: {}", cycle.join(" → ")),
            ));
        }
        Ok(())
    }
}

/// A dependency cycle (its names, first repeated at the end), if the graph has one.
fn find_cycle(s: &Scenario) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        s: &Scenario,
        i: usize,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        marks[i] = Mark::Open;
        stack.push(i);
        for dep in &s.topology[i].depends_on {
            let j = s.topology.iter().position(|n| &n.name == dep)?;
            match marks[j] {
                Mark::Open => {
                    let from = stack.iter().position(|&k| k == j).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[from..]
                        .iter()
                        .map(|&k| s.topology[k].name.clone())
                        .collect();
                    cycle.push(s.topology[j].name.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(s, j, marks, stack) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; s.topology.len()];
    for i in 0..s.topology.len() {
        if marks[i] == Mark::New {
            if let Some(cycle) = visit(s, i, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

/// Whether `b` is a likely typo of `a`: one edit apart.
fn similar(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()] <= 1
}

#[cfg(test)]
mod tests;
