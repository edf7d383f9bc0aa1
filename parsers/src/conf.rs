//! `squid.conf` discovery: which access logs Squid writes and in which format, from the
//! configuration text alone. File access goes through a caller-supplied callback, so this stays
//! pure (squid-logs.md §6.1, §8 "logformat line grammar").
//!
//! Handled: `include` (the callback expands globs), `logformat NAME definition` (first definition
//! wins, built-in names cannot be redefined, `"quoted"` definitions), `\` line continuations,
//! `#` comment lines, and every `access_log` form: `daemon:` / `stdio:` / plain paths, the
//! `logformat=NAME` option, the older positional format name, trailing ACL names (ignored),
//! `none` (skipped), `syslog:` / `udp://` / `tcp://` (skipped with a note). Without any
//! `access_log` line, Squid's default `daemon:/var/log/squid/access.log squid` applies.
//!
//! Decisions where Squid is silent or irrelevant here: `if`/`else`/`endif` blocks are read as if
//! every branch applied (noted); a relative `include` path is taken relative to the including
//! file's directory (Squid uses its working directory, normally `/`); a path listed by several
//! `access_log` lines (different ACLs) is one source, with the first line's format.
use crate::{ConfError, Format};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Squid refuses deeper include nesting; a loop would otherwise never end.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Cap on included files in total, so a loop that fans out (`include a b`) stays cheap.
const MAX_INCLUDED_FILES: usize = 1024;

/// One access log Squid writes.
#[derive(Debug, Clone)]
pub struct Source {
    /// The log file (the place of a `stdio:`/`daemon:` module, or a plain path).
    pub path: PathBuf,
    /// The logformat name as configured (`squid` when none is given), for diagnostics.
    pub format_name: String,
    /// The compiled format to parse its lines with.
    pub format: Format,
}

/// What [`discover_with_notes`] found: the sources and what it skipped or guessed.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Log files to follow, in `access_log` order.
    pub sources: Vec<Source>,
    /// Human-readable notes (`file:line: ...`): skipped modules, ignored redefinitions, …
    pub notes: Vec<String>,
}

/// The include callback: given an `include` argument (a path that may hold glob characters,
/// already made absolute), returns every matching file with its text, or an error message.
pub type ReadInclude<'r> = dyn FnMut(&Path) -> Result<Vec<(PathBuf, String)>, String> + 'r;

/// Lists the access logs of the configuration `conf_text` read from `path`.
/// See [`discover_with_notes`]; this drops the notes.
pub fn discover(
    conf_text: &str,
    path: &Path,
    read_include: &mut ReadInclude<'_>,
) -> Result<Vec<Source>, ConfError> {
    discover_with_notes(conf_text, path, read_include).map(|d| d.sources)
}

/// An `access_log` line, kept until every `logformat` is known.
struct AccessLog {
    /// The log file it writes.
    path: PathBuf,
    /// The configuration file holding the line, for errors and notes.
    file: PathBuf,
    /// Its 1-based line number there.
    line: usize,
    /// The format name, resolved once every `logformat` has been read.
    format: String,
}

/// What reading the configuration (and its includes) has gathered so far.
#[derive(Default)]
struct State {
    /// Defined custom formats by name; the first definition wins.
    formats: HashMap<String, Format>,
    /// `access_log` lines in order, formats not yet resolved.
    logs: Vec<AccessLog>,
    /// Whether any `access_log` directive (even `none`) was seen: that disables the default.
    any_access_log: bool,
    /// Files read through `include` so far, against [`MAX_INCLUDED_FILES`].
    included: usize,
    /// What was skipped or guessed, for the caller to log.
    notes: Vec<String>,
}

/// Lists the access logs of the configuration `conf_text` read from `path`, with notes on what
/// was skipped.
pub fn discover_with_notes(
    conf_text: &str,
    path: &Path,
    read_include: &mut ReadInclude<'_>,
) -> Result<Discovery, ConfError> {
    let mut st = State::default();
    read_conf(conf_text, path, read_include, &mut st, 0)?;
    if !st.any_access_log {
        st.logs.push(AccessLog {
            path: PathBuf::from("/var/log/squid/access.log"),
            file: path.to_path_buf(),
            line: 0,
            format: "squid".into(),
        });
        st.notes
            .push("no access_log line: using Squid's default /var/log/squid/access.log".into());
    }
    let mut sources: Vec<Source> = Vec::new();
    for log in st.logs {
        if sources.iter().any(|s| s.path == log.path) {
            st.notes.push(format!(
                "{}:{}: {} is already listed; keeping the first access_log line",
                log.file.display(),
                log.line,
                log.path.display()
            ));
            continue;
        }
        let format = Format::builtin(&log.format)
            .or_else(|| st.formats.get(&log.format).cloned())
            .ok_or_else(|| ConfError::UnknownFormat {
                path: log.file.clone(),
                line: log.line,
                name: log.format.clone(),
            })?;
        sources.push(Source {
            path: log.path,
            format_name: log.format,
            format,
        });
    }
    Ok(Discovery {
        sources,
        notes: st.notes,
    })
}

