//! The central: follows each node's stream as a source and merges the entries into one consecutive
//! id sequence of its own, each with `node` and `node_id`.
//!
//! One reader task per node holds an ordered JetStream consumer (it recreates itself after a
//! server or a connection is lost) starting after the position the central has checkpointed, and
//! hands each message to the merging loop. Per batch the order is the tailer's: ids → journal →
//! checkpoint (every node's stream sequence and the next id, replaced atomically) → hub. On start
//! the journal is cut to the checkpoint's next id, so after a SIGKILL at any moment no message is
//! given two ids and none is skipped: `since` on the central is exactly-once, as on one host.
//!
//! A message that is not an edge's entry (no `{"id":N,` object, a newline inside, a message id that
//! names another node or id) is counted in `skipped` and never given an id.
//!
//! The central's own privacy policy (CONTRACT §7) is applied to each entry before its id, record
//! and journal line, as the file source does: an edge that keeps raw values does not make the
//! central keep them.
use super::{stream_name, Status, REQUEST_TIMEOUT, RETRY_EVERY};
use crate::config::{Config, Fleet};
use crate::error::StartupError;
use crate::hub::{Hub, Record};
use crate::notify::Watchdog;
use crate::privacy::Privacy;
use crate::source::file::checkpoint::StateDir;
use crate::source::file::syncer::{Syncer, SYNC_EVERY};
use crate::source::file::TailHealth;
use crate::store::journal::{self, Journal};
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use parsers::Entry;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The central's checkpoint file in the state directory.
pub const CHECKPOINT_FILE: &str = "fleet-checkpoint.json";

/// Messages taken per batch at most (one journal append and one checkpoint per batch).
const BATCH: usize = 4096;

/// Messages a reader hands on at once at most (what the client had received already).
const READ_BATCH: usize = 512;

/// A reader that has received nothing for this long asks the stream whether it holds more: if it
/// does, the consumer is stalled (its server died) and is recreated, instead of waiting the ~60 s
/// of missed heartbeats async-nats' ordered consumer needs to notice.
const STALL_CHECK: Duration = Duration::from_secs(10);

/// What the central's checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    /// The id the next entry gets.
    next_id: u64,
    /// Per node, the last stream sequence taken (given an id or skipped).
    nodes: Vec<NodePosition>,
}

/// Where one node's stream was left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct NodePosition {
    node: String,
    seq: u64,
    /// The last `node_id` given a central id, to see gaps and stale repeats. Absent from a
    /// checkpoint written before gaps existed, when it was `seq` (sequence = id then).
    #[serde(default)]
    id: Option<u64>,
}

/// One message from a node's stream.
#[derive(Debug)]
struct Incoming {
    /// Index into the central's nodes.
    node: usize,
    /// Its stream sequence.
    seq: u64,
    /// Its headers, moved out of the message (the `Nats-Msg-Id` is read from them, uncopied).
    headers: Option<async_nats::HeaderMap>,
    payload: Bytes,
}

impl Incoming {
    /// Its `Nats-Msg-Id` header.
    fn msg_id(&self) -> Option<&str> {
        let id = self
            .headers
            .as_ref()?
            .get(async_nats::header::NATS_MESSAGE_ID)?;
        Some(id.as_str())
    }
}

/// Follows the nodes' streams and feeds the hub.
#[derive(Debug)]
pub struct Central {
    hub: Arc<Hub>,
    /// Shared with `/api/health` (no file sources; the fleet status hangs off it).
    health: Arc<TailHealth>,
    status: Arc<Status>,
    fleet: Fleet,
    /// Locked state directory; the lock lives as long as the central.
    state: StateDir,
    journal: Journal,
    next_id: u64,
    /// Node names and their last stream sequence taken, in `--nodes` order.
    positions: Vec<NodePosition>,
    /// The central's privacy policy, applied before an entry gets its record; `None` when it
    /// keeps all.
    privacy: Option<Privacy>,
    syncer: Syncer,
    last_sync: Instant,
    /// The checkpoint was replaced since the last `fsync`.
    dirty: bool,
    watchdog: Option<Watchdog>,
}

