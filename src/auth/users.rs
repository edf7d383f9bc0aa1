//! The users file: one `name:HASH` or `name:HASH:VIEW` line per user (HASH an Argon2 PHC string,
//! which never holds a `:`; VIEW a filter expression, CONTRACT §6, that everything the user
//! subscribes to is narrowed by), `#` comments and blank lines kept verbatim; the Argon2 parameter limits a hash must respect; hashing a new password; and an
//! atomic rewrite that keeps the file's permissions. `proxytail user add|remove|list` builds on this.
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Largest accepted Argon2 memory cost, in KiB (1 GiB): a bigger one lets a users file exhaust memory.
pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
/// Largest accepted Argon2 time cost (passes).
pub const MAX_T_COST: u32 = 20;
/// Largest accepted Argon2 parallelism.
pub const MAX_P_COST: u32 = 16;
/// Longest accepted user name, in bytes.
pub const MAX_USER_BYTES: usize = 256;
/// Longest accepted password, in bytes; longer ones are refused before any hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Mode of a users file created from scratch: it holds hashes, so owner only.
const NEW_FILE_MODE: u32 = 0o600;

/// The users file could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read.
    #[error("cannot read users file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is invalid. The message never repeats the line (it may hold a hash).
    #[error("users file {path}, line {line}: {why}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// A user name or hash given to [`UsersFile::set`] is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The file could not be written.
    #[error("cannot write users file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A password could not be read or hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The password is empty.
    #[error("the password is empty")]
    Empty,
    /// The password is longer than [`MAX_PASSWORD_BYTES`]; it could never be used to log in.
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// The two passwords typed at the terminal differ.
    #[error("the passwords do not match")]
    Mismatch,
    /// The password could not be read.
    #[error("cannot read the password: {0}")]
    Read(#[from] std::io::Error),
    /// Argon2 refused the parameters or failed.
    #[error("argon2: {0}")]
    Argon2(String),
}

/// The parameters of a valid Argon2 PHC string, enough to hash another password the same way.
#[derive(Debug, Clone)]
pub struct HashParams {
    /// Argon2 variant (argon2id, argon2i, argon2d).
    pub algorithm: Algorithm,
    /// Argon2 version (0x13 for every current hash).
    pub version: Version,
    /// Memory, time, parallelism and output length.
    pub params: Params,
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// A comment or a blank line, kept verbatim so a rewrite does not lose it.
    Other(String),
    /// A user, the PHC string of their password and their view.
    User {
        /// The user name.
        name: String,
        /// The Argon2 PHC string.
        hash: String,
        /// The view's expression as written (checked with `Filter::parse`); `None`: sees everything.
        view: Option<String>,
    },
}

/// A parsed users file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsersFile {
    /// Every line, users and others, so that [`UsersFile::render`] reproduces the file.
    lines: Vec<Line>,
}

