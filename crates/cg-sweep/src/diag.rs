//! Diagnostics: every problem found in a run or sweep file, each with its file, line, column and dotted
//! key path. Loading never stops at the first problem; it collects them here and returns them together.
//! This module only stores and renders; it does not decide what is wrong.

use std::collections::HashMap;
use std::fmt;

/// A 1-based line and column in a file (0:0 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    /// The start of the file.
    pub const START: Pos = Pos { line: 1, column: 1 };

    pub fn new(line: u32, column: u32) -> Self {
        Self { line, column }
    }
}

/// One problem in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it (`experiments/x.yaml`).
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// Dotted key path (`gate.threshold`, `parameters.gate.tau_end.min`); empty for whole-file problems.
    pub key: String,
    pub message: String,
    /// What to do about it (`did you mean `gate.threshold`?`); rendered in parentheses.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    /// `experiments/x.yaml:12:5: gate.treshold: unknown key (did you mean `gate.threshold`?)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Every problem found in one file, in file order. Displays one line per problem.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

/// Collects problems for one file while it is checked. Every part of a problem is made fit to show
/// as it is pushed ([`cg_core::shown`]: control characters escaped, URL passwords masked), since
/// file names, keys and values come from outside.
#[derive(Debug)]
pub(crate) struct Sink {
    file: String,
    items: Vec<Diagnostic>,
    /// Strings as written before `${VAR}` expansion, by position: messages show these.
    written: HashMap<Pos, String>,
}

impl Sink {
    pub(crate) fn new(file: impl Into<String>) -> Self {
        Self {
            file: cg_core::shown(&file.into()).into_owned(),
            items: Vec::new(),
            written: HashMap::new(),
        }
    }

    /// Records that the string at `pos` was written as `text` before `${VAR}` expansion.
    pub(crate) fn note_written(&mut self, pos: Pos, text: &str) {
        self.written.insert(pos, text.to_string());
    }

    /// The string at `pos` as written, when `${VAR}` expansion changed it.
    pub(crate) fn written(&self, pos: Pos) -> Option<&str> {
        self.written.get(&pos).map(String::as_str)
    }

    pub(crate) fn push(
        &mut self,
        pos: Pos,
        key: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.items.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
            key: cg_core::shown(key).into_owned(),
            message: cg_core::shown(&message.into()).into_owned(),
            hint: hint.map(|h| cg_core::shown(&h).into_owned()),
        });
    }

    pub(crate) fn error(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        self.push(pos, key, message, None);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The problems sorted by position (stable, so problems at one place keep their order), deduplicated.
    pub(crate) fn finish(mut self) -> Diagnostics {
        self.items.sort_by_key(|d| (d.line == 0, d.line, d.column));
        self.items.dedup();
        Diagnostics { items: self.items }
    }

    /// `Ok(value)` when nothing was reported, the diagnostics otherwise.
    pub(crate) fn result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self.finish())
        }
    }
}
