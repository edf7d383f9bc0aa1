//! `proxytail demo`: a synthetic Squid log written a few times a second, served with a demo login.
use crate::config::Config;
use crate::error::StartupError;
use crate::shutdown::Signals;

/// Runs the demo until `signals.stop` fires.
pub async fn run(config: Config, signals: Signals) -> Result<(), StartupError> {
    crate::app::run_bound(config, signals).await
}