/// Joins `\` continuations and drops comment and blank lines: (1-based line number, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (n, mut acc) = cur.take().unwrap_or((i + 1, String::new()));
        if acc.is_empty() && raw.trim_start().starts_with('#') {
            continue;
        }
        match raw.strip_suffix('\\') {
            Some(part) => {
                acc.push_str(part);
                cur = Some((n, acc));
            }
            None => {
                acc.push_str(raw);
                if !acc.trim().is_empty() {
                    out.push((n, acc));
                }
            }
        }
    }
    if let Some((n, acc)) = cur {
        if !acc.trim().is_empty() {
            out.push((n, acc));
        }
    }
    out
}

/// Splits off the first whitespace-separated word.
fn word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// A `logformat` definition: a single `"quoted string"` (with `\"` and `\\` escapes) when it
/// starts with a quote, else the rest of the line.
fn definition(rest: &str) -> String {
    let rest = rest.trim();
    let Some(body) = rest.strip_prefix('"') else {
        return rest.to_owned();
    };
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('"' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '"' => return out,
            c => out.push(c),
        }
    }
    // No closing quote: Squid would take the text as is.
    rest.to_owned()
}

fn read_conf(
    text: &str,
    file: &Path,
    read_include: &mut ReadInclude<'_>,
    st: &mut State,
    depth: usize,
) -> Result<(), ConfError> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(ConfError::IncludeDepth {
            path: file.to_path_buf(),
            depth: MAX_INCLUDE_DEPTH,
        });
    }
    let here = |line: usize| format!("{}:{line}", file.display());
    for (n, l) in logical_lines(text) {
        let (directive, rest) = word(&l);
        match directive {
            "include" => {
                for pattern in rest.split_whitespace() {
                    let p = Path::new(pattern);
                    let p = if p.is_absolute() {
                        p.to_path_buf()
                    } else {
                        file.parent().unwrap_or(Path::new("/")).join(p)
                    };
                    let files = read_include(&p).map_err(|message| ConfError::Include {
                        path: file.to_path_buf(),
                        line: n,
                        pattern: pattern.to_owned(),
                        message,
                    })?;
                    for (child, content) in files {
                        st.included += 1;
                        if st.included > MAX_INCLUDED_FILES {
                            return Err(ConfError::TooManyIncludes {
                                path: child,
                                limit: MAX_INCLUDED_FILES,
                            });
                        }
                        read_conf(&content, &child, read_include, st, depth + 1)?;
                    }
                }
            }
            "logformat" => {
                let (name, def) = word(rest);
                if name.is_empty() || def.is_empty() {
                    st.notes.push(format!(
                        "{}: logformat without a definition, ignored",
                        here(n)
                    ));
                } else if Format::builtin(name).is_some() || st.formats.contains_key(name) {
                    st.notes.push(format!(
                        "{}: logformat {name} is already defined; ignoring the redefinition",
                        here(n)
                    ));
                } else {
                    let f = Format::from_logformat(&definition(def)).map_err(|source| {
                        ConfError::BadFormat {
                            path: file.to_path_buf(),
                            line: n,
                            name: name.to_owned(),
                            source,
                        }
                    })?;
                    st.formats.insert(name.to_owned(), f);
                }
            }
            "access_log" | "cache_access_log" => {
                st.any_access_log = true;
                access_log(rest, file, n, st);
            }
            "if" | "else" | "endif" => st.notes.push(format!(
                "{}: conditional blocks are not evaluated; every branch is read",
                here(n)
            )),
            _ => {}
        }
    }
    Ok(())
}

