//! `proxytail user add|remove|list`: the users file as a document (comments and order kept) and its
//! safe rewrite — a temporary file beside it, same owner and mode, fsync, rename, directory fsync — so
//! a reader (the daemon reloading on SIGHUP) sees either the old file or the new one, never half.
use crate::config::UserAction;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of a users file created by `user add` when none existed: owner read/write, group read.
pub const NEW_FILE_MODE: u32 = 0o640;
/// Longest password accepted, in bytes (the daemon refuses longer ones before hashing).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest user name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Why a `user` command failed. Each message names the file (and line) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Neither `--users` nor the configuration file names a users file.
    #[error("no users file configured: set `users` in the configuration file or pass --users")]
    NotConfigured,
    /// The users file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The new users file could not be written; the old one is untouched.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file being replaced.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The users file has lines this command does not understand; it refuses to rewrite it.
    #[error("{path} has invalid lines, fix them first:{}", lines.iter().fold(String::new(), |mut s, p| { let _ = write!(s, "\n  line {}: {}", p.line, p.why); s }))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        lines: Vec<LineProblem>,
    },
    /// The user name cannot be stored in the file.
    #[error("invalid user name {name:?}: {why}")]
    BadName {
        /// The name given.
        name: String,
        /// Why it was refused.
        why: &'static str,
    },
    /// `user remove` named a user the file does not hold.
    #[error("no user {name:?} in {path}")]
    NoSuchUser {
        /// The name given.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// No acceptable password was read.
    #[error("password: {0}")]
    Password(String),
    /// Hashing failed (should not happen with the default parameters).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// One problem in a users file, by line number (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// Line number, counting from 1, so an editor can jump to it.
    pub line: usize,
    /// What is wrong with it.
    pub why: String,
}

/// One line of a users file.
#[derive(Debug, Clone)]
enum Line {
    /// A comment, a blank line or a line that did not parse: written back exactly as read.
    Verbatim(String),
    /// A `name:hash` entry.
    User {
        /// The name before the first `:`.
        name: String,
        /// The PHC string after it.
        hash: String,
    },
}

/// A users file: `name:$argon2id$...` lines, `#` comments and blank lines, in file order.
#[derive(Debug, Clone, Default)]
pub struct UsersFile {
    /// Every line, so a rewrite keeps the administrator's comments and order.
    lines: Vec<Line>,
}

impl UsersFile {
    /// Parses `text`, returning the document and every problem found (bad lines are kept verbatim).
    pub fn parse(text: &str) -> (UsersFile, Vec<LineProblem>) {
        let mut lines = Vec::new();
        let mut problems = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let number = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                lines.push(Line::Verbatim(raw.to_owned()));
                continue;
            }
            let Some((name, hash)) = trimmed.split_once(':') else {
                problems.push(LineProblem {
                    line: number,
                    why: "expected `name:HASH`".into(),
                });
                lines.push(Line::Verbatim(raw.to_owned()));
                continue;
            };
            let mut bad = false;
            if let Err(why) = check_name(name) {
                problems.push(LineProblem {
                    line: number,
                    why: format!("user name: {why}"),
                });
                bad = true;
            }
            if let Err(why) = check_hash(hash) {
                problems.push(LineProblem {
                    line: number,
                    why: format!("user {name:?}: {why}"),
                });
                bad = true;
            }
            if let Some(first) = seen.insert(name.to_owned(), number) {
                problems.push(LineProblem {
                    line: number,
                    why: format!("user {name:?} already defined on line {first}"),
                });
                bad = true;
            }
            if bad {
                lines.push(Line::Verbatim(raw.to_owned()));
            } else {
                lines.push(Line::User {
                    name: name.to_owned(),
                    hash: hash.to_owned(),
                });
            }
        }
        (UsersFile { lines }, problems)
    }

    /// The user names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            Line::User { name, .. } => Some(name.as_str()),
            Line::Verbatim(_) => None,
        })
    }

    /// Sets `name`'s hash, in place if the user exists (true), else appended (false).
    pub fn set(&mut self, name: &str, new_hash: String) -> bool {
        for line in &mut self.lines {
            if let Line::User { name: n, hash } = line {
                if n == name {
                    *hash = new_hash;
                    return true;
                }
            }
        }
        self.lines.push(Line::User {
            name: name.to_owned(),
            hash: new_hash,
        });
        false
    }

    /// Removes `name`; false if there was no such user.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, Line::User { name: n, .. } if n == name));
        self.lines.len() != before
    }

    /// The file's new text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Verbatim(s) => out.push_str(s),
                Line::User { name, hash } => {
                    out.push_str(name);
                    out.push(':');
                    out.push_str(hash);
                }
            }
            out.push('\n');
        }
        out
    }
}

/// A name the file format and the Basic scheme can carry: no `:`, no whitespace or control
/// characters, not starting with `#`, 1 to [`MAX_NAME_BYTES`] bytes.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("longer than 64 bytes");
    }
    if name.starts_with('#') {
        return Err("starts with `#`");
    }
    if name
        .chars()
        .any(|c| c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err("contains `:`, whitespace or a control character");
    }
    Ok(())
}

/// A hash the daemon can verify: an Argon2 PHC string with valid parameters.
pub fn check_hash(hash: &str) -> Result<(), String> {
    let phc = PasswordHash::new(hash).map_err(|e| format!("not a PHC hash string ({e})"))?;
    if argon2::Algorithm::new(phc.algorithm.as_str()).is_err() {
        return Err(format!(
            "algorithm {} is not Argon2 (use `proxytail user add`)",
            phc.algorithm
        ));
    }
    argon2::Params::try_from(&phc).map_err(|e| format!("invalid Argon2 parameters ({e})"))?;
    if phc.hash.is_none() {
        return Err("the PHC string has no hash".into());
    }
    Ok(())
}

