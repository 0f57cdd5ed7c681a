//! The incident thread rendered for a terminal: what Slack shows, as text, with colour on a
//! TTY and none when asked (`--plain`) or when output is not a terminal.

use std::fmt::Write;

use cairn_agents::{Finding, Hypothesis, Progress, Verdict};

/// How to style terminal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Colour,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        match self {
            Style::Plain => text.to_owned(),
            Style::Colour => format!("\x1b[{code}m{text}\x1b[0m"),
        }
    }
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
    pub fn red(self, text: &str) -> String {
        self.paint("31", text)
    }
    pub fn green(self, text: &str) -> String {
        self.paint("32", text)
    }
    pub fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }
}

/// A unicode sparkline of `values` (`▁▂▃▄▅▆▇█`).
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    finite
        .iter()
        .map(|v| {
            if hi - lo <= f64::EPSILON {
                BARS[0]
            } else {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

/// One progress event as a line, or nothing for events not worth a line.
pub fn progress_line(event: &Progress, style: Style) -> Option<String> {
    Some(match event {
        Progress::RoundStarted { round: 1 } => {
            style.dim("  round 1: every agent surveys its domain")
        }
        Progress::RoundStarted { round } => {
            style.dim(&format!("  round {round}: testing the leading hypotheses"))
        }
        Progress::AgentStarted { .. } => return None,
        Progress::AgentFinished {
            agent,
            evidence,
            error,
            ..
        } => match error {
            Some(e) => format!("  {} {agent:<15} {}", style.red("✗"), style.red(e)),
            None => format!("  {} {agent:<15} {evidence} finding(s)", style.green("✓")),
        },
        Progress::EvidenceFound { .. } => return None,
        Progress::HypothesisRaised {
            service,
            kind,
            confidence,
        } => format!(
            "    {} {service} {} {:.0}%",
            style.yellow("◆"),
            kind.map_or_else(|| "(kind unknown)".to_owned(), |k| k.to_string()),
            confidence * 100.0
        ),
        Progress::HypothesisUpdated {
            service,
            confidence,
            why,
            ..
        } => {
            format!(
                "    {} {service} now {:.0}%: {why}",
                style.yellow("◇"),
                confidence * 100.0
            )
        }
        Progress::Done { verdict, queries } => style.dim(&format!(
            "  done: {} after {queries} queries",
            match verdict {
                Verdict::RootCauseFound => "root cause found",
                Verdict::NoRootCauseFound => "no root cause found",
            }
        )),
    })
}

fn hypothesis(out: &mut String, rank: usize, h: &Hypothesis, style: Style) {
    let kind = crate::findings::kind_label(h);
    let _ = writeln!(
        out,
        "│ {} {} — {} ({})",
        style.bold(&format!("#{rank}")),
        style.bold(&h.service),
        kind,
        style.bold(&h.confidence.to_string())
    );
    for e in h.supporting.iter().take(4) {
        let _ = writeln!(out, "│    • [{}] {}", e.domain.as_str(), e.reason);
        let _ = writeln!(out, "│      {}", style.dim(&e.query));
        if !e.trend.is_empty() && e.domain != cairn_agents::Domain::Changes {
            let _ = writeln!(out, "│      {}", sparkline(&e.trend));
        }
    }
    for e in h.contradicting.iter().take(2) {
        let _ = writeln!(out, "│    ✗ {}", e.reason);
    }
    let _ = writeln!(out, "│    [ Confirm ]  [ Reject ]");
}

/// The thread as it would look in Slack: root message, status, hypotheses, summary.
pub fn thread(title: &str, page: &str, finding: &Finding, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "┌ {} {}", style.red("🔴 Incident"), style.bold(title));
    let _ = writeln!(out, "│ {page}");
    let _ = writeln!(out, "├ {}", style.bold("Status"));
    let agents = finding.checked.len().saturating_sub(1);
    let _ = writeln!(
        out,
        "│ Investigated with {agents} agents in {} round(s): {}",
        finding.rounds,
        finding.checked.first().cloned().unwrap_or_default()
    );
    match finding.verdict {
        Verdict::RootCauseFound => {
            // Up to three, and only those worth an engineer's attention.
            let shown: Vec<&Hypothesis> = finding
                .ranking
                .iter()
                .take(3)
                .enumerate()
                .filter(|(i, h)| *i == 0 || h.confidence.get() >= 0.2)
                .map(|(_, h)| h)
                .collect();
            for (i, h) in shown.iter().enumerate() {
                let _ = writeln!(out, "├ {}", style.bold(&format!("Hypothesis {}", i + 1)));
                hypothesis(&mut out, i + 1, h, style);
            }
            let top = &finding.ranking[0];
            let _ = writeln!(
                out,
                "└ {} most likely {} on {} ({}); evidence from {}.",
                style.bold("Summary:"),
                top.kind
                    .map_or_else(|| "a fault".to_owned(), |k| k.to_string().replace('_', " ")),
                top.service,
                top.confidence,
                top.domains()
                    .iter()
                    .map(|d| d.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Verdict::NoRootCauseFound => {
            let _ = writeln!(
                out,
                "└ {} no root cause found: nothing beat the noise. Checked:",
                style.bold("Summary:")
            );
            for line in &finding.checked {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_span_the_range() {
        assert_eq!(sparkline(&[0.0, 1.0, 2.0, 7.0]), "▁▂▃█");
        assert_eq!(sparkline(&[5.0, 5.0]), "▁▁");
        assert_eq!(sparkline(&[]), "");
    }
}