fn access_log(rest: &str, file: &Path, n: usize, st: &mut State) {
    let mut words = rest.split_whitespace();
    let Some(place) = words.next() else {
        st.notes
            .push(format!("{}:{n}: empty access_log line", file.display()));
        return;
    };
    let path = if place == "none" {
        return;
    } else if let Some(p) = place
        .strip_prefix("stdio:")
        .or_else(|| place.strip_prefix("daemon:"))
    {
        p
    } else if place.starts_with('/') {
        place
    } else {
        st.notes.push(format!(
            "{}:{n}: access_log {place} is not a file (syslog, udp, tcp or another module); skipped",
            file.display()
        ));
        return;
    };
    let mut format = None;
    let mut first = true;
    for w in words {
        if let Some(name) = w.strip_prefix("logformat=") {
            format = Some(name.to_owned());
        } else if first && !w.contains('=') {
            // The older positional form: a known format name right after the place; otherwise
            // it is the first ACL name (squid's parse_access_log does the same guess).
            if Format::builtin(w).is_some() || st.formats.contains_key(w) {
                format = Some(w.to_owned());
            }
        }
        first = false;
    }
    st.logs.push(AccessLog {
        path: PathBuf::from(path),
        file: file.to_path_buf(),
        line: n,
        format: format.unwrap_or_else(|| "squid".into()),
    });
}