impl Central {
    /// Locks the state directory, loads the checkpoint and recovers the journal into `hub`.
    pub fn new(config: &Config, fleet: &Fleet, hub: Arc<Hub>) -> Result<Central, StartupError> {
        let state_err = |message: String| StartupError::State {
            path: config.state_dir.clone(),
            message,
        };
        let crate::config::FleetRole::Central { nodes } = &fleet.role else {
            return Err(StartupError::Other("not a central".into()));
        };
        let state = StateDir::open(&config.state_dir).map_err(|e| state_err(e.to_string()))?;
        let path = state.path().join(CHECKPOINT_FILE);
        let saved: Option<Checkpoint> = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(c) => Some(c),
                Err(e) => {
                    // Refusing to start beats giving ids twice: the operator decides.
                    return Err(state_err(format!("{}: {e}", path.display())));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(state_err(format!("{}: {e}", path.display()))),
        };
        let (journal, recovered) = Journal::open(
            state.path(),
            &journal::Options::from_config(config),
            saved.as_ref().map(|c| c.next_id),
        )
        .map_err(|e| state_err(format!("journal: {e}")))?;
        let next_id = saved.as_ref().map_or(recovered.last_id + 1, |c| c.next_id);
        let positions = nodes
            .iter()
            .map(|node| {
                let (seq, id) = saved
                    .as_ref()
                    .and_then(|c| c.nodes.iter().find(|p| &p.node == node))
                    .map_or((0, 0), |p| (p.seq, p.id.unwrap_or(p.seq)));
                NodePosition {
                    node: node.clone(),
                    seq,
                    id: Some(id),
                }
            })
            .collect();
        hub.preload(recovered.records);
        let health = Arc::new(TailHealth::default());
        let status = Arc::new(Status::central());
        health.attach_fleet(status.clone());
        let mut central = Central {
            hub,
            health,
            status,
            fleet: fleet.clone(),
            state,
            journal,
            next_id,
            positions,
            privacy: Privacy::new(config.privacy),
            syncer: Syncer::new(),
            last_sync: Instant::now(),
            dirty: false,
            watchdog: None,
        };
        central.health.entries_made(0, next_id);
        central
            .save_checkpoint(true)
            .map_err(|e| state_err(format!("{CHECKPOINT_FILE}: {e}")))?;
        Ok(central)
    }

    /// Shared health counters.
    pub fn health(&self) -> Arc<TailHealth> {
        self.health.clone()
    }

    /// The journal, for replays from it.
    pub fn store(&self) -> crate::store::Store {
        self.journal.store()
    }

    /// Sends systemd's watchdog keep-alives from [`Central::run`]'s loop.
    pub fn set_watchdog(&mut self, watchdog: Option<Watchdog>) {
        self.watchdog = watchdog;
    }

