//! The errors of this crate: a line a parser rejects ([`ParseError`]), a format definition or regex
//! that does not compile ([`FormatError`]), and a `squid.conf` that cannot be read ([`ConfError`]).
use std::path::PathBuf;

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
    /// The line does not match a custom format or a user regex.
    NoMatch,
}

impl ParseErrorKind {
    fn text(self) -> &'static str {
        match self {
            ParseErrorKind::MissingField => "missing field",
            ParseErrorKind::BadNumber => "not a number",
            ParseErrorKind::BadField => "malformed field",
            ParseErrorKind::Empty => "empty line",
            ParseErrorKind::NoMatch => "line does not match the format",
        }
    }
}

/// A line that could not be parsed: the kind of problem and the byte column where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} at column {column}", kind.text())]
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

/// A format that cannot be built: a broken `logformat` definition or user regex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The definition is empty (or only whitespace).
    #[error("empty format definition")]
    Empty,
    /// A `{` argument is never closed.
    #[error("unterminated {{argument}} at byte {0} of the format definition")]
    UnterminatedArgument(usize),
    /// A `%` ends the definition, or is followed only by modifiers.
    #[error("incomplete %code at byte {0} of the format definition")]
    IncompleteCode(usize),
    /// The user regex does not compile.
    #[error("invalid regex: {0}")]
    BadRegex(String),
    /// The user regex has no named group, so it would yield empty entries.
    #[error("the regex has no named capture group")]
    NoNamedGroup,
}

/// A `squid.conf` that cannot be turned into log sources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfError {
    /// An `include` could not be read (the message comes from the caller's callback).
    #[error("{path}:{line}: cannot include {pattern}: {message}")]
    Include {
        /// The file holding the `include` line.
        path: PathBuf,
        /// Its 1-based line number.
        line: usize,
        /// The include argument as written.
        pattern: String,
        /// Why the callback failed.
        message: String,
    },
    /// Includes nest deeper than Squid allows (a loop, most likely).
    #[error("{path}: includes nested more than {depth} deep")]
    IncludeDepth {
        /// The file whose include went too deep.
        path: PathBuf,
        /// The depth limit.
        depth: usize,
    },
    /// Includes pull in more files than any real configuration has (a fanning loop).
    #[error("{path}: more than {limit} included files")]
    TooManyIncludes {
        /// The file that went over the limit.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// An `access_log` line names a format that is neither built in nor defined before.
    #[error("{path}:{line}: access_log uses undefined logformat {name:?}")]
    UnknownFormat {
        /// The file holding the `access_log` line.
        path: PathBuf,
        /// Its 1-based line number.
        line: usize,
        /// The format name.
        name: String,
    },
    /// A `logformat` definition does not compile.
    #[error("{path}:{line}: logformat {name:?}: {source}")]
    BadFormat {
        /// The file holding the `logformat` line.
        path: PathBuf,
        /// Its 1-based line number.
        line: usize,
        /// The format name.
        name: String,
        /// What is wrong with it.
        source: FormatError,
    },
}
