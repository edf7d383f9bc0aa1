//! The edge's publisher: a hub [`Subscription`] that starts after the last id its stream holds and
//! publishes every entry in id order, each with message id `<node>:<id>` and expected last sequence
//! `id - 1`, so the stream holds each entry exactly once at sequence = id.
//!
//! The subscription already replays disk → memory → live with a byte budget, so NATS being slow or
//! away never holds the tailer or local subscribers back: the publisher falls behind and catches up
//! from the journal. On any failure (NATS away, an acknowledgement missing, a refused sequence
//! after a lost acknowledgement) it waits, reads the stream's last sequence again and starts over
//! from there: in order, nothing twice.
use super::{stream_name, subject, Status, REQUEST_TIMEOUT, RETRY_EVERY};
use crate::config::Fleet;
use crate::filter::Filter;
use crate::hub::{Hub, Next, Start, Subscription};
use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Entries in flight (published, acknowledgement awaited) at most: enough to keep a loopback
/// round trip per batch, not per entry, off the throughput.
const IN_FLIGHT: usize = 1024;

/// Bytes of entries the publisher's subscription queues before it drops to catching up.
const BUDGET: usize = 4 << 20;

/// Publishes what `hub` makes to the stream of `node` until `token` is cancelled.
pub async fn run(
    hub: Arc<Hub>,
    fleet: Fleet,
    node: String,
    status: Arc<Status>,
    token: CancellationToken,
) {
    let client = match super::connect(&fleet, &status).await {
        Ok(c) => c,
        Err(e) => {
            // Only a credentials file that cannot be read gets here (the connection itself is
            // retried in the background); check-config reports it too.
            status.set_error(e);
            return;
        }
    };
    let js = jetstream::new(client.clone());
    let publisher = Publisher {
        hub,
        js,
        client,
        subject: subject(&node),
        stream: stream_name(&node),
        node,
        replicas: fleet.replicas,
        status,
    };
    loop {
        let outcome = tokio::select! {
            _ = token.cancelled() => return,
            r = publisher.session() => r,
        };
        if let Err(why) = outcome {
            publisher.status.set_error(why);
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(RETRY_EVERY) => {}
        }
    }
}

/// What one publishing session needs.
struct Publisher {
    hub: Arc<Hub>,
    js: jetstream::Context,
    /// For the connection state and the cluster size.
    client: async_nats::Client,
    subject: String,
    stream: String,
    node: String,
    /// `--nats-replicas`, or chosen from the cluster size.
    replicas: Option<usize>,
    status: Arc<Status>,
}

impl Publisher {
    /// Creates the stream if needed, then publishes from its last sequence on until a failure.
    async fn session(&self) -> Result<(), String> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err("not connected to NATS".into());
        }
        let last = self.stream_last_sequence().await?;
        self.status.stream_holds(last);
        self.status.clear_error();
        let mut sub = Subscription::new(
            self.hub.clone(),
            Start::Since(last),
            Filter::default(),
            BUDGET,
        );
        loop {
            match sub.next().await {
                Next::Entries(records) => {
                    for chunk in records.chunks(IN_FLIGHT) {
                        let mut acks: Vec<(u64, PublishAckFuture)> =
                            Vec::with_capacity(chunk.len());
                        for r in chunk {
                            let msg = jetstream::message::PublishMessage::build()
                                .payload(r.json.clone())
                                .message_id(format!("{}:{}", self.node, r.id))
                                .expected_last_sequence(r.id.saturating_sub(1));
                            match self.js.send_publish(self.subject.clone(), msg).await {
                                Ok(ack) => acks.push((r.id, ack)),
                                Err(e) => {
                                    self.status.failed();
                                    return Err(format!("publishing id {}: {e}", r.id));
                                }
                            }
                        }
                        let mut done = 0;
                        let mut last_id = 0;
                        for (id, ack) in acks {
                            match ack.await {
                                Ok(_) => {
                                    done += 1;
                                    last_id = id;
                                }
                                Err(e) => {
                                    self.status.published(done, last_id.max(last));
                                    self.status.failed();
                                    return Err(format!("id {id} not acknowledged: {e}"));
                                }
                            }
                        }
                        self.status.published(done, last_id);
                    }
                }
                Next::Gap { after, before } => {
                    // The journal no longer holds what the stream lacks: publishing on would break
                    // sequence = id. An operator decides (a longer retention, a new stream).
                    return Err(format!(
                        "the stream ends at {after} but the journal starts at {before}: ids {}..{} are gone",
                        after + 1,
                        before - 1
                    ));
                }
                // Fell behind the history and the journal could not serve it: start over.
                Next::Gone => {
                    return Err("publisher fell behind; restarting from the stream".into())
                }
                Next::End => return Ok(()),
            }
        }
    }

    /// The stream's last sequence (= the last id it holds), creating the stream if missing.
    async fn stream_last_sequence(&self) -> Result<u64, String> {
        let replicas = self.replicas.unwrap_or_else(|| {
            // connect_urls lists the client URLs of the cluster's servers.
            if self.client.server_info().connect_urls.len() >= 3 {
                3
            } else {
                1
            }
        });
        let config = stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.subject.clone()],
            num_replicas: replicas,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let mut stream =
            tokio::time::timeout(REQUEST_TIMEOUT, self.js.get_or_create_stream(config))
                .await
                .map_err(|_| format!("stream {}: no answer from NATS", self.stream))?
                .map_err(|e| format!("stream {}: {e}", self.stream))?;
        let info = tokio::time::timeout(REQUEST_TIMEOUT, stream.info())
            .await
            .map_err(|_| format!("stream {}: no answer from NATS", self.stream))?
            .map_err(|e| format!("stream {}: {e}", self.stream))?;
        Ok(info.state.last_sequence)
    }
}
