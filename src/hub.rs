//! The hub: the history ring of serialized records and the broadcast that fans batches out.
//!
//! The tailer assigns ids (they are part of its checkpoint), serializes each entry once into a
//! [`Record`] and hands whole batches to [`Hub::publish`]. Every subscriber receives the same
//! `Arc<[Record]>`; the JSON bytes are shared, never encoded again per subscriber.
use bytes::Bytes;
use parsers::Entry;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// One entry as it goes on the wire: its id and its JSON text.
#[derive(Debug, Clone)]
pub struct Record {
    /// The entry's id (equal to the `id` inside `json`).
    pub id: u64,
    /// The entry serialized once, UTF-8 JSON object text.
    pub json: Bytes,
}

impl Record {
    /// Serializes `entry` with `id` set.
    pub fn new(id: u64, entry: &mut Entry<'_>) -> Record {
        entry.id = id;
        // Serializing an Entry cannot fail: every key is a string and every value plain data.
        let json = serde_json::to_vec(&*entry).unwrap_or_default();
        Record {
            id,
            json: Bytes::from(json),
        }
    }

    /// The JSON text as `&str` (always valid UTF-8: serde_json produced it).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.json).unwrap_or("")
    }
}

/// A batch of consecutive records, shared by every subscriber.
pub type Batch = Arc<[Record]>;

/// Result of asking the history for entries after an id.
#[derive(Debug)]
pub enum Replay {
    /// Every held record with an id greater than the one asked for (possibly none yet).
    Records(Vec<Record>),
    /// The history no longer reaches back that far: entries were lost to this subscriber.
    TooOld {
        /// The oldest id still held.
        oldest: u64,
    },
}

/// Broadcast of batches plus a bounded history of the latest records.
#[derive(Debug)]
pub struct Hub {
    /// Live fan-out; a receiver that falls more than `capacity` batches behind gets `Lagged`.
    tx: broadcast::Sender<Batch>,
    /// The last `history_cap` records, oldest first, for `since`/`backlog` and lag catch-up.
    history: Mutex<VecDeque<Record>>,
    /// Bound on `history`.
    history_cap: usize,
    /// Id of the last published record (0 before the first); lets a `since` ahead of it wait.
    last_id: watch::Sender<u64>,
    /// Subscribers connected now (for /api/health).
    subscribers: AtomicU64,
}

/// Capacity of the broadcast channel, in batches.
pub const BROADCAST_BATCHES: usize = 4096;

impl Hub {
    /// A hub that remembers `history_cap` records.
    pub fn new(history_cap: usize) -> Hub {
        let (tx, _) = broadcast::channel(BROADCAST_BATCHES);
        let (last_id, _) = watch::channel(0);
        Hub {
            tx,
            history: Mutex::new(VecDeque::with_capacity(history_cap.min(1 << 16))),
            history_cap: history_cap.max(1),
            last_id,
            subscribers: AtomicU64::new(0),
        }
    }

    /// Puts records into the history without broadcasting them (history rebuilt at start-up).
    pub fn preload(&self, records: impl IntoIterator<Item = Record>) {
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = None;
        for r in records {
            last = Some(r.id);
            h.push_back(r);
            if h.len() > self.history_cap {
                h.pop_front();
            }
        }
        if let Some(id) = last {
            self.last_id.send_replace(id);
        }
        drop(h);
    }

    /// Appends a batch of consecutive records to the history and broadcasts it.
    pub fn publish(&self, batch: Vec<Record>) {
        let Some(last) = batch.last().map(|r| r.id) else {
            return;
        };
        let batch: Batch = batch.into();
        // History, broadcast and last id change under one lock, so that broadcast order equals
        // history order even with several publishers, and a subscriber that subscribes and reads
        // the history under the same lock (see `subscribe_at`) sees every record exactly once.
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        for r in batch.iter() {
            h.push_back(r.clone());
        }
        while h.len() > self.history_cap {
            h.pop_front();
        }
        // An error only means nobody is subscribed right now.
        let _ = self.tx.send(batch);
        self.last_id.send_replace(last);
        drop(h);
    }

