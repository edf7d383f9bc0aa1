//! The edge's publisher: a hub [`Subscription`] that starts after the last id its stream holds and
//! publishes every entry in id order, each with message id `<node>:<id>` and the expected last
//! sequence the stream really has, so the stream holds each entry exactly once. Stream sequence =
//! id, until the journal lacks entries the stream never got (an outage longer than retention):
//! then the publisher counts the gap and goes on from the oldest entry held at the stream's next
//! sequence; from there the id is ahead of the sequence by the entries lost, and where a session
//! resumes comes from the message id of the stream's last message.
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
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Entries in flight (published, acknowledgement awaited) at most. A catch-up's throughput is this
/// window over the acknowledgement's round trip, which a loaded 3-server cluster stretches to a few
/// hundred ms (BENCHMARKS §12); below async-nats' own limit of acknowledgements pending (5,000 by
/// default), so `send_publish` never waits on that.
const IN_FLIGHT: usize = 4096;

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
        subject: subject(&node).into(),
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

/// One published entry whose acknowledgement is awaited.
struct Flight {
    /// Its edge id.
    id: u64,
    /// Entries lost just before it, counted once it is acknowledged.
    gap: Option<u64>,
    ack: PublishAckFuture,
}

/// What one publishing session needs.
struct Publisher {
    hub: Arc<Hub>,
    js: jetstream::Context,
    /// For the connection state and the cluster size.
    client: async_nats::Client,
    /// Cloned per message: a `Subject` shares its bytes.
    subject: async_nats::Subject,
    stream: String,
    node: String,
    /// `--nats-replicas`, or chosen from the cluster size.
    replicas: Option<usize>,
    status: Arc<Status>,
}