impl UsersFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<UsersFile, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_owned(),
            source,
        })?;
        UsersFile::parse(&text, path)
    }

    /// Parses `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<UsersFile, UsersError> {
        let mut file = UsersFile::default();
        for (index, raw) in text.lines().enumerate() {
            let err = |why: String| UsersError::Line {
                path: path.to_owned(),
                line: index + 1,
                why,
            };
            let Some(entry) = split_line(raw) else {
                file.lines.push(Line::Other(raw.trim_end().to_owned()));
                continue;
            };
            let (name, hash, view) = entry.map_err(|why| err(why.into()))?;
            check_name(name).map_err(&err)?;
            check_hash(hash).map_err(|why| err(format!("user {name}: {why}")))?;
            let view = view.map(check_view).transpose();
            let view = view.map_err(|why| err(format!("user {name}: {why}")))?;
            if file.get(name).is_some() {
                return Err(err(format!("user {name} appears twice")));
            }
            file.lines.push(Line::User {
                name: name.to_owned(),
                hash: hash.to_owned(),
                view: view.flatten().map(str::to_owned),
            });
        }
        Ok(file)
    }

    /// Every user with their PHC string, in file order.
    pub fn users(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|line| match line {
            Line::User { name, hash, .. } => Some((name.as_str(), hash.as_str())),
            Line::Other(_) => None,
        })
    }

    /// Every user with a view, and the view's expression, in file order.
    pub fn views(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|line| match line {
            Line::User {
                name,
                view: Some(view),
                ..
            } => Some((name.as_str(), view.as_str())),
            _ => None,
        })
    }

    /// The PHC string of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.users().find(|(n, _)| *n == name).map(|(_, h)| h)
    }

    /// Adds `name` or replaces their hash; true if the user already existed. `view`: `None` keeps
    /// an existing user's view (a password change does not widen or narrow what they see);
    /// `Some("")` removes it (the empty expression matches everything); else it is checked with
    /// `Filter::parse` and replaces it.
    pub fn set(&mut self, name: &str, hash: &str, view: Option<&str>) -> Result<bool, UsersError> {
        check_name(name).map_err(UsersError::Invalid)?;
        check_hash(hash).map_err(UsersError::Invalid)?;
        let view = view
            .map(check_view)
            .transpose()
            .map_err(UsersError::Invalid)?;
        for line in &mut self.lines {
            if let Line::User {
                name: n,
                hash: h,
                view: v,
            } = line
            {
                if n == name {
                    *h = hash.to_owned();
                    if let Some(view) = view {
                        *v = view.map(str::to_owned);
                    }
                    return Ok(true);
                }
            }
        }
        self.lines.push(Line::User {
            name: name.to_owned(),
            hash: hash.to_owned(),
            view: view.flatten().map(str::to_owned),
        });
        Ok(false)
    }

    /// Removes `name`; true if it was present.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|line| !matches!(line, Line::User { name: n, .. } if n == name));
        self.lines.len() != before
    }

    /// The file's text: every line in order, each ending with a newline.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Other(text) => out.push_str(text),
                Line::User { name, hash, view } => {
                    out.push_str(name);
                    out.push(':');
                    out.push_str(hash);
                    if let Some(view) = view {
                        out.push(':');
                        out.push_str(view);
                    }
                }
            }
            out.push('\n');
        }
        out
    }

    /// Replaces `path` atomically with [`UsersFile::render`]: a temporary file in the same directory
    /// with the old file's mode (and owner, where permitted; 0600 for a new file), fsync, rename, then
    /// fsync of the directory. A reader sees the old file or the new one, never a half-written one.
    pub fn write_atomic(&self, path: &Path) -> Result<(), UsersError> {
        let werr = |source| UsersError::Write {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let old = match std::fs::metadata(path) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(werr(e)),
        };
        let mode = old
            .as_ref()
            .map_or(NEW_FILE_MODE, |m| m.permissions().mode() & 0o7777);
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "users".to_owned());
        let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)?;
            // The umask may have narrowed the mode given at creation; set it exactly.
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
            if let Some(meta) = &old {
                use std::os::unix::fs::MetadataExt;
                // Keeping the owner needs privilege; an unprivileged rewrite keeps the writer's.
                let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
            }
            file.write_all(self.render().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            std::fs::File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(werr)
    }
}

/// A user line's parts: name, hash, and the view when there is a third field.
pub type LineParts<'a> = (&'a str, &'a str, Option<&'a str>);

/// The syntax of one line of a users file: `None` for a blank line or a `#` comment, else the name
/// before the first `:`, the hash up to the next `:` (a PHC string holds none) and the view after
/// it, if any (white space around the line removed), or why the line is not `name:HASH[:VIEW]`.
/// No part is checked here: [`check_name`], [`check_hash`] and [`check_view`] do that.
pub fn split_line(raw: &str) -> Option<Result<LineParts<'_>, &'static str>> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let Some((name, rest)) = line.split_once(':') else {
        return Some(Err("expected `name:HASH` or `name:HASH:VIEW`"));
    };
    Some(Ok(match rest.split_once(':') {
        Some((hash, view)) => (name, hash, Some(view)),
        None => (name, rest, None),
    }))
}

