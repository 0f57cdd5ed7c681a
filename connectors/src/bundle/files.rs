//! A bundle's known files: where they are on disk and how to read them line by line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::{BundleError, BundleFiles};

/// Read buffer per file: big enough that a million-line log costs few system calls.
const READ_BUFFER: usize = 256 * 1024;

/// Every file a bundle reader knows; anything else in the directory is ignored.
///
/// `expect.yaml` is deliberately not here: it is the answer to the incident, read only by the
/// scorer, so a bundle has no way to open it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KnownFile {
    Manifest,
    Topology,
    Alert,
    Metrics,
    Logs,
    Traces,
    Changes,
    Events,
}

impl KnownFile {
    /// All known files.
    pub(crate) const ALL: [Self; 8] = [
        Self::Manifest,
        Self::Topology,
        Self::Alert,
        Self::Metrics,
        Self::Logs,
        Self::Traces,
        Self::Changes,
        Self::Events,
    ];

    /// The uncompressed file name the format gives it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Manifest => "bundle.yaml",
            Self::Topology => "topology.yaml",
            Self::Alert => "alert.json",
            Self::Metrics => "metrics.om",
            Self::Logs => "logs.jsonl",
            Self::Traces => "traces.jsonl",
            Self::Changes => "changes.jsonl",
            Self::Events => "events.jsonl",
        }
    }
}

/// Where a bundle's files are: a directory, or memory (a simulated bundle never written out).
#[derive(Clone, Copy)]
pub(crate) enum Origin<'a> {
    Dir(&'a Path),
    Memory(&'a BundleFiles),
}

/// A known file present in a bundle, under the name it has there.
pub(crate) struct Located<'a> {
    name: String,
    content: Content<'a>,
    gzip: bool,
}

enum Content<'a> {
    Path(PathBuf),
    Bytes(&'a [u8]),
}

/// The line reader every bundle file is parsed through.
pub(crate) type FileLines<'a> = LineReader<Box<dyn BufRead + Send + 'a>>;

/// Finds `file` in `origin`, plain or gzipped.
///
/// Both at once is an error rather than a silent preference: they may differ (a half-done
/// `gzip -k`, an edited copy), and answering from the wrong one would be worse than stopping.
pub(crate) fn locate<'a>(
    origin: Origin<'a>,
    file: KnownFile,
) -> Result<Option<Located<'a>>, BundleError> {
    let plain = file.name().to_owned();
    let gz = format!("{plain}.gz");
    let exists = |name: &str| match origin {
        Origin::Dir(dir) => dir
            .join(name)
            .try_exists()
            .map_err(|e| BundleError::Unreadable {
                file: name.to_owned(),
                message: e.to_string(),
            }),
        Origin::Memory(files) => Ok(files.get(name).is_some()),
    };
    let (name, gzip) = match (exists(&plain)?, exists(&gz)?) {
        (true, true) => return Err(BundleError::Ambiguous { file: plain }),
        (true, false) => (plain, false),
        (false, true) => (gz, true),
        (false, false) => return Ok(None),
    };
    let content = match origin {
        Origin::Dir(dir) => Content::Path(dir.join(&name)),
        Origin::Memory(files) => Content::Bytes(files.get(&name).unwrap_or_default()),
    };
    Ok(Some(Located {
        name,
        content,
        gzip,
    }))
}

impl<'a> Located<'a> {
    /// Opens the file for streaming, inflating it when it is gzipped.
    pub(crate) fn open(&self) -> Result<FileLines<'a>, BundleError> {
        let raw: Box<dyn Read + Send + 'a> = match &self.content {
            Content::Path(path) => {
                Box::new(File::open(path).map_err(|e| BundleError::Unreadable {
                    file: self.name.clone(),
                    message: format!("cannot open: {e}"),
                })?)
            }
            Content::Bytes(bytes) => Box::new(*bytes),
        };
        // Multi-member, because `cat a.gz b.gz` is a valid gzip file that tools produce.
        let reader: Box<dyn BufRead + Send + 'a> = if self.gzip {
            Box::new(BufReader::with_capacity(
                READ_BUFFER,
                MultiGzDecoder::new(raw),
            ))
        } else {
            Box::new(BufReader::with_capacity(READ_BUFFER, raw))
        };
        Ok(LineReader::new(reader, &self.name))
    }
}

/// Streams a file line by line, reusing one buffer and counting lines for error messages.
pub(crate) struct LineReader<R> {
    reader: R,
    file: String,
    buf: Vec<u8>,
    line: u64,
}

impl<R> LineReader<R> {
    /// Reads `reader`, naming it `file` in errors.
    pub(crate) fn new(reader: R, file: &str) -> Self {
        Self {
            reader,
            file: file.to_owned(),
            buf: Vec::new(),
            line: 0,
        }
    }

    /// The file name errors carry.
    pub(crate) fn file(&self) -> &str {
        &self.file
    }

    /// An error at `line` of this file.
    pub(crate) fn malformed(&self, line: u64, message: impl Into<String>) -> BundleError {
        BundleError::Malformed {
            file: self.file.clone(),
            line,
            message: message.into(),
        }
    }
}

impl<R: BufRead> LineReader<R> {
    /// The next line without its line ending, with its 1-based number; `None` at the end.
    pub(crate) fn next_line(&mut self) -> Result<Option<(u64, &str)>, BundleError> {
        self.buf.clear();
        self.line += 1;
        let read = self.reader.read_until(b'\n', &mut self.buf);
        match read {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(self.malformed(self.line, format!("cannot read: {e}"))),
        }
        let mut text = self.buf.as_slice();
        text = text.strip_suffix(b"\n").unwrap_or(text);
        text = text.strip_suffix(b"\r").unwrap_or(text);
        match std::str::from_utf8(text) {
            Ok(text) => Ok(Some((self.line, text))),
            Err(e) => Err(self.malformed(
                self.line,
                format!(
                    "not valid UTF-8 (at byte {} of the line)",
                    e.valid_up_to() + 1
                ),
            )),
        }
    }

    /// The whole rest of the file, for the small one-document files (YAML, JSON).
    pub(crate) fn read_to_string(&mut self) -> Result<String, BundleError> {
        let mut all = String::new();
        while let Some((_, line)) = self.next_line()? {
            all.push_str(line);
            all.push('\n');
        }
        Ok(all)
    }
}
