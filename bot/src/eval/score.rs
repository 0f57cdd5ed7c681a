//! Scoring: the one place that reads a bundle's `expect.yaml`.
//!
//! Invariant: nothing on the investigation's side can reach the expected answer. The bundle
//! reader in `cairn-connectors` does not know the file exists; this module reads it only
//! after the investigation of that case has finished, and only to compare.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file holding a case's answer.
pub const EXPECT_FILE: &str = "expect.yaml";

/// What a case's answer says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    RootCause {
        service: String,
        kind: Option<String>,
    },
    NoIssue,
}

#[derive(Deserialize)]
struct ExpectFile {
    root_cause: Option<RootCause>,
    #[serde(default)]
    no_issue: bool,
}

#[derive(Deserialize)]
struct RootCause {
    service: String,
    kind: Option<String>,
}

/// Reads the answer of the bundle at `dir`; `Ok(None)` when it has none.
pub fn read_expected(dir: &Path) -> Result<Option<Expected>, String> {
    let path = dir.join(EXPECT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    parse_expected(&text, &path.display().to_string()).map(Some)
}

/// Parses the text of an `expect.yaml`; `shown` names it in errors.
pub fn parse_expected(text: &str, shown: &str) -> Result<Expected, String> {
    let file: ExpectFile = serde_yaml_ng::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(1);
        format!("{shown}:{line}: {e}")
    })?;
    match (file.root_cause, file.no_issue) {
        (Some(rc), false) => Ok(Expected::RootCause {
            service: rc.service,
            kind: rc.kind,
        }),
        (None, true) => Ok(Expected::NoIssue),
        (None, false) => Err(format!(
            "{shown}: has neither `root_cause` nor `no_issue: true`"
        )),
        (Some(_), true) => Err(format!(
            "{shown}: has both `root_cause` and `no_issue: true`"
        )),
    }
}

/// 1-based position of `service` in a ranking of distinct services, if present.
pub fn rank_of(ranking: &[&str], service: &str) -> Option<usize> {
    ranking.iter().position(|s| *s == service).map(|i| i + 1)
}

/// Aggregate scores over a set of cases.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Cases in the set.
    pub cases: usize,
    /// Cases with a root cause to find.
    pub scored: usize,
    #[serde(rename = "AC@1")]
    pub ac1: Option<f64>,
    #[serde(rename = "AC@3")]
    pub ac3: Option<f64>,
    #[serde(rename = "AC@5")]
    pub ac5: Option<f64>,
    #[serde(rename = "Avg@5")]
    pub avg5: Option<f64>,
    /// `no_issue` cases.
    pub no_issue_cases: usize,
    /// Of those, how many raised no hypothesis at or above the confidence threshold.
    pub no_issue_abstained: usize,
    /// `no_issue_abstained / no_issue_cases`.
    pub no_issue_specificity: Option<f64>,
    /// Cases whose investigation failed.
    pub errors: usize,
}

/// One case as the scorer sees it.
#[derive(Debug, Clone)]
pub struct ScoredCase {
    pub expected: Option<Expected>,
    /// Rank of the expected service (root-cause cases).
    pub hit: Option<usize>,
    /// Whether the top confidence stayed under the threshold.
    pub abstained: bool,
    pub failed: bool,
}

/// Summarises `cases`: AC@k over root-cause cases, specificity over no-issue cases.
pub fn summarize<'a>(cases: impl IntoIterator<Item = &'a ScoredCase>) -> Summary {
    let mut s = Summary::default();
    let mut at = [0usize; 5];
    for case in cases {
        s.cases += 1;
        if case.failed {
            s.errors += 1;
        }
        match &case.expected {
            Some(Expected::RootCause { .. }) => {
                s.scored += 1;
                if let Some(rank) = case.hit {
                    for (k, count) in at.iter_mut().enumerate() {
                        if rank <= k + 1 {
                            *count += 1;
                        }
                    }
                }
            }
            Some(Expected::NoIssue) => {
                s.no_issue_cases += 1;
                if case.abstained && !case.failed {
                    s.no_issue_abstained += 1;
                }
            }
            None => {}
        }
    }
    if s.scored > 0 {
        let ac = |k: usize| at[k - 1] as f64 / s.scored as f64;
        s.ac1 = Some(ac(1));
        s.ac3 = Some(ac(3));
        s.ac5 = Some(ac(5));
        s.avg5 = Some((1..=5).map(ac).sum::<f64>() / 5.0);
    }
    if s.no_issue_cases > 0 {
        s.no_issue_specificity = Some(s.no_issue_abstained as f64 / s.no_issue_cases as f64);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(expected: Expected, hit: Option<usize>, abstained: bool) -> ScoredCase {
        ScoredCase {
            expected: Some(expected),
            hit,
            abstained,
            failed: false,
        }
    }

    fn rc() -> Expected {
        Expected::RootCause {
            service: "a".into(),
            kind: None,
        }
    }

    #[test]
    fn ac_at_k_and_avg() {
        let cases = [
            case(rc(), Some(1), false),
            case(rc(), Some(3), false),
            case(rc(), None, false),
            case(rc(), Some(6), false),
        ];
        let s = summarize(&cases);
        assert_eq!(s.scored, 4);
        assert_eq!(s.ac1, Some(0.25));
        assert_eq!(s.ac3, Some(0.5));
        assert_eq!(s.ac5, Some(0.5));
        // AC@1..5 = .25 .25 .5 .5 .5
        assert!((s.avg5.unwrap() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn specificity_counts_only_no_issue_cases() {
        let cases = [
            case(Expected::NoIssue, None, true),
            case(Expected::NoIssue, None, false),
            case(rc(), Some(1), true),
        ];
        let s = summarize(&cases);
        assert_eq!(s.no_issue_cases, 2);
        assert_eq!(s.no_issue_specificity, Some(0.5));
        assert_eq!(s.ac1, Some(1.0));
    }

    #[test]
    fn reads_both_answer_shapes() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_expected(dir.path()), Ok(None));
        std::fs::write(
            dir.path().join(EXPECT_FILE),
            "root_cause:\n  service: cart\n  kind: cpu\nnotes: x\n",
        )
        .unwrap();
        assert_eq!(
            read_expected(dir.path()),
            Ok(Some(Expected::RootCause {
                service: "cart".into(),
                kind: Some("cpu".into())
            }))
        );
        std::fs::write(dir.path().join(EXPECT_FILE), "no_issue: true\n").unwrap();
        assert_eq!(read_expected(dir.path()), Ok(Some(Expected::NoIssue)));
        std::fs::write(dir.path().join(EXPECT_FILE), "notes: nothing\n").unwrap();
        assert!(read_expected(dir.path()).unwrap_err().contains("neither"));
    }

    #[test]
    fn rank_is_one_based() {
        assert_eq!(rank_of(&["x", "y"], "y"), Some(2));
        assert_eq!(rank_of(&["x"], "z"), None);
    }
}