/// Shell-style matching of one path against a pattern (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`);
/// `*` and `?` never match `/`. For include callbacks that list a directory themselves.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
        let mut i = 1;
        let negate = matches!(p.get(1), Some(b'!' | b'^'));
        if negate {
            i += 1;
        }
        let mut hit = false;
        let mut first = true;
        while i < p.len() && (first || p[i] != b']') {
            first = false;
            if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&e| e != b']') {
                hit |= (p[i]..=p[i + 2]).contains(&c);
                i += 3;
            } else {
                hit |= p[i] == c;
                i += 1;
            }
        }
        (i < p.len()).then_some((hit != negate, i + 1))
    }
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => (0..=t.len())
                .take_while(|&k| k == 0 || t[k - 1] != b'/')
                .any(|k| go(&p[1..], &t[k..])),
            Some(b'?') => t.first().is_some_and(|&c| c != b'/') && go(&p[1..], &t[1..]),
            Some(b'[') => match (t.first(), class(p, t.first().copied().unwrap_or(0))) {
                (Some(&c), Some((ok, len))) => c != b'/' && ok && go(&p[len..], &t[1..]),
                (Some(&c), None) => c == b'[' && go(&p[1..], &t[1..]),
                (None, _) => false,
            },
            Some(&c) => t.first() == Some(&c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), path.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_include(p: &Path) -> Result<Vec<(PathBuf, String)>, String> {
        Err(format!("unexpected include {}", p.display()))
    }

    fn run(text: &str) -> Discovery {
        discover_with_notes(text, Path::new("/etc/squid/squid.conf"), &mut no_include).unwrap()
    }

    fn summary(d: &Discovery) -> Vec<(String, String)> {
        d.sources
            .iter()
            .map(|s| (s.path.display().to_string(), s.format_name.clone()))
            .collect()
    }

    #[test]
    fn default_when_no_access_log() {
        let d = run("http_port 3128\n");
        assert_eq!(
            summary(&d),
            [("/var/log/squid/access.log".into(), "squid".into())]
        );
    }

    #[test]
    fn every_access_log_form() {
        let d = run(concat!(
            "# access_log /commented/out.log\n",
            "logformat short %ts.%03tu %>a %rm %ru\n",
            "logformat quoted \"%>a \\\"%rm\\\"\"\n",
            "logformat short %>a\n",
            "logformat squid %>a\n",
            "access_log daemon:/var/log/squid/access.log squid\n",
            "access_log stdio:/var/log/squid/short.log logformat=short buffer-size=64KB localnet\n",
            "access_log /var/log/squid/old.log common localnet\n",
            "access_log /var/log/squid/acl.log localnet\n",
            "access_log stdio:/var/log/squid/q.log logformat=quoted\n",
            "access_log syslog:daemon.info\n",
            "access_log udp://127.0.0.1:514 logformat=squid\n",
            "access_log tcp://127.0.0.1:514\n",
            "access_log none badguys\n",
            "access_log stdio:/var/log/squid/access.log logformat=combined\n",
        ));
        assert_eq!(
            summary(&d),
            [
                ("/var/log/squid/access.log".into(), "squid".into()),
                ("/var/log/squid/short.log".into(), "short".into()),
                ("/var/log/squid/old.log".into(), "common".into()),
                ("/var/log/squid/acl.log".into(), "squid".into()),
                ("/var/log/squid/q.log".into(), "quoted".into()),
            ]
        );
        assert_eq!(d.notes.len(), 6, "{:#?}", d.notes);
        let e = d.sources[1]
            .format
            .parse(b"1795835993.065 ::1 GET http://x/")
            .unwrap();
        assert_eq!(e.client_ip.as_deref(), Some("::1"));
        let e = d.sources[4].format.parse(br#"::1 "GET""#).unwrap();
        assert_eq!(e.method.as_deref(), Some("GET"));
    }

    #[test]
    fn continuation_lines_join() {
        let d = run("logformat split %>a \\\n %rm\naccess_log /l.log split\n");
        let e = d.sources[0].format.parse(b"::1  GET").unwrap();
        assert_eq!(e.method.as_deref(), Some("GET"));
    }

    #[test]
    fn only_none_means_no_logs() {
        assert!(run("access_log none\n").sources.is_empty());
    }

    #[test]
    fn unknown_format_and_bad_definition_are_errors() {
        let p = Path::new("/s.conf");
        let e = discover("access_log /a.log logformat=nope\n", p, &mut no_include).unwrap_err();
        assert!(matches!(e, ConfError::UnknownFormat { line: 1, .. }), "{e}");
        let e = discover("logformat bad %{x\n", p, &mut no_include).unwrap_err();
        assert!(matches!(e, ConfError::BadFormat { .. }), "{e}");
    }

    #[test]
    fn includes_with_globs_and_relative_paths() {
        let mut seen = 0;
        let mut read = |p: &Path| -> Result<Vec<(PathBuf, String)>, String> {
            seen += 1;
            match p.to_str() {
                Some("/etc/squid/conf.d/*.conf") => Ok(vec![
                    (
                        "/etc/squid/conf.d/a.conf".into(),
                        "logformat mine %>a %rm\n".into(),
                    ),
                    (
                        "/etc/squid/conf.d/b.conf".into(),
                        "include more.conf\n".into(),
                    ),
                ]),
                Some("/etc/squid/conf.d/more.conf") => {
                    Ok(vec![(p.into(), "access_log /m.log mine\n".into())])
                }
                _ => Err("no such file".into()),
            }
        };
        let d = discover_with_notes(
            "include /etc/squid/conf.d/*.conf\n",
            Path::new("/etc/squid/squid.conf"),
            &mut read,
        )
        .unwrap();
        assert_eq!(summary(&d), [("/m.log".into(), "mine".into())]);
        let e = discover(
            "include missing.conf\n",
            Path::new("/etc/s.conf"),
            &mut read,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("/etc/s.conf:1: cannot include missing.conf"),
            "{e}"
        );
        assert_eq!(seen, 3);
    }

    #[test]
    fn include_loops_stop() {
        let mut read = |p: &Path| -> Result<Vec<(PathBuf, String)>, String> {
            Ok(vec![(p.into(), "include /loop\n".into())])
        };
        let e = discover("include /loop\n", Path::new("/s"), &mut read).unwrap_err();
        assert!(matches!(e, ConfError::IncludeDepth { .. }));
    }

    #[test]
    fn fanning_includes_stop_early() {
        // Each level includes the next one three times: 3^12 files if nothing stopped it.
        let mut calls = 0;
        let mut read = |p: &Path| -> Result<Vec<(PathBuf, String)>, String> {
            calls += 1;
            let level: u32 = p.to_str().unwrap()[2..].parse().unwrap();
            let next = format!("/d{}", level + 1);
            let body = if level < 12 {
                format!("include {next} {next} {next}\n")
            } else {
                String::new()
            };
            Ok(vec![(p.into(), body)])
        };
        let e = discover("include /d1\n", Path::new("/s"), &mut read).unwrap_err();
        assert!(matches!(e, ConfError::TooManyIncludes { .. }), "{e}");
        assert!(calls <= MAX_INCLUDED_FILES + 1, "{calls} callback calls");
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match(
            "/etc/squid/conf.d/*.conf",
            "/etc/squid/conf.d/debian.conf"
        ));
        assert!(!glob_match(
            "/etc/squid/conf.d/*.conf",
            "/etc/squid/conf.d/x/y.conf"
        ));
        assert!(!glob_match("/etc/*.conf", "/etc/a.conf.bak"));
        assert!(glob_match("/a/[0-9]?.c[!x]nf", "/a/1b.conf"));
        assert!(!glob_match("/a/[0-9]", "/a/x"));
        assert!(glob_match("/a/[", "/a/["));
    }
}