    /// A receiver of every batch published from now on, together with the id of the last record
    /// published before it (0 if none): live records then start exactly at that id + 1.
    pub fn subscribe_at(&self) -> (broadcast::Receiver<Batch>, u64) {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.tx.subscribe();
        let last = *self.last_id.borrow();
        drop(h);
        (rx, last)
    }

    /// History size in records (the bound, not the current fill).
    pub fn history_cap(&self) -> usize {
        self.history_cap
    }

    /// A receiver of every batch published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Batch> {
        self.tx.subscribe()
    }

    /// Watches the id of the last published record.
    pub fn watch_last_id(&self) -> watch::Receiver<u64> {
        self.last_id.subscribe()
    }

    /// Id of the last published record (0 if none).
    pub fn last_id(&self) -> u64 {
        *self.last_id.borrow()
    }

    /// Held records with id > `after`, or `TooOld` if some of them were already dropped.
    pub fn since(&self, after: u64) -> Replay {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let Some(first) = h.front().map(|r| r.id) else {
            return Replay::Records(Vec::new());
        };
        // `after` comes from a client (`since`): saturate rather than overflow at u64::MAX.
        let next = after.saturating_add(1);
        if next < first {
            return Replay::TooOld { oldest: first };
        }
        let skip = usize::try_from(next - first).unwrap_or(usize::MAX);
        Replay::Records(h.iter().skip(skip).cloned().collect())
    }

    /// The last `n` held records (fewer if the history holds fewer).
    pub fn backlog(&self, n: usize) -> Vec<Record> {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let skip = h.len().saturating_sub(n);
        h.iter().skip(skip).cloned().collect()
    }

    /// Oldest id held (None when empty).
    pub fn oldest_id(&self) -> Option<u64> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .front()
            .map(|r| r.id)
    }

    /// Counts a subscriber in; the guard counts it out when dropped.
    pub fn subscriber_guard(self: &Arc<Self>) -> SubscriberGuard {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        SubscriberGuard(self.clone())
    }

    /// Subscribers connected now.
    pub fn subscriber_count(&self) -> u64 {
        self.subscribers.load(Ordering::Relaxed)
    }
}

/// Keeps a subscriber counted while it lives.
#[derive(Debug)]
pub struct SubscriberGuard(Arc<Hub>);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64) -> Record {
        Record {
            id,
            json: Bytes::from(format!("{{\"id\":{id}}}")),
        }
    }

    #[test]
    fn since_returns_records_after_id_and_reports_too_old() {
        let hub = Hub::new(3);
        hub.publish((1..=5).map(rec).collect());
        match hub.since(3) {
            Replay::Records(r) => {
                assert_eq!(r.iter().map(|r| r.id).collect::<Vec<_>>(), vec![4, 5])
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(hub.since(1), Replay::TooOld { oldest: 3 }));
        assert!(matches!(hub.since(2), Replay::Records(ref r) if r.len() == 3));
        assert!(matches!(hub.since(9), Replay::Records(ref r) if r.is_empty()));
        assert!(matches!(hub.since(u64::MAX), Replay::Records(ref r) if r.is_empty()));
        assert_eq!(
            hub.backlog(2).iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![4, 5]
        );
        assert_eq!(hub.last_id(), 5);
    }

    #[test]
    fn subscribe_at_names_the_last_id_before_the_first_live_batch() {
        let hub = Hub::new(10);
        let (mut early, none) = hub.subscribe_at();
        assert_eq!(none, 0);
        hub.publish((1..=3).map(rec).collect());
        let (mut rx, last) = hub.subscribe_at();
        assert_eq!(last, 3);
        hub.publish(vec![rec(4)]);
        assert_eq!(rx.try_recv().unwrap()[0].id, 4);
        assert_eq!(early.try_recv().unwrap()[0].id, 1);
        hub.preload(vec![rec(9)]);
        assert_eq!(hub.subscribe_at().1, 9);
    }
}