/// Checks a view with the filter grammar; `None` for the empty expression (it matches everything,
/// so it is no view at all). The message is the grammar's.
pub fn check_view(view: &str) -> Result<Option<&str>, String> {
    crate::filter::Filter::parse(view).map_err(|e| format!("view: {e}"))?;
    Ok((!view.trim().is_empty()).then_some(view))
}

/// Checks a user name: 1 to [`MAX_USER_BYTES`] bytes, no `:`, no whitespace or control characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty user name".into());
    }
    if name.len() > MAX_USER_BYTES {
        return Err(format!("user name longer than {MAX_USER_BYTES} bytes"));
    }
    if name
        .chars()
        .any(|c| c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err("user name contains `:`, whitespace or a control character".into());
    }
    Ok(())
}

/// Checks that `phc` is an Argon2 PHC string with a salt, an output and parameters within the limits;
/// returns its parameters. Error messages never repeat the hash.
pub fn check_hash(phc: &str) -> Result<HashParams, String> {
    let Some(rest) = phc.strip_prefix('$') else {
        return Err(
            "not an Argon2 PHC string (`$argon2id$v=19$...`); plaintext passwords are refused"
                .into(),
        );
    };
    let scheme = rest.split('$').next().unwrap_or_default();
    if !matches!(scheme, "argon2id" | "argon2i" | "argon2d") {
        return Err(
            "hash scheme is not Argon2 (argon2id, argon2i or argon2d); other schemes are refused"
                .into(),
        );
    }
    let hash = PasswordHash::new(phc).map_err(|e| format!("not a valid PHC hash string ({e})"))?;
    let algorithm =
        Algorithm::try_from(hash.algorithm).map_err(|_| "hash scheme is not Argon2".to_owned())?;
    let version = match hash.version {
        Some(v) => Version::try_from(v).map_err(|_| format!("unknown Argon2 version {v}"))?,
        None => Version::default(),
    };
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("hash has no salt or no output".into());
    }
    let params = Params::try_from(&hash).map_err(|e| format!("invalid Argon2 parameters ({e})"))?;
    if params.m_cost() > MAX_M_COST_KIB {
        return Err(format!(
            "memory cost m={} KiB is above the limit of {MAX_M_COST_KIB} KiB (1 GiB)",
            params.m_cost()
        ));
    }
    if params.t_cost() > MAX_T_COST {
        return Err(format!(
            "time cost t={} is above the limit of {MAX_T_COST}",
            params.t_cost()
        ));
    }
    if params.p_cost() > MAX_P_COST {
        return Err(format!(
            "parallelism p={} is above the limit of {MAX_P_COST}",
            params.p_cost()
        ));
    }
    Ok(HashParams {
        algorithm,
        version,
        params,
    })
}

/// Hashes `password` with Argon2id and the crate's recommended parameters (m=19 MiB, t=2, p=1).
pub fn hash_password(password: &str) -> Result<String, HashError> {
    hash_password_with(
        password,
        &HashParams {
            algorithm: Algorithm::Argon2id,
            version: Version::V0x13,
            params: Params::default(),
        },
    )
}

