//! `proxytail user add|remove|list`: the operator's edits of the users file. The file model, name and
//! hash checks, hashing and the atomic rewrite (temporary file beside it with the old owner and mode,
//! fsync, rename, directory fsync) are [`crate::auth::users`]'; this module adds the command flow:
//! a missing file is an empty one, a broken file is never rewritten, a symlink's target is replaced
//! (the link stays), and the password is read before the file is re-read, so a concurrent edit made
//! while the password was typed is not lost.
use crate::auth::users::{self, UsersFile};
use crate::auth::HashError;
use crate::config::UserAction;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a `user` command failed. Each message names the file (and line) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum UsersCmdError {
    /// Neither `--users` nor the configuration file names a users file.
    #[error("no users file configured: set `users` in the configuration file or pass --users")]
    NotConfigured,
    /// The users file could not be read, parsed or written (the message names file and line).
    #[error(transparent)]
    File(#[from] users::UsersError),
    /// The user name cannot be stored in the file.
    #[error("invalid user name {name:?}: {why}")]
    BadName {
        /// The name given.
        name: String,
        /// Why it was refused.
        why: String,
    },
    /// `user add --view` got an expression the filter grammar refuses.
    #[error("invalid --view: {0}")]
    BadView(String),
    /// `user remove` named a user the file does not hold.
    #[error("no user {name:?} in {path}")]
    NoSuchUser {
        /// The name given.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// No acceptable password was read, or hashing failed.
    #[error("password: {0}")]
    Password(#[from] HashError),
    /// The confirmation could not be printed.
    #[error("cannot write to stdout: {0}")]
    Output(std::io::Error),
}

/// Reads and parses the users file at `path`; a missing file is an empty one when `missing_ok`.
fn load(path: &Path, missing_ok: bool) -> Result<UsersFile, UsersCmdError> {
    match UsersFile::load(path) {
        Err(users::UsersError::Read { source, .. })
            if missing_ok && source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(UsersFile::default())
        }
        other => Ok(other?),
    }
}

/// The file a rewrite replaces: a symlink's target, so the link itself survives.
fn target(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// Runs a `user` subcommand on the users file at `users`, printing to `out`. `user add` reads the
/// password twice without echo from the terminal, or one line of stdin when stdin is not a terminal.
pub fn run(
    action: &UserAction,
    users: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), UsersCmdError> {
    let path = users.ok_or(UsersCmdError::NotConfigured)?;
    match action {
        UserAction::List => {
            let file = load(path, true)?;
            let views: std::collections::HashMap<&str, &str> = file.views().collect();
            for (name, _) in file.users() {
                match views.get(name) {
                    Some(view) => writeln!(out, "{name}\tview: {view}"),
                    None => writeln!(out, "{name}"),
                }
                .map_err(UsersCmdError::Output)?;
            }
        }
        UserAction::Add { name, view } => {
            users::check_name(name).map_err(|why| UsersCmdError::BadName {
                name: name.clone(),
                why,
            })?;
            // Refuse a broken view before asking for a password.
            if let Some(view) = view {
                users::check_view(view).map_err(UsersCmdError::BadView)?;
            }
            // Refuse a broken file before asking for a password.
            load(path, true)?;
            let hash = crate::auth::hash_password_from_stdin()?;
            // Re-read: the file may have changed while the password was typed.
            let mut file = load(path, true)?;
            let existed = file.set(name, &hash, view.as_deref())?;
            file.write_atomic(&target(path))?;
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
            .map_err(UsersCmdError::Output)?;
        }
        UserAction::Remove { name } => {
            let mut file = load(path, false)?;
            if !file.remove(name) {
                return Err(UsersCmdError::NoSuchUser {
                    name: name.clone(),
                    path: path.to_owned(),
                });
            }
            file.write_atomic(&target(path))?;
            writeln!(
                out,
                "removed user {name} from {}; `systemctl reload proxytail` applies it",
                path.display()
            )
            .map_err(UsersCmdError::Output)?;
        }
    }
    Ok(())
}