    /// Follows the streams until `token` is cancelled, then makes journal and checkpoint durable.
    pub async fn run(mut self, token: CancellationToken) {
        // Capacity in reader batches: enough for every reader to have a few waiting.
        let (tx, mut rx) = mpsc::channel::<Vec<Incoming>>(4 * self.positions.len().max(1));
        match super::connect(&self.fleet, &self.status).await {
            Ok(client) => {
                let js = jetstream::new(client);
                for (i, p) in self.positions.iter().enumerate() {
                    tokio::spawn(follow(
                        js.clone(),
                        i,
                        p.node.clone(),
                        p.seq,
                        tx.clone(),
                        self.status.clone(),
                        token.clone(),
                    ));
                }
            }
            Err(e) => self.status.set_error(e),
        }
        drop(tx);
        let mut buf = Vec::new();
        let mut tick = tokio::time::interval(SYNC_EVERY);
        loop {
            self.kick();
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                n = rx.recv_many(&mut buf, BATCH / READ_BATCH) => {
                    if n == 0 {
                        // No reader left (no connection): wait for the stop.
                        token.cancelled().await;
                        break;
                    }
                    if let Err(e) = self.commit(&mut buf) {
                        // The batch is neither journaled nor published: stop rather than lose
                        // or reorder it; a restart resumes from the checkpoint.
                        tracing::error!(error = %e, "central: journal or checkpoint write failed; stopping the fleet source");
                        self.status.set_error(format!("state write failed: {e}"));
                        token.cancelled().await;
                        break;
                    }
                }
                _ = tick.tick() => self.sync_in_background(),
            }
        }
        self.syncer.finish();
        if let Err(e) = self.journal.sync() {
            tracing::error!(error = %e, "journal sync at shutdown failed");
        }
        if let Err(e) = self.save_checkpoint(true) {
            tracing::error!(error = %e, "central checkpoint at shutdown failed");
        }
        tracing::info!(
            next_id = self.next_id,
            "central stopped; checkpoint written"
        );
    }

    fn kick(&mut self) {
        if let Some(w) = &mut self.watchdog {
            let hub = &self.hub;
            w.kick(|| crate::notify::status_line(hub.last_id(), hub.subscriber_count()));
        }
    }

    /// Gives each message of `batches` (left empty) that is an entry the next id, then journals,
    /// checkpoints, publishes.
    fn commit(&mut self, batches: &mut Vec<Vec<Incoming>>) -> std::io::Result<()> {
        let mut records = Vec::with_capacity(batches.iter().map(Vec::len).sum());
        let mut skipped = 0;
        let mut gaps = Vec::new();
        for m in batches.drain(..).flatten() {
            let Some(pos) = self.positions.get_mut(m.node) else {
                continue;
            };
            if m.seq <= pos.seq {
                // Already taken (a reader restarted behind its position).
                continue;
            }
            pos.seq = m.seq;
            let last = pos.id.unwrap_or(pos.seq);
            let made = entry_json(self.next_id, &pos.node, &m, self.privacy.as_mut(), last);
            match made {
                Some((node_id, json)) => {
                    if node_id > last + 1 {
                        tracing::warn!(node = %pos.node, after = last, before = node_id, "fleet: ids {}..{} of node {} never reached its stream (lost at the edge); marked on its next entry", last + 1, node_id - 1, pos.node);
                        gaps.push(node_id - last - 1);
                    }
                    pos.id = Some(node_id);
                    records.push(Record::from_json(self.next_id, json));
                    self.next_id += 1;
                }
                None => {
                    skipped += 1;
                    tracing::warn!(node = %pos.node, seq = m.seq, msg_id = ?m.msg_id(), bytes = m.payload.len(), "fleet: not a new entry of the node; skipped");
                }
            }
        }
        // Written even for a batch of skipped messages: their positions move on.
        self.journal.append(&records)?;
        self.save_checkpoint(false)?;
        for lost in gaps {
            self.status.gap(lost);
        }
        self.status.consumed(records.len() as u64, skipped);
        self.health.entries_made(records.len() as u64, self.next_id);
        self.hub.publish(records);
        Ok(())
    }

    fn save_checkpoint(&mut self, sync: bool) -> std::io::Result<()> {
        let cp = Checkpoint {
            next_id: self.next_id,
            nodes: self.positions.clone(),
        };
        let bytes = serde_json::to_vec(&cp).map_err(std::io::Error::other)?;
        self.state.save_file(CHECKPOINT_FILE, bytes, sync)?;
        self.dirty = !sync;
        Ok(())
    }

    /// At most once per [`SYNC_EVERY`], hands what was written since to the syncer thread.
    fn sync_in_background(&mut self) {
        if self.last_sync.elapsed() < SYNC_EVERY || self.syncer.busy() {
            return;
        }
        let checkpoint = self.dirty.then(|| self.state.path().join(CHECKPOINT_FILE));
        self.last_sync = Instant::now();
        self.dirty = false;
        self.syncer.submit_written(&mut self.journal, checkpoint);
    }
}