impl Publisher {
    /// Creates the stream if needed, then publishes from the last id it holds on until a failure.
    /// Publishing and awaiting the acknowledgements run side by side: up to [`IN_FLIGHT`] entries
    /// are out at once, across the hub's batches, so a backlog never waits for a flight to empty
    /// before the next entry leaves.
    async fn session(&self) -> Result<(), String> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err("not connected to NATS".into());
        }
        let StreamEnd { seq, id: last } = self.stream_end().await?;
        self.status.stream_holds(last);
        self.status.clear_error();
        let sub = Subscription::new(
            self.hub.clone(),
            Start::Since(last),
            Filter::default(),
            BUDGET,
        );
        // The channel's capacity is the window: a full one holds the publishing side back.
        let (flights, acks) = mpsc::channel(IN_FLIGHT);
        let acking = self.await_acks(acks);
        tokio::pin!(acking);
        tokio::select! {
            // Publishing ended (the hub closed): its sender is dropped, the acknowledgements of
            // what is out are still awaited.
            r = self.publish_from(sub, seq, flights) => {
                r?;
                acking.await
            }
            // An acknowledgement failed: publishing stops where it is; the next session starts
            // from what the stream holds.
            r = &mut acking => r,
        }
    }

    /// Publishes what `sub` yields, in id order, each expecting the sequence its predecessor
    /// takes (`seq` is the stream's last at the start), handing each acknowledgement to `flights`.
    async fn publish_from(
        &self,
        mut sub: Subscription,
        mut seq: u64,
        flights: mpsc::Sender<Flight>,
    ) -> Result<(), String> {
        // Entries the journal no longer had before the next one published: counted once that one
        // is acknowledged (a session that fails before then meets the same gap again).
        let mut gap: Option<u64> = None;
        let mut msg_id = String::with_capacity(self.node.len() + 21);
        loop {
            match sub.next().await {
                Next::Entries(records) => {
                    for r in records {
                        msg_id.clear();
                        // Writing to a String cannot fail.
                        let _ = write!(msg_id, "{}:{}", self.node, r.id);
                        let msg = jetstream::message::PublishMessage::build()
                            .payload(r.json.clone())
                            .message_id(&msg_id)
                            .expected_last_sequence(seq);
                        let ack = match self.js.send_publish(self.subject.clone(), msg).await {
                            Ok(ack) => ack,
                            Err(e) => {
                                self.status.failed();
                                return Err(format!("publishing id {}: {e}", r.id));
                            }
                        };
                        // Each accepted message takes the next sequence.
                        seq += 1;
                        let flight = Flight {
                            id: r.id,
                            gap: gap.take(),
                            ack,
                        };
                        if flights.send(flight).await.is_err() {
                            // The acknowledging side has ended with the reason.
                            return Ok(());
                        }
                    }
                }
                Next::Gap { after, before } => {
                    // The journal no longer holds what the stream lacks (an outage longer than
                    // retention): those entries are lost to the fleet. Publishing goes on from
                    // the oldest one held, at the stream's next sequence; the central sees the
                    // jump in `node_id` and marks it.
                    let lost = before.saturating_sub(after + 1);
                    tracing::warn!(
                        after,
                        before,
                        lost,
                        "fleet: the journal no longer holds ids {}..{} the stream lacks; publishing on from {before}",
                        after + 1,
                        before - 1
                    );
                    gap = Some(lost);
                }
                // Fell behind the history and the journal could not serve it: start over.
                Next::Gone => {
                    return Err("publisher fell behind; restarting from the stream".into())
                }
                Next::End => return Ok(()),
            }
        }
    }

    /// Awaits the acknowledgements in publishing order until `acks` is closed and empty (`Ok`) or
    /// one fails (`Err`, the rest dropped unawaited).
    async fn await_acks(&self, mut acks: mpsc::Receiver<Flight>) -> Result<(), String> {
        while let Some(Flight { id, gap, ack }) = acks.recv().await {
            if let Err(e) = ack.await {
                self.status.failed();
                return Err(format!("id {id} not acknowledged: {e}"));
            }
            self.status.published(1, id);
            if let Some(lost) = gap {
                self.status.gap(lost);
            }
        }
        Ok(())
    }

    /// Where the stream ends (creating it if missing): its last sequence and the edge id of the
    /// message there, read from its message id `<node>:<id>`. Without a gap the two are equal;
    /// after one, the id is ahead of the sequence by the entries lost.
    async fn stream_end(&self) -> Result<StreamEnd, String> {
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
            subjects: vec![self.subject.to_string()],
            num_replicas: replicas,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let no_answer = || format!("stream {}: no answer from NATS", self.stream);
        let mut stream =
            tokio::time::timeout(REQUEST_TIMEOUT, self.js.get_or_create_stream(config))
                .await
                .map_err(|_| no_answer())?
                .map_err(|e| format!("stream {}: {e}", self.stream))?;
        let info = tokio::time::timeout(REQUEST_TIMEOUT, stream.info())
            .await
            .map_err(|_| no_answer())?
            .map_err(|e| format!("stream {}: {e}", self.stream))?;
        let seq = info.state.last_sequence;
        if seq == 0 {
            return Ok(StreamEnd { seq, id: 0 });
        }
        let last = tokio::time::timeout(REQUEST_TIMEOUT, stream.get_raw_message(seq))
            .await
            .map_err(|_| no_answer())?
            .map_err(|e| format!("stream {}: message {seq}: {e}", self.stream))?;
        let id = last
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .and_then(|v| edge_id(v.as_str(), &self.node));
        // A last message that is not this node's entry (published by someone else): the stream
        // cannot say where the edge was; sequence = id is the rule it was published under.
        Ok(StreamEnd {
            seq,
            id: id.unwrap_or(seq),
        })
    }
}

/// Where a node's stream ends.
struct StreamEnd {
    /// Its last sequence.
    seq: u64,
    /// The edge id of the entry there.
    id: u64,
}

/// The edge id in message id `<node>:<id>`, if it is one of `node`'s.
pub(super) fn edge_id(msg_id: &str, node: &str) -> Option<u64> {
    msg_id.strip_prefix(node)?.strip_prefix(':')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::edge_id;

    #[test]
    fn the_edge_id_comes_from_this_node_s_message_id_only() {
        assert_eq!(edge_id("e1:42", "e1"), Some(42));
        assert_eq!(edge_id("e12:42", "e1"), None);
        assert_eq!(edge_id("e1:x", "e1"), None);
        assert_eq!(edge_id("e1-42", "e1"), None);
    }
}
