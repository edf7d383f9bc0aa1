//! The fleet on NATS JetStream (CONTRACT §10): an edge publishes its entries to a stream of its own
//! (`publish`), a central follows the edges' streams as its source (`consume`).
//!
//! One stream per node, `PROXYTAIL_<node>` on subject `proxytail.<node>`, holding each of the
//! edge's entries exactly once as its JSON text: message id `<node>:<id>` and the expected last
//! sequence make the stream's sequence equal the edge's id, until a gap (entries the edge's
//! journal lost before they were published, `publish`) puts the id ahead by the entries lost.
//! This module holds what both sides share: the names, the connection options, and the counters
//! `/api/health` and `/metrics` read.
pub mod consume;
pub mod publish;

use crate::config::Fleet;
use crate::hub::Hub;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Name of the stream of `node`.
pub fn stream_name(node: &str) -> String {
    format!("PROXYTAIL_{node}")
}

/// Subject the entries of `node` are published on.
pub fn subject(node: &str) -> String {
    format!("proxytail.{node}")
}

/// How long a request to NATS (stream info, a publish acknowledgement) may take before it counts as
/// failed; a cluster electing a new leader after a server died answers within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Between two attempts after a failure (NATS away, a stream missing).
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Connects to `fleet.url` in the background: the client keeps reconnecting by itself, and what
/// happens to the connection is written into `status` (the reason `/api/health` shows).
pub async fn connect(fleet: &Fleet, status: &Arc<Status>) -> Result<async_nats::Client, String> {
    let mut options = async_nats::ConnectOptions::new()
        .name("proxytail")
        .retry_on_initial_connect()
        .connection_timeout(REQUEST_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        // Never give up: an outage ends when NATS returns, however long it was.
        .max_reconnects(None);
    options = secured(options, fleet).await?;
    let events = status.clone();
    options = options.event_callback(move |event| {
        let status = events.clone();
        async move { status.event(&event) }
    });
    options
        .connect(servers(&fleet.url)?)
        .await
        .map_err(|e| format!("{}: {e}", fleet.url))
}

/// The servers of a comma-separated URL list.
pub fn servers(url: &str) -> Result<Vec<async_nats::ServerAddr>, String> {
    url.split(',')
        .map(|u| {
            u.trim()
                .parse::<async_nats::ServerAddr>()
                .map_err(|e| format!("{u:?}: {e}"))
        })
        .collect()
}

/// Counters and state of the fleet side of a daemon, for `/api/health` and `/metrics`.
#[derive(Debug)]
pub struct Status {
    /// `edge` or `central`.
    role: &'static str,
    /// Connected to a NATS server now.
    connected: AtomicBool,
    /// The last problem seen (connection, stream, publish), cleared when things work again.
    error: Mutex<Option<String>>,
    /// Edge: entries acknowledged by JetStream (stored, or already held: a duplicate).
    published: AtomicU64,
    /// Edge: publish attempts that failed (timed out, refused); they are retried in order.
    failed: AtomicU64,
    /// Edge: the last id the stream is known to hold.
    acked: AtomicU64,
    /// Edge: the hub, for the id `pending` counts up to.
    hub: Option<Arc<Hub>>,
    /// Central: messages taken from the streams and given an id.
    consumed: AtomicU64,
    /// Central: messages that are not an edge's entry (foreign or malformed), skipped without id.
    skipped: AtomicU64,
    /// Gaps in a node's ids: entries an edge's journal no longer held when its stream needed
    /// them (edge), or jumps in a node's `node_id` (central).
    gaps: AtomicU64,
    /// Entries in those gaps, never published (edge) or never received (central).
    lost: AtomicU64,
}

impl Status {
    /// The status of an edge publishing what `hub` makes.
    pub fn edge(hub: Arc<Hub>) -> Status {
        Status::new("edge", Some(hub))
    }

    /// The status of a central.
    pub fn central() -> Status {
        Status::new("central", None)
    }

    fn new(role: &'static str, hub: Option<Arc<Hub>>) -> Status {
        Status {
            role,
            connected: AtomicBool::new(false),
            error: Mutex::new(Some("connecting to NATS".into())),
            published: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            hub,
            consumed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }

    fn event(&self, event: &async_nats::Event) {
        use async_nats::Event;
        match event {
            Event::Connected => {
                self.connected.store(true, Ordering::Relaxed);
                tracing::info!("connected to NATS");
            }
            Event::Disconnected | Event::Closed => {
                self.connected.store(false, Ordering::Relaxed);
                self.set_error(format!("NATS {event}"));
            }
            other => self.set_error(format!("NATS {other}")),
        }
    }

    /// Records a problem (logged once per distinct text).
    pub fn set_error(&self, why: String) {
        let mut e = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if e.as_deref() != Some(why.as_str()) {
            tracing::warn!(reason = %why, "fleet: {why}");
            *e = Some(why);
        }
    }

    /// Things work again.
    pub fn clear_error(&self) {
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Edge: `n` entries acknowledged, the last being `last_id`.
    pub fn published(&self, n: u64, last_id: u64) {
        self.published.fetch_add(n, Ordering::Relaxed);
        self.acked.store(last_id, Ordering::Relaxed);
    }

    /// Edge: the stream holds every id up to `last_id` (read from the stream itself).
    pub fn stream_holds(&self, last_id: u64) {
        self.acked.store(last_id, Ordering::Relaxed);
    }

    /// Edge: a publish failed.
    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// A gap of `lost` entries in a node's ids.
    pub fn gap(&self, lost: u64) {
        self.gaps.fetch_add(1, Ordering::Relaxed);
        self.lost.fetch_add(lost, Ordering::Relaxed);
    }

    /// Central: `made` messages became entries, `skipped` were not entries.
    pub fn consumed(&self, made: u64, skipped: u64) {
        self.consumed.fetch_add(made, Ordering::Relaxed);
        self.skipped.fetch_add(skipped, Ordering::Relaxed);
    }

    /// The figures, read at once.
    pub fn snapshot(&self) -> Snapshot {
        let acked = self.acked.load(Ordering::Relaxed);
        Snapshot {
            role: self.role,
            connected: self.connected.load(Ordering::Relaxed),
            error: self.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            published: self.published.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            pending: self
                .hub
                .as_ref()
                .map_or(0, |h| h.last_id().saturating_sub(acked)),
            consumed: self.consumed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            gaps: self.gaps.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }
}

/// [`Status`] copied out, as `/api/health` shows it under `fleet`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Snapshot {
    /// `edge` or `central`.
    pub role: &'static str,
    /// Connected to a NATS server now.
    pub connected: bool,
    /// Why things do not work, if they do not.
    pub error: Option<String>,
    /// Edge: entries acknowledged by JetStream.
    pub published: u64,
    /// Edge: failed publish attempts.
    pub failed: u64,
    /// Edge: entries made that the stream does not hold yet.
    pub pending: u64,
    /// Central: messages given an id.
    pub consumed: u64,
    /// Central: messages skipped (foreign or malformed).
    pub skipped: u64,
    /// Gaps in a node's ids (entries lost to the fleet before they were published).
    pub gaps: u64,
    /// Entries in those gaps.
    pub lost: u64,
}

/// `options` with the fleet's credentials file and CA (TLS required then), the same for the
/// daemon and `check-config`.
async fn secured(
    mut options: async_nats::ConnectOptions,
    fleet: &Fleet,
) -> Result<async_nats::ConnectOptions, String> {
    if let Some(creds) = &fleet.credentials {
        options = options
            .credentials_file(creds)
            .await
            .map_err(|e| format!("NATS credentials {}: {e}", creds.display()))?;
    }
    if let Some(ca) = &fleet.ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    Ok(options)
}

/// For `check-config`: connects to `fleet.url` once (no background retry) and asks for the
/// JetStream account; a central also looks for each node's stream. `Ok` lists what was verified;
/// `Err` says why NATS cannot serve this daemon.
pub fn probe(fleet: &Fleet) -> Result<Vec<String>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime to reach NATS: {e}"))?;
    runtime.block_on(async {
        let options = async_nats::ConnectOptions::new()
            .name("proxytail check-config")
            .connection_timeout(REQUEST_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT));
        let options = secured(options, fleet).await?;
        let client = tokio::time::timeout(REQUEST_TIMEOUT, options.connect(servers(&fleet.url)?))
            .await
            .map_err(|_| {
                format!(
                    "NATS at {} did not answer within {REQUEST_TIMEOUT:?}",
                    fleet.url
                )
            })?
            .map_err(|e| format!("NATS at {} is unreachable: {e}", fleet.url))?;
        let mut notes = vec![format!(
            "NATS at {} answers (server {} {})",
            fleet.url,
            client.server_info().server_name,
            client.server_info().version
        )];
        let js = async_nats::jetstream::new(client);
        js.query_account().await.map_err(|e| {
            format!(
                "NATS at {} has no JetStream for this account: {e}",
                fleet.url
            )
        })?;
        notes.push("JetStream is enabled".into());
        if let crate::config::FleetRole::Central { nodes } = &fleet.role {
            for node in nodes {
                let name = stream_name(node);
                match js.get_stream(&name).await {
                    Ok(_) => notes.push(format!("stream {name} of node {node} found")),
                    // An edge not started yet: the central waits for its stream.
                    Err(e) => notes.push(format!(
                        "stream {name} of node {node} not found yet ({e}); the central waits for it"
                    )),
                }
            }
        }
        Ok(notes)
    })
}