/// The edge id and the central's JSON of an edge's entry: `{"id":<id>,"node":…,"node_id":<edge
/// id>,` followed by the rest of the edge's object (after `privacy`, if any); or `None` when the
/// message is not a new entry of `node`: not an edge's entry, or an edge id not past `last`, the
/// last one given an id (a stream recreated and published again). An edge id past `last + 1`
/// follows a gap, marked on this entry as `"node_gap":{"after":<last>,"before":<edge id>}`.
fn entry_json(
    id: u64,
    node: &str,
    m: &Incoming,
    privacy: Option<&mut Privacy>,
    last: u64,
) -> Option<(u64, Bytes)> {
    let p = &m.payload;
    let rest = p.strip_prefix(b"{\"id\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest.get(digits) != Some(&b',') {
        return None;
    }
    let node_id: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    if node_id <= last {
        return None;
    }
    // The message id the edge set names this node and this id (a foreign publisher's does not).
    let named = m
        .msg_id()
        .and_then(|id| id.strip_prefix(node)?.strip_prefix(':'));
    if named.map(str::as_bytes) != Some(&rest[..digits]) {
        return None;
    }
    // One record per journal line: a raw newline (JSON whitespace) would split it.
    if memchr::memchr(b'\n', p).is_some() {
        return None;
    }
    let private;
    let tail = match privacy {
        Some(privacy) => {
            // Rewritten member by member, so `id` and its digits still open the object.
            private = private_json(privacy, p)?;
            private.get(6 + digits..)?
        }
        None => {
            // Well-formed JSON (an object: it opens with `{"id":`); checked without building
            // anything, since the central's filter fields include `node` and come later.
            serde_json::from_slice::<serde::de::IgnoredAny>(p).ok()?;
            &rest[digits..]
        }
    }; // starts with ','
    let mut out = Vec::with_capacity(p.len() + node.len() + 40);
    write!(
        out,
        "{{\"id\":{id},\"node\":\"{node}\",\"node_id\":{node_id}"
    )
    .ok()?;
    if node_id > last + 1 {
        write!(
            out,
            ",\"node_gap\":{{\"after\":{last},\"before\":{node_id}}}"
        )
        .ok()?;
    }
    out.extend_from_slice(tail);
    Some((node_id, Bytes::from(out)))
}

/// The edge's object with `privacy` applied: its `client_ip`, `user` and `destination` go through
/// [`Privacy::apply`] (the one place for the policy), every other member is copied as it came, in
/// its order. `None` if `json` is not an object or one of those fields is neither a string nor
/// null.
fn private_json(privacy: &mut Privacy, json: &[u8]) -> Option<Vec<u8>> {
    let Members(members) = serde_json::from_slice(json).ok()?;
    let mut entry = Entry::default();
    for (key, value) in &members {
        let field = match key.as_str() {
            "client_ip" => &mut entry.client_ip,
            "user" => &mut entry.user,
            "destination" => &mut entry.destination,
            _ => continue,
        };
        *field = serde_json::from_str::<Option<String>>(value.get())
            .ok()?
            .map(Cow::Owned);
    }
    privacy.apply(&mut entry);
    let mut out = Vec::with_capacity(json.len());
    out.push(b'{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).ok()?;
        out.push(b':');
        let field = match key.as_str() {
            "client_ip" => &entry.client_ip,
            "user" => &entry.user,
            "destination" => &entry.destination,
            _ => {
                out.extend_from_slice(value.get().as_bytes());
                continue;
            }
        };
        // A key given twice gets the policy's value both times: no raw copy stays behind.
        serde_json::to_writer(&mut out, field).ok()?;
    }
    out.push(b'}');
    Some(out)
}

