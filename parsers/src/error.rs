//! The one error a parser returns: what was wrong and where.
use std::fmt;

/// What kind of problem made a line unparseable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The line ended before every field the format needs was found.
    MissingField,
    /// A field that must be a number was not one.
    BadNumber,
    /// A field did not have the shape the format prescribes (e.g. `TAG/code`).
    BadField,
    /// The line is empty or only whitespace.
    Empty,
}

/// A line that could not be parsed: the kind of problem and the byte column where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// What went wrong.
    pub kind: ParseErrorKind,
    /// Byte offset in the line where the problem was detected.
    pub column: usize,
}

impl ParseError {
    /// Builds an error of `kind` at byte `column`.
    pub fn new(kind: ParseErrorKind, column: usize) -> Self {
        Self { kind, column }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ParseErrorKind::MissingField => "missing field",
            ParseErrorKind::BadNumber => "not a number",
            ParseErrorKind::BadField => "malformed field",
            ParseErrorKind::Empty => "empty line",
        };
        write!(f, "{what} at column {}", self.column)
    }
}

impl std::error::Error for ParseError {}
