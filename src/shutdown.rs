//! Signals: the first SIGTERM (systemd's stop signal) or SIGINT ends the daemon; SIGHUP reloads.
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// How long subscribers and tasks get to finish after a stop signal; below the unit's `TimeoutStopSec`.
pub const GRACE: Duration = Duration::from_secs(5);

/// What the outside world asks of a running daemon.
#[derive(Debug)]
pub struct Signals {
    /// Resolves once when the daemon must stop.
    pub stop: tokio::sync::oneshot::Receiver<()>,
    /// One message per reload request.
    pub reload: mpsc::Receiver<()>,
}

/// Handles for a test or an embedder to drive a daemon started with [`Signals`].
#[derive(Debug)]
pub struct Control {
    /// Send to stop the daemon.
    pub stop: tokio::sync::oneshot::Sender<()>,
    /// Send to reload users, keys and configuration.
    pub reload: mpsc::Sender<()>,
}

/// A connected pair: the daemon keeps `Signals`, the caller keeps `Control`.
pub fn channel() -> (Control, Signals) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let (reload_tx, reload_rx) = mpsc::channel(4);
    (
        Control {
            stop: stop_tx,
            reload: reload_tx,
        },
        Signals {
            stop: stop_rx,
            reload: reload_rx,
        },
    )
}

/// `Signals` fed by the process's real SIGTERM/SIGINT/SIGHUP. Must be called inside a runtime.
pub fn on_signals() -> std::io::Result<Signals> {
    let (control, signals) = channel();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let Control { stop, reload } = control;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    // A full queue already holds a pending reload, which is as good.
                    let _ = reload.try_send(());
                }
            }
        }
        let _ = stop.send(());
    });
    Ok(signals)
}
