//! Squid access-log parsers for proxytail: bytes in, [`Entry`] out.
//!
//! This crate knows nothing of files, tokio, ids being assigned or HTTP. A parser takes one complete
//! log line (without its `\n`) and returns an [`Entry`] borrowing from it, or a [`ParseError`].
//! The daemon sets [`Entry::id`] and serializes the entry once with `serde_json`; the JSON layout
//! (field order, `null` for absent values) is the one CONTRACT.md section 3 fixes.
#![deny(missing_docs)]

mod decode;
mod entry;
mod error;
mod scan;
mod squid;

pub use entry::{status_text, Entry, Timestamp};
pub use error::{ConfError, FormatError, ParseError, ParseErrorKind};
pub use squid::{glued_record, parse_native, SQUID5_RECORD_LIMIT};