/// Hashes `password` with the given variant and parameters and a fresh random salt.
pub fn hash_password_with(password: &str, params: &HashParams) -> Result<String, HashError> {
    if password.is_empty() {
        return Err(HashError::Empty);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(HashError::TooLong);
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Argon2(e.to_string()))?;
    Argon2::new(params.algorithm, params.version, params.params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap(password: &str) -> String {
        let params = HashParams {
            algorithm: Algorithm::Argon2id,
            version: Version::V0x13,
            params: Params::new(1024, 1, 1, None).unwrap(),
        };
        hash_password_with(password, &params).unwrap()
    }

    #[test]
    fn split_line_separates_syntax_from_checks() {
        assert_eq!(split_line(""), None);
        assert_eq!(split_line("   \r"), None);
        assert_eq!(split_line("  # alice:x"), None);
        assert_eq!(
            split_line(" alice:$argon2id$x \r"),
            Some(Ok(("alice", "$argon2id$x", None)))
        );
        assert_eq!(split_line(":x:y"), Some(Ok(("", "x", Some("y")))));
        assert_eq!(
            split_line("a:$h:client:10.1.0.0/16 method:GET"),
            Some(Ok(("a", "$h", Some("client:10.1.0.0/16 method:GET"))))
        );
        assert!(split_line("no-colon").is_some_and(|r| r.is_err()));
    }

    #[test]
    fn render_reproduces_comments_and_users() {
        let text = format!(
            "# admins\n\nalice:{}\n  # indented\nbob:{}\n",
            cheap("a"),
            cheap("b")
        );
        let file = UsersFile::parse(&text, Path::new("u")).unwrap();
        assert_eq!(file.render(), text);
        assert_eq!(
            file.users().map(|(n, _)| n).collect::<Vec<_>>(),
            ["alice", "bob"]
        );
    }

    #[test]
    fn a_broken_view_refuses_the_file_naming_its_line() {
        let text = format!(
            "# x\nalice:{}:method:GET\nbob:{}:stauts:500\n",
            cheap("a"),
            cheap("b")
        );
        let e = UsersFile::parse(&text, Path::new("u"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("u, line 3") && e.contains("stauts"), "{e}");
        let ok = text.replace("stauts", "status");
        let file = UsersFile::parse(&ok, Path::new("u")).unwrap();
        let views: Vec<_> = file.views().collect();
        assert_eq!(views, [("alice", "method:GET"), ("bob", "status:500")]);
        assert_eq!(file.render(), ok);
    }

    #[test]
    fn set_and_remove() {
        let mut file = UsersFile::default();
        assert!(!file.set("alice", &cheap("a"), None).unwrap());
        assert!(file.set("alice", &cheap("b"), None).unwrap());
        assert!(file.set("bad:name", &cheap("b"), None).is_err());
        assert!(file.set("carol", "plaintext", None).is_err());
        // A view is checked, kept across a password change, and removed by the empty expression.
        assert!(file.set("dave", &cheap("d"), Some("stauts:500")).is_err());
        assert!(!file.set("dave", &cheap("d"), Some("method:GET")).unwrap());
        assert!(file.set("dave", &cheap("e"), None).unwrap());
        assert_eq!(file.views().collect::<Vec<_>>(), [("dave", "method:GET")]);
        let again = UsersFile::parse(&file.render(), Path::new("u")).unwrap();
        assert_eq!(again, file, "the view survives a rewrite");
        assert!(file.set("dave", &cheap("e"), Some("")).unwrap());
        assert_eq!(file.views().count(), 0);
        assert!(file.remove("dave"));
        assert!(file.remove("alice"));
        assert!(!file.remove("alice"));
        assert_eq!(file.users().count(), 0);
    }

    #[test]
    fn hashes_respect_limits() {
        let ok = cheap("pw");
        assert!(check_hash(&ok).is_ok());
        assert!(check_hash(&ok.replace("m=1024", "m=4194304"))
            .unwrap_err()
            .contains("memory cost"));
        assert!(check_hash(&ok.replace("t=1", "t=21"))
            .unwrap_err()
            .contains("time cost"));
        assert!(check_hash(&ok.replace("p=1", "p=17"))
            .unwrap_err()
            .contains("parallelism"));
        let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        assert!(check_hash(bcrypt).is_err());
        assert!(check_hash("hunter2").is_err());
    }

    #[test]
    fn hash_password_refuses_empty_and_huge() {
        assert!(matches!(hash_password(""), Err(HashError::Empty)));
        let huge = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(hash_password(&huge), Err(HashError::TooLong)));
    }
}