/// Hashes `password` with Argon2id and the crate's default (OWASP-recommended) parameters.
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| UsersError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// Reads a password: twice without echo from the terminal when stdin is one, else one line of stdin.
pub fn read_password() -> Result<String, UsersError> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|e| UsersError::Password(e.to_string()))?;
        let again = rpassword::prompt_password("Repeat password: ")
            .map_err(|e| UsersError::Password(e.to_string()))?;
        if first != again {
            return Err(UsersError::Password("the two entries differ".into()));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| UsersError::Password(format!("cannot read stdin: {e}")))?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        line.strip_suffix('\r').unwrap_or(line).to_owned()
    };
    if password.is_empty() {
        return Err(UsersError::Password("empty".into()));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UsersError::Password(format!(
            "longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(password)
}

/// Reads and parses the users file at `path`; a missing file is an empty one.
fn load(path: &Path, missing_ok: bool) -> Result<UsersFile, UsersError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(UsersError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let (file, problems) = UsersFile::parse(&text);
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(UsersError::Syntax {
            path: path.to_owned(),
            lines: problems,
        })
    }
}

/// Replaces `path` with `contents` atomically, keeping its owner, group and mode (new files get
/// [`NEW_FILE_MODE`]). A symlink is followed: its target is replaced, the link stays.
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), UsersError> {
    let target = match fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_owned(),
        Err(source) => {
            return Err(UsersError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let err = |source| UsersError::Write {
        path: target.clone(),
        source,
    };
    let old = match fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(err(e)),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "users".into());
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        // 0600 until the owner is right, so the hashes are never readable by the wrong group.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        if let Some(m) = &old {
            std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()))?;
        }
        let mode = old
            .as_ref()
            .map_or(NEW_FILE_MODE, |m| m.permissions().mode() & 0o7777);
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&tmp, &target)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: the temporary file may not exist (open failed) or be gone (rename done).
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Runs a `user` subcommand on the users file at `users`, printing to `out`.
pub fn run(
    action: &UserAction,
    users: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), UsersError> {
    let path = users.ok_or(UsersError::NotConfigured)?;
    let io = |source| UsersError::Write {
        path: path.to_owned(),
        source,
    };
    match action {
        UserAction::List => {
            for name in load(path, true)?.names() {
                writeln!(out, "{name}").map_err(io)?;
            }
        }
        UserAction::Add { name } => {
            check_name(name).map_err(|why| UsersError::BadName {
                name: name.clone(),
                why,
            })?;
            // Refuse a broken file before asking for a password.
            load(path, true)?;
            let hash = hash_password(&read_password()?)?;
            // Re-read: the file may have changed while the password was typed.
            let mut file = load(path, true)?;
            let existed = file.set(name, hash);
            write_atomic(path, &file.render())?;
            let what = if existed {
                "changed password of"
            } else {
                "added"
            };
            writeln!(
                out,
                "{what} user {name} in {}; `systemctl reload proxytail` applies it",
                path.display()
            )
            .map_err(io)?;
        }
        UserAction::Remove { name } => {
            let mut file = load(path, false)?;
            if !file.remove(name) {
                return Err(UsersError::NoSuchUser {
                    name: name.clone(),
                    path: path.to_owned(),
                });
            }
            write_atomic(path, &file.render())?;
            writeln!(
                out,
                "removed user {name} from {}; `systemctl reload proxytail` applies it",
                path.display()
            )
            .map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2+JtO1vq0WwzIm5v2r1PUmRTh3tdr6ZBqHw0mP0OYvE";

    #[test]
    fn parse_keeps_comments_and_reports_every_bad_line_by_number() {
        let text =
            format!("# users\n\nalice:{HASH}\nbob\nal ice:{HASH}\ncarol:$md5$x\nalice:{HASH}\n");
        let (file, problems) = UsersFile::parse(&text);
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7], "{problems:?}");
        assert_eq!(file.names().collect::<Vec<_>>(), vec!["alice"]);
        assert_eq!(file.render(), text, "bad lines are written back verbatim");
    }

    #[test]
    fn set_replaces_in_place_and_remove_keeps_other_lines() {
        let (mut file, problems) = UsersFile::parse(&format!("# c\nalice:{HASH}\nbob:{HASH}\n"));
        assert!(problems.is_empty());
        assert!(file.set("alice", "NEW".into()));
        assert!(!file.set("carol", "C".into()));
        assert!(file.remove("bob"));
        assert!(!file.remove("bob"));
        assert_eq!(file.render(), "# c\nalice:NEW\ncarol:C\n");
    }

    #[test]
    fn hash_password_makes_a_verifiable_argon2id_phc_string() {
        use argon2::password_hash::PasswordVerifier;
        let hash = hash_password("s3cret").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        check_hash(&hash).expect("valid");
        let phc = PasswordHash::new(&hash).expect("phc");
        assert!(argon2::Argon2::default()
            .verify_password(b"s3cret", &phc)
            .is_ok());
        assert!(argon2::Argon2::default()
            .verify_password(b"other", &phc)
            .is_err());
    }

    #[test]
    fn names_that_break_the_format_are_refused() {
        for bad in ["", "a:b", "a b", "#x", "a\tb", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("alice.smith@example").is_ok());
    }
}
