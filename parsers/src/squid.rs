//! The Squid native format (`logformat squid`), hand-written over bytes.
use crate::{Entry, ParseError, ParseErrorKind};

/// Parses one line of Squid's native format:
/// `%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`.
pub fn parse_native(line: &[u8]) -> Result<Entry<'_>, ParseError> {
    // Placeholder until the real parser lands.
    let _ = line;
    Err(ParseError::new(ParseErrorKind::Empty, 0))
}
