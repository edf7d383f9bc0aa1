//! Squid access-log parsers for proxytail: bytes in, [`Entry`] out.
//!
//! This crate knows nothing of files, tokio, ids being assigned or HTTP. A parser takes one complete
//! log line (without its `\n`) and returns an [`Entry`] borrowing from it, or a [`ParseError`].
//! The daemon sets [`Entry::id`] and serializes the entry once with [`Entry::write_json`] (byte
//! for byte what `serde_json` makes of its `Serialize` impl, without serde); the JSON layout
//! (field order, `null` for absent values) is the one CONTRACT.md section 3 fixes.
//!
//! # Layout
//!
//! * [`Format`] (`format.rs`) — what the daemon holds: a built-in writer, a compiled custom
//!   `logformat` (`logformat.rs`) or a user regex (`regex_format.rs`).
//! * `squid.rs` — the native format, hand-written; `httpd.rs` — `common`, `combined`,
//!   `referrer`, `useragent`.
//! * `conf.rs` — [`discover`]: which logs a `squid.conf` writes, in which format.
//! * `scan.rs`, `decode.rs` — byte-level helpers and Squid's value encodings.
#![deny(missing_docs)]

mod conf;
mod decode;
mod entry;
mod error;
mod format;
mod httpd;
mod logformat;
mod regex_format;
mod scan;
mod squid;

pub use conf::{discover, discover_with_notes, glob_match, Discovery, ReadInclude, Source};
pub use entry::{status_text, Entry, StatusText, Timestamp};
pub use error::{ConfError, FormatError, ParseError, ParseErrorKind};
pub use format::{parse_line, Format, BUILTIN_NAMES};
pub use squid::{glued_record, parse_native, SQUID5_RECORD_LIMIT};
