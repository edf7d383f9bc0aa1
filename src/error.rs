//! Start-up errors. Each message names the path or field it concerns.
use std::net::SocketAddr;
use std::path::PathBuf;

/// The configuration could not be turned into a [`crate::config::Config`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line did not parse (clap's error, which also carries `--help`/`--version`).
    #[error(transparent)]
    Cli(#[from] clap::Error),
    /// A file named by the configuration could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML configuration file is invalid.
    #[error("invalid configuration file {path}: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A setting has an unacceptable value.
    #[error("invalid setting {field}: {why}")]
    Invalid {
        /// The setting's name as on the command line.
        field: &'static str,
        /// Why it was refused.
        why: String,
    },
    /// A listen address that is not loopback without the explicit opt-in.
    #[error("listen address {0} is not loopback; set allow-non-loopback = true (and put a TLS reverse proxy in front) to accept it")]
    NonLoopback(SocketAddr),
}

/// The daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration was invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The state directory could not be used.
    #[error("state directory {path}: {message}")]
    State {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Users file, JWT secret or another credential source could not be loaded.
    #[error("{0}")]
    Auth(String),
    /// Something else went wrong at start.
    #[error("{0}")]
    Other(String),
}
