//! Runbook import: markdown files with a front matter (`title`, `services`, `alerts`,
//! `tags`) become runbooks in the database. Re-importing a file (same path, or else same
//! title) updates it in place; an unchanged file changes nothing.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::store::{Store, StoreError};

/// A runbook file as read, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookFile {
    pub title: String,
    pub services: Vec<String>,
    pub alerts: Vec<String>,
    pub tags: Vec<String>,
    pub body: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Files not imported, with why (`path: reason`).
    pub skipped: Vec<String>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} added, {} updated, {} unchanged, {} skipped",
            self.added,
            self.updated,
            self.unchanged,
            self.skipped.len()
        )
    }
}

/// Why an import could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read runbook directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads one runbook. `fallback_title` (the file name) is used when neither the front
/// matter nor a `# heading` names it. The error says what is wrong, with the line.
pub fn parse_runbook(fallback_title: &str, text: &str) -> Result<RunbookFile, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (front, body) = split_front_matter(text)?;
    let mut file = RunbookFile {
        title: String::new(),
        services: Vec::new(),
        alerts: Vec::new(),
        tags: Vec::new(),
        body: body.trim().to_owned(),
    };
    if let Some(front) = front {
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(front).map_err(|e| {
            let line = e.location().map_or(0, |l| l.line() + 1);
            format!("front matter line {line}: {e}")
        })?;
        let map = match value {
            serde_yaml_ng::Value::Mapping(m) => m,
            serde_yaml_ng::Value::Null => Default::default(),
            _ => return Err("front matter is not a `key: value` mapping".to_owned()),
        };
        for (key, value) in map {
            let key = key.as_str().unwrap_or_default().to_owned();
            match key.as_str() {
                "title" => file.title = scalar(&value).ok_or("`title` must be text")?,
                "services" => file.services = list(&value).ok_or("`services` must be a list")?,
                "alerts" => file.alerts = list(&value).ok_or("`alerts` must be a list")?,
                "tags" => file.tags = list(&value).ok_or("`tags` must be a list")?,
                // Other keys (owner, updated…) are the team's own; keep them in the body's
                // file, ignore them here.
                _ => {}
            }
        }
    }
    if file.title.trim().is_empty() {
        file.title = file
            .body
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or(fallback_title)
            .to_owned();
    }
    file.title = file.title.trim().to_owned();
    Ok(file)
}

/// The front matter (between `---` lines at the very top) and the rest.
fn split_front_matter(text: &str) -> Result<(Option<&str>, &str), String> {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return Ok((None, text));
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Ok((Some(&rest[..offset]), &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    Err("front matter starts with `---` but has no closing `---` line".to_owned())
}

fn scalar(value: &serde_yaml_ng::Value) -> Option<String> {
    match value {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A list, or one comma-separated string (`services: checkout, cart`).
fn list(value: &serde_yaml_ng::Value) -> Option<Vec<String>> {
    let items: Vec<String> = match value {
        serde_yaml_ng::Value::Sequence(items) => {
            items.iter().map(scalar).collect::<Option<Vec<_>>>()?
        }
        serde_yaml_ng::Value::Null => Vec::new(),
        other => scalar(other)?.split(',').map(str::to_owned).collect(),
    };
    Some(
        items
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// Markdown files under `dir`, recursively, in name order.
fn markdown_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("markdown"))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Store {
    /// Imports every markdown runbook under `dir`. A file that cannot be read or parsed is
    /// skipped and named in the report; the others are imported.
    pub async fn import_runbooks(
        &self,
        dir: &Path,
        now: DateTime<Utc>,
    ) -> Result<ImportReport, ImportError> {
        let directory = |source| ImportError::Directory {
            path: dir.display().to_string(),
            source,
        };
        let root = dir.canonicalize().map_err(directory)?;
        let files = markdown_files(&root).map_err(directory)?;
        let mut report = ImportReport::default();
        let existing = self.runbooks().await?;
        for path in files {
            let shown = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    report.skipped.push(format!("{shown}: {e}"));
                    continue;
                }
            };
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let file = match parse_runbook(&stem, &text) {
                Ok(f) => f,
                Err(e) => {
                    report.skipped.push(format!("{shown}: {e}"));
                    continue;
                }
            };
            let key = path.display().to_string();
            let before = existing
                .iter()
                .find(|r| r.path == key)
                .or_else(|| existing.iter().find(|r| r.title == file.title));
            match before {
                Some(r)
                    if r.path == key
                        && r.title == file.title
                        && r.services == file.services
                        && r.alerts == file.alerts
                        && r.tags == file.tags
                        && r.body == file.body =>
                {
                    report.unchanged += 1;
                    continue;
                }
                Some(_) => report.updated += 1,
                None => report.added += 1,
            }
            self.upsert_runbook(
                &file.title,
                &key,
                &file.services,
                &file.alerts,
                &file.tags,
                &file.body,
                now,
            )
            .await?;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_lists_and_strings() {
        let f = parse_runbook(
            "x",
            "---\ntitle: Checkout 5xx\nservices: [checkout, cart]\nalerts: CheckoutErrors\ntags:\n  - payments\nowner: team-a\n---\n# Steps\nRoll back.\n",
        )
        .unwrap();
        assert_eq!(f.title, "Checkout 5xx");
        assert_eq!(f.services, vec!["checkout", "cart"]);
        assert_eq!(f.alerts, vec!["CheckoutErrors"]);
        assert_eq!(f.tags, vec!["payments"]);
        assert_eq!(f.body, "# Steps\nRoll back.");
    }

    #[test]
    fn title_falls_back_to_heading_then_file_name() {
        assert_eq!(
            parse_runbook("f", "# Disk full\nclean up").unwrap().title,
            "Disk full"
        );
        assert_eq!(
            parse_runbook("disk-full", "clean up").unwrap().title,
            "disk-full"
        );
    }

    #[test]
    fn broken_front_matter_says_what_and_where() {
        let e = parse_runbook("x", "---\ntitle: [unclosed\n---\nbody").unwrap_err();
        assert!(e.starts_with("front matter line"), "{e}");
        let e = parse_runbook("x", "---\ntitle: t\nbody").unwrap_err();
        assert!(e.contains("closing `---`"), "{e}");
        let e = parse_runbook("x", "---\nservices: {a: 1}\n---\n").unwrap_err();
        assert!(e.contains("`services` must be a list"), "{e}");
    }
}