/// A JSON object's members in their order, values as their text.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads the stream of `node` after sequence `after` into `tx` until `token` is cancelled,
/// starting over (from the last sequence handed on) after any failure.
async fn follow(
    js: jetstream::Context,
    index: usize,
    node: String,
    mut after: u64,
    tx: mpsc::Sender<Vec<Incoming>>,
    status: Arc<Status>,
    token: CancellationToken,
) {
    loop {
        let result = tokio::select! {
            _ = token.cancelled() => return,
            r = follow_once(&js, index, &node, &mut after, &tx) => r,
        };
        match result {
            Ok(()) => return, // the merging loop is gone: stopping
            Err(why) => status.set_error(format!("node {node}: {why}")),
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(RETRY_EVERY) => {}
        }
    }
}

async fn follow_once(
    js: &jetstream::Context,
    index: usize,
    node: &str,
    after: &mut u64,
    tx: &mpsc::Sender<Vec<Incoming>>,
) -> Result<(), String> {
    let name = stream_name(node);
    let mut stream = js
        .get_stream(&name)
        .await
        .map_err(|e| format!("stream {name}: {e}"))?;
    let deliver_policy = match *after {
        0 => consumer::DeliverPolicy::All,
        seq => consumer::DeliverPolicy::ByStartSequence {
            start_sequence: seq + 1,
        },
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("consumer on {name}: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("reading {name}: {e}"))?;
    loop {
        let m = match tokio::time::timeout(STALL_CHECK, messages.next()).await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(_) => {
                // Quiet: an idle stream, or a consumer on a server that died (the client notices
                // only after two missed 15 s heartbeats). The stream says which.
                let info = tokio::time::timeout(REQUEST_TIMEOUT, stream.info())
                    .await
                    .map_err(|_| format!("stream {name}: no answer from NATS"))?
                    .map_err(|e| format!("stream {name}: {e}"))?;
                let last = info.state.last_sequence;
                if last > *after {
                    return Err(format!(
                        "{name}: nothing delivered for {STALL_CHECK:?} while the stream holds up to {last} and {after} was taken: recreating the consumer"
                    ));
                }
                continue;
            }
        };
        // What the client has already received goes on as one batch: one hand-over and one wake
        // of the merging loop per batch, not per message.
        let mut batch = Vec::new();
        let mut failed = None;
        let mut next = Some(m);
        while let Some(m) = next {
            let (m, seq) = match m.map_err(|e| e.to_string()).and_then(|m| {
                let seq = m.info().map_err(|e| e.to_string())?.stream_sequence;
                Ok((m, seq))
            }) {
                Ok(taken) => taken,
                Err(e) => {
                    // What the batch holds still goes on: `after` is past it already.
                    failed = Some(format!("reading {name}: {e}"));
                    break;
                }
            };
            if seq > *after {
                *after = seq;
                let (message, _) = m.split();
                batch.push(Incoming {
                    node: index,
                    seq,
                    headers: message.headers,
                    payload: message.payload,
                });
            }
            next = if batch.len() < READ_BATCH {
                messages.next().now_or_never().flatten()
            } else {
                None
            };
        }
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            return Ok(());
        }
        if let Some(why) = failed {
            return Err(why);
        }
    }
    Err(format!("{name}: the consumer ended"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: Option<&str>, payload: &str) -> Incoming {
        Incoming {
            node: 0,
            seq: 1,
            headers: id.map(|id| {
                let mut h = async_nats::HeaderMap::new();
                h.insert(async_nats::header::NATS_MESSAGE_ID, id);
                h
            }),
            payload: Bytes::from(payload.to_owned()),
        }
    }

    #[test]
    fn an_edge_entry_gets_the_central_id_node_and_node_id_first() {
        let m = msg(Some("e1:7"), r#"{"id":7,"ts":1.5,"method":"GET"}"#);
        let (_, json) = entry_json(42, "e1", &m, None, 6).expect("an entry");
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"id":42,"node":"e1","node_id":7,"ts":1.5,"method":"GET"}"#
        );
    }

    #[test]
    fn foreign_and_malformed_messages_are_not_entries() {
        for (id, payload) in [
            (Some("e1:7"), "not json"),
            (Some("e1:7"), r#"{"id":7}"#),
            (Some("e1:7"), "{\"id\":7,\n\"a\":1}"),
            (Some("e1:7"), r#"{"id":7,"a":1"#),
            (Some("e1:7"), r#"{"idx":7,"a":1}"#),
            (Some("e2:7"), r#"{"id":7,"a":1}"#),
            (Some("e1:8"), r#"{"id":7,"a":1}"#),
            (None, r#"{"id":7,"a":1}"#),
            (Some("e1:7"), r#"[{"id":7,"a":1}]"#),
        ] {
            assert!(
                entry_json(1, "e1", &msg(id, payload), None, 0).is_none(),
                "{id:?} {payload:?}"
            );
        }
    }

    fn strict() -> Privacy {
        use crate::config::{ClientIpPrivacy, PrivacyPolicy, QueryPrivacy, UserPrivacy};
        Privacy::new(PrivacyPolicy {
            client_ip: ClientIpPrivacy::Truncate,
            user: UserPrivacy::Pseudonymize,
            query: QueryPrivacy::Strip,
        })
        .expect("not all keep")
    }

    #[test]
    fn the_central_policy_rewrites_only_the_private_fields_in_place() {
        let m = msg(
            Some("e1:7"),
            r#"{"id":7,"ts":1795835993.120,"client_ip":"10.20.30.47","destination":"http://h/p?q=secret","user":"alice","x":[1,{"user":"inner"}],"peer":null}"#,
        );
        let (_, json) = entry_json(42, "e1", &m, Some(&mut strict()), 6).expect("an entry");
        let text = std::str::from_utf8(&json).expect("utf-8");
        let v: serde_json::Value = serde_json::from_str(text).expect("JSON");
        assert!(
            text.starts_with(r#"{"id":42,"node":"e1","node_id":7,"ts":1795835993.120,"client_ip":"10.20.30.0","destination":"http://h/p","user":"p-"#),
            "{text}"
        );
        assert!(
            text.ends_with(r#","x":[1,{"user":"inner"}],"peer":null}"#),
            "{text}"
        );
        assert_eq!(v["user"].as_str().map(str::len), Some(14), "{text}");
    }

    #[test]
    fn a_repeated_or_escaped_private_key_keeps_no_raw_value() {
        let m = msg(
            Some("e1:7"),
            r#"{"id":7,"user":"alice","us\u0065r":"bob","client_ip":"h.example"}"#,
        );
        let (_, json) = entry_json(1, "e1", &m, Some(&mut strict()), 6).expect("an entry");
        let text = std::str::from_utf8(&json).expect("utf-8");
        assert!(
            !text.contains("alice") && !text.contains("bob") && !text.contains("h.example"),
            "{text}"
        );
        for payload in [
            r#"{"id":7,"user":5}"#,
            r#"{"id":7,"user":"a""#,
            r#"{"id":7,"user":"a"} x"#,
        ] {
            assert!(
                entry_json(1, "e1", &msg(Some("e1:7"), payload), Some(&mut strict()), 6).is_none(),
                "{payload}"
            );
        }
    }

    #[test]
    fn a_jump_in_node_id_is_marked_and_a_repeat_is_not_an_entry() {
        let m = msg(Some("e1:7"), r#"{"id":7,"method":"GET"}"#);
        let (node_id, json) = entry_json(42, "e1", &m, None, 3).expect("an entry");
        assert_eq!(node_id, 7);
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"id":42,"node":"e1","node_id":7,"node_gap":{"after":3,"before":7},"method":"GET"}"#
        );
        assert!(entry_json(42, "e1", &m, None, 7).is_none(), "taken already");
        assert!(
            entry_json(42, "e1", &m, None, 9).is_none(),
            "older than the last"
        );
    }

    #[test]
    fn a_checkpoint_from_before_gaps_reads_its_id_as_the_sequence() {
        let cp: Checkpoint =
            serde_json::from_str(r#"{"next_id":5,"nodes":[{"node":"e1","seq":4}]}"#).expect("old");
        assert_eq!(cp.nodes[0].id, None);
    }
}
