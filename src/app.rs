//! The wiring: bind, build the hub, start the tailer and the HTTP server on one task tracker, wait
//! for the stop signal, then drain in order (stop producing, close subscribers, flush checkpoints).
use crate::auth::Authenticator;
use crate::config::Config;
use crate::error::StartupError;
use crate::http::{self, AppState};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::notify::{status_line, Notifier, Watchdog};
use crate::sessions::{SessionLimits, SessionStore};
use crate::shutdown::{Signals, GRACE};
use crate::source::file::Tailer;
use crate::source::nats;
use crate::tokens::TokenStore;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Binds `config.listen` and runs until `signals.stop` fires. The port is bound only once the
/// journal is recovered and every source positioned (CONTRACT section 9, "Ready means"): before
/// that a connection is refused rather than queued, so whoever reaches the daemon can append a
/// line knowing it will be sent.
pub async fn run_bound(config: Config, signals: Signals) -> Result<(), StartupError> {
    let parts = Parts::prepare(&config)?;
    let listener = bind_listener(config.listen).map_err(|source| StartupError::Bind {
        addr: config.listen,
        source,
    })?;
    serve(config, parts, listener, signals).await
}

/// Binds a listener like `TcpListener::bind` (with `SO_REUSEADDR`), plus `TCP_NODELAY`, which Linux
/// copies to every accepted socket: without it Nagle's algorithm holds small WebSocket frames back
/// until the previous ones are acknowledged (measured with `examples/ws_load`: write-to-receipt
/// p99 20-40 ms at 10 000 lines/s, 0.2-0.7 ms with it).
pub fn bind_listener(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Runs the daemon on an already bound `listener` until `signals.stop` fires, then shuts down
/// cleanly: subscribers get Close 1001, the tailer writes its checkpoint, and this returns `Ok`.
/// Connections queued on `listener` before the daemon is ready are answered once it is.
pub async fn run(
    config: Config,
    listener: TcpListener,
    signals: Signals,
) -> Result<(), StartupError> {
    let parts = Parts::prepare(&config)?;
    serve(config, parts, listener, signals).await
}

/// What must be ready before the port answers: the hub with the recovered history, the tailer
/// with every source positioned, the credentials.
struct Parts {
    hub: Arc<Hub>,
    tailer: Source,
    auth: Arc<Authenticator>,
}

// --- Fleet (issue 13): what makes the entries, log files or (a central) the edges' streams ---------
/// The source of entries: the tailer, or a fleet central.
enum Source {
    Files(Tailer),
    Central(nats::consume::Central),
}

impl Source {
    fn new(config: &Config, hub: Arc<Hub>) -> Result<Source, StartupError> {
        match &config.fleet {
            Some(
                f @ crate::config::Fleet {
                    role: crate::config::FleetRole::Central { .. },
                    ..
                },
            ) => Ok(Source::Central(nats::consume::Central::new(
                config, f, hub,
            )?)),
            _ => Ok(Source::Files(Tailer::new(config, hub)?)),
        }
    }

    fn store(&self) -> crate::store::Store {
        match self {
            Source::Files(t) => t.store(),
            Source::Central(c) => c.store(),
        }
    }

    fn health(&self) -> Arc<crate::source::file::TailHealth> {
        match self {
            Source::Files(t) => t.health(),
            Source::Central(c) => c.health(),
        }
    }

    fn set_watchdog(&mut self, watchdog: Option<Watchdog>) {
        match self {
            Source::Files(t) => t.set_watchdog(watchdog),
            Source::Central(c) => c.set_watchdog(watchdog),
        }
    }

    async fn run(self, token: CancellationToken) {
        match self {
            Source::Files(t) => t.run(token).await,
            Source::Central(c) => c.run(token).await,
        }
    }
}

/// An edge (`--publish`): the publisher, a hub subscription of its own, on the task tracker.
fn spawn_publisher(
    config: &Config,
    hub: &Arc<Hub>,
    health: &crate::source::file::TailHealth,
    tracker: &TaskTracker,
    token: &CancellationToken,
) {
    if let Some(f) = &config.fleet {
        if let crate::config::FleetRole::Edge { node } = &f.role {
            let status = Arc::new(nats::Status::edge(hub.clone()));
            health.attach_fleet(status.clone());
            tracker.spawn(nats::publish::run(
                hub.clone(),
                f.clone(),
                node.clone(),
                status,
                token.clone(),
            ));
        }
    }
}
// --- end of fleet block ----------------------------------------------------------------------------

impl Parts {
    fn prepare(config: &Config) -> Result<Parts, StartupError> {
        let hub = Arc::new(Hub::new(config.history));
        let tailer = Source::new(config, hub.clone())?;
        // Subscriptions older than the history replay from the journal (CONTRACT §8).
        hub.attach_store(tailer.store());
        let auth = Arc::new(Authenticator::load(config)?);
        Ok(Parts { hub, tailer, auth })
    }
}

async fn serve(
    config: Config,
    parts: Parts,
    listener: TcpListener,
    signals: Signals,
) -> Result<(), StartupError> {
    let Parts {
        hub,
        mut tailer,
        auth,
    } = parts;
    let Signals { stop, mut reload } = signals;
    let local = listener
        .local_addr()
        .map_err(|e| StartupError::Other(e.to_string()))?;
    if !local.ip().is_loopback() {
        tracing::warn!(%local, "listening on a non-loopback address: put a TLS reverse proxy in front");
    }
    // systemd: READY=1 below, STATUS= and WATCHDOG=1 from the tailing loop itself.
    let notifier = Notifier::from_env();
    tailer.set_watchdog(Watchdog::from_env(&notifier));
    let tokens = Arc::new(TokenStore::with_limits(
        config.token_ttl,
        config.max_tokens,
        config.max_tokens_per_user,
    ));
    let sessions = Arc::new(SessionStore::load(
        SessionLimits::of(&config),
        &config.state_dir,
    ));
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let state = AppState {
        hub: hub.clone(),
        auth: auth.clone(),
        tokens: tokens.clone(),
        sessions: sessions.clone(),
        health: tailer.health(),
        config: Arc::new(config.clone()),
        local_addr: local,
        shutdown: token.clone(),
        tracker: tracker.clone(),
        connections: Arc::new(http::Connections::default()),
        metrics: Arc::new(Metrics::default()),
    };

    // (2) the tailer: stops producing when the token is cancelled, then writes its checkpoint. Its
    // file I/O (opens, reads, fsyncs) blocks, so it runs on a blocking-pool thread of its own and
    // never holds a runtime worker: health and signals keep answering whatever the disk does.
    let runtime = tokio::runtime::Handle::current();
    let tail_token = token.clone();
    tracker.spawn_blocking(move || runtime.block_on(tailer.run(tail_token)));
    spawn_publisher(&config, &hub, &state.health, &tracker, &token);
    // Expired tokens are swept in the background.
    tracker.spawn(tokens.clone().sweep_until(token.clone()));
    tracker.spawn(sessions.clone().sweep_until(token.clone()));
    // (1) the HTTP server stops accepting when the token is cancelled.
    let limits = http::server::Limits {
        header_read: config.header_read_timeout,
        total: config.max_http_connections,
        per_ip: config.max_http_connections_per_ip,
    };
    tracker.spawn(http::server::run(
        http::routes(state),
        listener,
        limits,
        token.clone(),
    ));
    // Journal recovered and sources positioned (`Parts::prepare`), listener bound and served.
    notifier.ready(&status_line(hub.last_id(), hub.subscriber_count()));
    tracing::info!(%local, "proxytail listening");

    let mut stop = stop;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(()) = reload.recv() => match auth.reload() {
                Ok(()) => {
                    // A removed user, or a new password, ends the sessions opened with the old one.
                    // (It rewrites the sessions file: off the runtime's threads.)
                    let (store, users) = (sessions.clone(), auth.clone());
                    let ended = tokio::task::spawn_blocking(move || {
                        store.retain(|user, cred| users.credential_of(user).as_ref() == Some(cred))
                    })
                    .await
                    .unwrap_or(0);
                    tracing::info!(ended_sessions = ended, "reloaded users and keys");
                }
                Err(e) => tracing::error!(error = %e, "reload failed; keeping the previous users and keys"),
            },
        }
    }
    tracing::info!("stopping: closing subscribers and writing the checkpoint");
    notifier.stopping();
    // (3) each WebSocket loop sees the token, sends Close 1001 and returns.
    token.cancel();
    tracker.close();
    if tokio::time::timeout(GRACE, tracker.wait()).await.is_err() {
        tracing::warn!(
            tasks = tracker.len(),
            "tasks still running after the grace period"
        );
    }
    Ok(())
}
