//! The hub: the history ring of records, and the subscriptions that read it.
//!
//! The tailer assigns ids (they are part of its checkpoint), serializes each entry once into a
//! [`Record`] (JSON text, plus the compact [`Fields`] filters look at, built only when a filter
//! needs them) and hands whole batches to [`Hub::publish`]. An unfiltered [`Subscription`] is a
//! cursor into the history, read at most a budget at a time, and woken by the publisher when it
//! waits for more. A filtered one is either *live*: the publisher matches each record against its
//! filter and queues the matches for it (records are shared, never copied), bounded in bytes by its
//! budget; or *catching up*: a cursor into the history as above. A live subscriber whose queue
//! would pass its budget drops to catching up; one the history has passed continues from the
//! journal (the attached [`Store`]) exactly as a `since` older than the history does, and is gone
//! (4008) only without a journal. So a subscriber that stops reading costs its budget and no more
//! (the socket closes it once it is [`Subscription::behind`] and stalled), one that reads loses
//! nothing however fast the log bursts, and the replay-then-live protocol (`since`, `backlog`, the
//! seam, gaps) lives here once, for every output. A journal replay (a `since`, a `from` time, or an
//! overtaken subscriber) hands over to the history under the hub lock; `until` ends the stream.
use crate::filter::{Fields, Filter, Hosts};
use crate::store::reader::{Chunk, Reader};
use crate::store::{record_ts, Store};
use bytes::Bytes;
use parsers::Entry;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Notify;

/// Subscriptions with a filter (or a view) open now, in this process. Only a hint for
/// [`Record::fields_now`]: while there are none, records are made without their filter fields, which are
/// then built from the JSON the first time a filter looks at them (equal either way).
static FILTERED_SUBSCRIPTIONS: AtomicUsize = AtomicUsize::new(0);

/// One entry as it goes on the wire: its id, its JSON text, and what filters look at.
#[derive(Debug, Clone)]
pub struct Record {
    /// The entry's id (equal to the `id` inside `json`).
    pub id: u64,
    /// The entry serialized once, UTF-8 JSON object text.
    pub json: Bytes,
    /// The filter fields, built at most once and shared by every clone (cloning a record
    /// allocates nothing); unfiltered subscribers never need them. Also says whether `json` is
    /// UTF-8 (in the slot's padding: a record stays 64 bytes, a test checks it).
    fields: FieldsSlot,
}

/// Where a record's lazily built filter fields live.
#[derive(Debug, Clone)]
enum FieldsSlot {
    /// A place in a table shared by the records made together (the tailer's chunk of ~50): one
    /// allocation per chunk instead of one per record, and 16 bytes per record until its fields
    /// are built (a `Fields` inline is ~250 bytes, in the history too).
    Shared {
        /// One cell per record of the chunk.
        table: Arc<[OnceLock<Box<Fields>>]>,
        /// This record's cell.
        slot: u32,
        /// See [`FieldsSlot::utf8`].
        utf8: bool,
    },
    /// A cell of the record's own, empty when the copy was made: what [`Record::to_send`] gives
    /// a subscriber that only sends the record. Cloning it touches no shared count (issue 14: a
    /// table's count, taken and given back per record per subscriber, is an atomic on a line
    /// every session shares; BENCHMARKS §20 put the records' counts at 9 % at 1,000 subscribers).
    Own {
        /// The fields, built from the JSON on first use.
        cell: OnceLock<Box<Fields>>,
        /// See [`FieldsSlot::utf8`].
        utf8: bool,
    },
}

impl FieldsSlot {
    /// The record's `json` is known to be UTF-8, so it can go out as a WebSocket text frame as
    /// it is. Decided once, when the record is made (by how, or by a check), rather than by every
    /// subscriber each time it sends the record (issue 14: once per subscriber per record was
    /// ~4.5 % of the daemon at 1,000 subscribers).
    fn utf8(&self) -> bool {
        match self {
            FieldsSlot::Shared { utf8, .. } | FieldsSlot::Own { utf8, .. } => *utf8,
        }
    }
}

impl Record {
    /// Serializes `entry` with `id` set, in a buffer of its own (the tailer shares one buffer
    /// between the records of a batch instead: `source::file::encode`).
    pub fn new(id: u64, entry: &mut Entry<'_>) -> Record {
        entry.id = id;
        let mut json = Vec::with_capacity(entry.json_size_hint());
        entry.write_json(&mut json);
        let fields = Record::fields_now(entry);
        // `write_json` writes the entry's `str`s and ASCII, nothing else.
        debug_assert!(
            std::str::from_utf8(&json).is_ok(),
            "write_json gave non-UTF-8"
        );
        Record::alone(id, Bytes::from(json), fields, true)
    }

    /// The records of entries serialized one after the other into `chunk` (by `Entry::write_json`,
    /// whose output is UTF-8: it writes the entry's `str`s and ASCII), one per `(id, start, end)`
    /// span, appended to `out`: they share the chunk and one table of filter fields, where
    /// `fields` holds those [`Record::fields_now`] gave, by index in `spans`.
    pub fn chunk_into(
        chunk: &Bytes,
        spans: &[(u64, usize, usize)],
        fields: impl IntoIterator<Item = (usize, Fields)>,
        out: &mut Vec<Record>,
    ) {
        let table: Arc<[OnceLock<Box<Fields>>]> =
            (0..spans.len()).map(|_| OnceLock::new()).collect();
        // Set afterwards rather than while collecting: a peeked `(usize, Fields)` is moved
        // (~250 bytes) for every record, most of which have none.
        for (i, f) in fields {
            if let Some(cell) = table.get(i) {
                let _ = cell.set(Box::new(f));
            }
        }
        debug_assert!(
            spans
                .iter()
                .all(|&(_, start, end)| std::str::from_utf8(&chunk[start..end]).is_ok()),
            "a chunk's record is not UTF-8"
        );
        out.extend(
            spans
                .iter()
                .enumerate()
                .map(|(i, &(id, start, end))| Record {
                    id,
                    json: chunk.slice(start..end),
                    fields: FieldsSlot::Shared {
                        table: table.clone(),
                        // A chunk holds far fewer than 2^32 records (`encode::CHUNK_BYTES`).
                        slot: i as u32,
                        utf8: true,
                    },
                }),
        );
    }

    /// A record with a fields table of its own.
    fn alone(id: u64, json: Bytes, fields: Option<Fields>, utf8: bool) -> Record {
        let cell = OnceLock::new();
        if let Some(f) = fields {
            let _ = cell.set(Box::new(f));
        }
        Record {
            id,
            json,
            fields: FieldsSlot::Shared {
                table: Arc::new([cell]),
                slot: 0,
                utf8,
            },
        }
    }

    /// The entry's filter fields while a filtered subscription is open, else `None` (built from
    /// the JSON later if ever needed). From the entry is cheaper than from the JSON, and done on
    /// the tailer's thread rather than under the hub lock. The tailer adds `source` as an extra
    /// field when it follows several files.
    pub fn fields_now(entry: &Entry<'_>) -> Option<Fields> {
        if FILTERED_SUBSCRIPTIONS.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let source = entry
            .extra
            .iter()
            .find(|(k, _)| k == "source")
            .and_then(|(_, v)| v.as_deref());
        Some(Fields::from_entry(entry, source))
    }

    /// A record read back as JSON text (the journal, a fleet stream); its filter fields are built
    /// when first needed. The text is checked for UTF-8 here, once, for every subscriber.
    pub fn from_json(id: u64, json: Bytes) -> Record {
        let utf8 = std::str::from_utf8(&json).is_ok();
        Record::alone(id, json, None, utf8)
    }

    /// The record's cell of its fields table (`slot` is below the table's length by
    /// construction).
    fn cell(&self) -> &OnceLock<Box<Fields>> {
        match &self.fields {
            FieldsSlot::Shared { table, slot, .. } => &table[*slot as usize],
            FieldsSlot::Own { cell, .. } => cell,
        }
    }

    /// A copy for a subscriber that sends the record and filters nothing: it shares the JSON but
    /// not the fields table, so taking it and dropping it after the write costs one shared count
    /// (the JSON's) instead of two. Its fields, should anything ask, are built from the JSON.
    fn to_send(&self) -> Record {
        Record {
            id: self.id,
            json: self.json.clone(),
            fields: FieldsSlot::Own {
                cell: OnceLock::new(),
                utf8: self.fields.utf8(),
            },
        }
    }

    /// What filters look at, built from the JSON on first use when the record was made without
    /// (unreadable text gets empty fields: they match no positive term, and the record is still
    /// sent to unfiltered subscribers).
    pub fn fields(&self) -> &Fields {
        self.cell()
            .get_or_init(|| Box::new(Fields::from_json(&self.json).unwrap_or_default()))
    }

    /// Whether `other` is a clone of this record sharing its fields table (tests check that an
    /// unfiltered subscriber's copies do not).
    #[cfg(test)]
    fn shares_fields_with(&self, other: &Record) -> bool {
        match (&self.fields, &other.fields) {
            (FieldsSlot::Shared { table: a, .. }, FieldsSlot::Shared { table: b, .. }) => {
                Arc::ptr_eq(a, b)
            }
            _ => false,
        }
    }

    /// Whether the filter fields were built (tests check that an unfiltered path never builds them).
    #[cfg(test)]
    pub(crate) fn fields_built(&self) -> bool {
        self.cell().get().is_some()
    }

    /// The JSON text as `&str` (empty for a damaged record read back, see [`Record::utf8_json`]).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.json).unwrap_or("")
    }

    /// The JSON text when it is UTF-8 (always, but for a damaged record read back), else `None`:
    /// what a WebSocket text frame may carry as it is, without another check.
    pub fn utf8_json(&self) -> Option<&Bytes> {
        self.fields.utf8().then_some(&self.json)
    }
}

/// The history, the live subscribers, and the last id, changed together under one lock.
#[derive(Debug)]
struct State {
    /// The last `history_cap` records, oldest first.
    history: VecDeque<Record>,
    /// The filtered subscriptions, for the publisher to queue into (live) or wake (catching up).
    subs: Vec<Arc<Shared>>,
    /// The unfiltered subscriptions that found nothing new in the history and wait for the next
    /// publish (each at most once: [`Shared::waiting`]). The publisher wakes and forgets them, and
    /// touches no other unfiltered subscription.
    waiters: Vec<Arc<Shared>>,
    /// Id of the last published record (0 before the first).
    last_id: u64,
}

/// The bounded history of the latest records and the subscriptions fed from it.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    /// Bound on the history.
    history_cap: usize,
    /// Subscribers connected now (for /api/health).
    subscribers: AtomicU64,
    /// The journal, for replays older than the history (CONTRACT §8); set once at start-up.
    store: std::sync::OnceLock<Store>,
}

impl Hub {
    /// A hub that remembers `history_cap` records.
    pub fn new(history_cap: usize) -> Hub {
        Hub {
            state: Mutex::new(State {
                history: VecDeque::with_capacity(history_cap.min(1 << 16)),
                subs: Vec::new(),
                waiters: Vec::new(),
                last_id: 0,
            }),
            history_cap: history_cap.max(1),
            subscribers: AtomicU64::new(0),
            store: std::sync::OnceLock::new(),
        }
    }

    /// Lets subscriptions replay from the journal what the history no longer holds.
    pub fn attach_store(&self, store: Store) {
        // Set once at start-up; a second call keeps the first store.
        let _ = self.store.set(store);
    }

    /// The journal, once attached.
    pub fn store(&self) -> Option<&Store> {
        self.store.get()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts records into the history (history rebuilt at start-up); same as publishing them.
    pub fn preload(&self, records: impl IntoIterator<Item = Record>) {
        self.publish(records.into_iter().collect());
    }

    /// Appends a batch of consecutive records to the history, queues the matching ones for every
    /// live filtered subscription and wakes those with something new (or catching up), and the
    /// unfiltered ones waiting for it.
    pub fn publish(&self, batch: Vec<Record>) {
        let Some(last) = batch.last().map(|r| r.id) else {
            return;
        };
        // One lock for history, queues and last id: a subscription that switches between the
        // history and its queue under it sees every record exactly once. The last id moves first,
        // before any subscriber is woken, so no reader of `last_id` (health, metrics) can see it
        // behind an entry already delivered.
        let mut st = self.lock();
        st.last_id = last;
        let mut wake = std::mem::take(&mut st.waiters);
        for sub in &wake {
            sub.waiting.store(false, Ordering::Relaxed);
        }
        // Looked up once for every subscription that needs hosts (none without filtered ones).
        let hosts: Vec<Option<&str>> = match st.subs.is_empty() {
            true => Vec::new(),
            false => batch.iter().map(|r| r.fields().host()).collect(),
        };
        let offered = st
            .subs
            .iter()
            .filter(|sub| !sub.passes_over(&hosts) && sub.offer(&batch))
            .cloned();
        wake.extend(offered);
        st.history.extend(batch);
        let excess = st.history.len().saturating_sub(self.history_cap);
        st.history.drain(..excess);
        // Woken after the lock is released: a woken subscriber's first step takes locks, and with
        // many subscribers the runtime's workers would otherwise queue on the hub lock while this
        // thread wakes the rest. (A subscriber that took its records before its wake-up finds
        // nothing and waits again; none is missed: `Notify` keeps the permit.)
        drop(st);
        for sub in &wake {
            sub.wake.notify_one();
        }
    }

    /// Id of the last published record (0 if none).
    pub fn last_id(&self) -> u64 {
        self.lock().last_id
    }

    /// Oldest id held (None when empty).
    pub fn oldest_id(&self) -> Option<u64> {
        self.lock().history.front().map(|r| r.id)
    }

    /// Subscribers connected now.
    pub fn subscriber_count(&self) -> u64 {
        self.subscribers.load(Ordering::Relaxed)
    }
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Entries published from now on.
    Live,
    /// Every held (matching) entry with an id greater than this, then live; a `since` ahead of the
    /// last id waits for those ids.
    Since(u64),
    /// The last n held (matching) entries, then live.
    Backlog(usize),
    /// From the first entry whose `ts` (epoch milliseconds) is at or after this, then live.
    From(i64),
}

/// What a subscription has for its subscriber next.
#[derive(Debug)]
pub enum Next {
    /// Matching records, ids increasing, about the byte budget at most.
    Entries(Vec<Record>),
    /// Entries with ids in `after+1 .. before` that this subscriber should have had are gone (its
    /// `since` reaches further back than the history).
    Gap {
        /// The last id the subscriber asked to be past.
        after: u64,
        /// The oldest id still held; entries resume from it.
        before: u64,
    },
    /// The history has moved past what this subscriber still needs and no journal is attached to
    /// continue from: too slow (4008).
    Gone,
    /// An entry at or after the subscription's `until` arrived: the window is complete (1000).
    End,
}

/// Most records looked at per lock while a filter skips non-matching ones in the history, so
/// publishers never wait behind a long scan.
const SCAN_PER_LOCK: usize = 4096;

/// What the publisher and the subscription share.
#[derive(Debug)]
struct Shared {
    /// The effective filter: the subscriber's view ANDed with what it asked for.
    filter: Filter,
    /// Unfiltered, on a hub with a journal: the subscription reads the history by its cursor, live
    /// or not, and has no queue (overtaken, it continues from the journal); the publisher only
    /// wakes it when it waits (`State::waiters`). Reading the shared
    /// history costs the publisher nothing per subscriber per record (issue 14: the queue's lock,
    /// a record clone and a push per record per subscriber, under the hub lock, were 13.5 % of the
    /// daemon at 1,000 subscribers), and costs the subscriber what taking from its queue did: a
    /// clone per record it takes. A filtered subscription needs the publisher's match per record
    /// anyway, and keeps its queue of matches.
    by_cursor: bool,
    /// The hosts a record must have for the filter to pass it, when the filter names them exactly
    /// (`domain:a OR domain:b`): while the subscription is live and has no window end, the
    /// publisher passes over a batch without any of them by this check alone, instead of locking
    /// the queue and matching the whole filter per record (issue 14: with 1,000 subscribers each
    /// asking for its own host, that match was half of the daemon, BENCHMARKS §22).
    hosts: Option<Hosts>,
    /// The publisher queues for this subscription; when false it catches up from the history.
    /// Never for a subscription by cursor, which always reads the history. Changed only with the
    /// hub lock and the queue's lock both held, so either lock makes a read of it current: the
    /// session reads it under the queue's lock, the publisher under the hub lock without taking
    /// the queue's (`passes_over`).
    live: AtomicBool,
    /// In `State::waiters`; changed only under the hub lock.
    waiting: AtomicBool,
    /// The window's end (epoch ms), set once by [`Subscription::until`]. An entry at or after it
    /// passes whether it matches or not, so a filtered window closes when the log passes its end
    /// (CONTRACT §8), not only when a later matching entry happens to arrive; `window` never sends it.
    until: OnceLock<i64>,
    /// Bytes of JSON queued at most (one record always, however big).
    budget: usize,
    inner: Mutex<Inner>,
    /// Woken by the publisher: something queued, the queue overflowed, or (by cursor) a publish
    /// after it waited.
    wake: Notify,
}

#[derive(Debug)]
struct Inner {
    /// Matching records the publisher queued while live, in id order (always empty by cursor).
    queue: VecDeque<Record>,
    /// Bytes of JSON in `queue`.
    bytes: usize,
    /// Every record with an id up to this one is queued, handed out or filtered away.
    cursor: u64,
}

impl Shared {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the publisher queues for this subscription (see `live`).
    fn live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }

    /// Sets `live`; `_queue` is the queue's guard, and the caller holds the hub lock too.
    fn set_live(&self, _queue: &mut Inner, live: bool) {
        self.live.store(live, Ordering::Relaxed);
    }

    /// The publisher may pass over a batch whose records have `hosts` for this subscription: live
    /// (nothing owed from before the batch), no window end, and none of the hosts its filter needs.
    fn passes_over(&self, hosts: &[Option<&str>]) -> bool {
        self.hosts.as_ref().is_some_and(|needed| {
            self.live() && self.until.get().is_none() && !hosts.iter().any(|&h| needed.admit(h))
        })
    }

    /// Whether the publisher queues for this subscription once its cursor is at `last_id`.
    fn live_at(&self, cursor: u64, last_id: u64) -> bool {
        !self.by_cursor && cursor >= last_id
    }

    /// The record matches the filter, or it is at or after `until` (it ends the window).
    fn passes(&self, r: &Record) -> bool {
        self.filter.matches(r.fields())
            || self
                .until
                .get()
                .is_some_and(|&until| record_ts(&r.json).is_some_and(|t| t >= until))
    }

    /// Called by the publisher (under the hub lock) with each new batch; says whether the
    /// subscription needs waking, which the publisher does after releasing the lock.
    fn offer(&self, batch: &[Record]) -> bool {
        let mut inner = self.inner();
        // Only a subscription with something new is woken: one whose filter matched nothing in the
        // batch costs its matches and no task wake-up (issue 10, BENCHMARKS §11).
        let live = self.live();
        let mut wake = !live;
        if live {
            let all = self.filter.is_all();
            // A queue that holds entries was signalled when it stopped being empty, and only its
            // session empties it (and looks at it before waiting): a wake-up per batch on top of
            // that would reach a session still holding or writing what it has (issue 14: at high
            // fan-out sessions take every few ms, BENCHMARKS §17).
            let signalled = !inner.queue.is_empty();
            for r in batch {
                if r.id <= inner.cursor {
                    continue;
                }
                if all || self.passes(r) {
                    wake |= !signalled;
                    if inner.bytes + r.json.len() > self.budget && !inner.queue.is_empty() {
                        // Over budget: stop queueing; the rest comes from the history (and a
                        // stalled session watching for `gone` must look again).
                        self.set_live(&mut inner, false);
                        wake = true;
                        break;
                    }
                    inner.bytes += r.json.len();
                    inner.queue.push_back(r.clone());
                }
                inner.cursor = r.id;
            }
        }
        wake
    }
}

/// One subscriber's position in the hub: replay from its start, then live, filtered, at most its
/// byte budget queued. Counted as a subscriber while it lives.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    shared: Arc<Shared>,
    /// A loss found at the start, reported before any entry.
    gap: Option<(u64, u64)>,
    /// Replaying from the journal what the history no longer holds; `None` once in memory.
    disk: Option<Disk>,
    /// `Start::From`: entries before the first whose `ts` is at or after this are skipped.
    from: Option<i64>,
    /// `until` was reached: only `End` from now on.
    ended: bool,
}

/// A replay from the journal: the reader, and what it read that is not handed out yet.
#[derive(Debug)]
struct Disk {
    reader: Reader,
    /// Matching records read, handed out a budget at a time (at most one reader batch).
    buf: VecDeque<Record>,
    /// The cursor means something (a `since`, or a record read): the history may take over once
    /// it holds the id after it. False for `from` until the reader finds the start.
    placed: bool,
    /// The last read found the journal's end while the history did not hold the id after it yet.
    /// The tailer journals a batch before it publishes it, so the ids the history had passed were
    /// on disk before that check: a second end in a row means the journal lacks them (a gap).
    at_end: bool,
}

impl Disk {
    /// The journal's records after `since` that pass `filter`, and the ids retention already
    /// removed from them (`(since, oldest kept)`): a `since` older than the history and a
    /// subscriber the history has passed both start here.
    fn after(store: &Store, since: u64, filter: &Filter) -> (Disk, Option<(u64, u64)>) {
        let reader = store.read_after(since).filtered(filter.clone());
        let missing = reader.missing();
        let disk = Disk {
            reader,
            buf: VecDeque::new(),
            placed: true,
            at_end: false,
        };
        (disk, missing)
    }
}

impl Subscription {
    /// Subscribes at `start` for a subscriber limited to `view` (its user's, CONTRACT §6) that
    /// asked for `request`: the one place the view applies, so every start (live, backlog, since)
    /// and every later reader of the subscription sees only entries matching both.
    pub fn with_view(
        hub: Arc<Hub>,
        start: Start,
        view: &Filter,
        request: &Filter,
        budget: usize,
    ) -> Subscription {
        Subscription::new(hub, start, view.and(request), budget)
    }

    /// Subscribes at `start`. The start position is taken under the hub lock, so what follows is
    /// exactly the records after it: no gap, no duplicate at the replay→live seam.
    pub fn new(hub: Arc<Hub>, start: Start, filter: Filter, budget: usize) -> Subscription {
        let mut st = hub.lock();
        let h = &st.history;
        let first = h.front().map(|r| r.id);
        let mut gap = None;
        let mut disk = None;
        let mut from = None;
        let store = hub.store.get();
        let cursor = match start {
            Start::Live => st.last_id,
            Start::Since(since) => match first {
                // CONTRACT §8: older than the history, replayed from the journal (from its oldest
                // record kept, the rest reported as a gap).
                Some(first) if since.saturating_add(1) < first && store.is_some() => {
                    if let Some(store) = store {
                        let (replay, missing) = Disk::after(store, since, &filter);
                        disk = Some(replay);
                        gap = missing;
                    }
                    since
                }
                Some(first) if since.saturating_add(1) < first => {
                    // CONTRACT §2/§6: replay what is still held; the loss is reported as a gap.
                    gap = Some((since, first));
                    first - 1
                }
                _ => since,
            },
            Start::Backlog(0) => st.last_id,
            Start::Backlog(n) => {
                let nth_from_end = if filter.is_all() {
                    h.len().checked_sub(n).and_then(|i| h.get(i))
                } else {
                    h.iter()
                        .rev()
                        .filter(|r| filter.matches(r.fields()))
                        .nth(n - 1)
                };
                // Fewer than n (matching) records held: all of them.
                nth_from_end.or(h.front()).map_or(st.last_id, |r| r.id - 1)
            }
            Start::From(ms) => {
                from = Some(ms);
                match store {
                    Some(store) => {
                        disk = Some(Disk {
                            reader: store.read_from(ms).filtered(filter.clone()),
                            buf: VecDeque::new(),
                            placed: false,
                            at_end: false,
                        });
                        0
                    }
                    // Without a journal (unit tests): from the oldest held.
                    None => first.map_or(st.last_id, |f| f - 1),
                }
            }
        };
        // Without a journal an overtaken subscriber is gone, and its own queue is what lets it lag
        // further than the history (tests' hubs, a `usize::MAX` budget): the queue stays then.
        let by_cursor = filter.is_all() && store.is_some();
        // Live right away only when nothing held is owed (a `since` ahead waits live too); never
        // while the journal is being replayed.
        let live = !by_cursor && disk.is_none() && cursor >= st.last_id;
        let shared = Arc::new(Shared {
            hosts: filter.required_hosts(),
            live: AtomicBool::new(live),
            filter,
            by_cursor,
            waiting: AtomicBool::new(false),
            until: OnceLock::new(),
            budget: budget.max(1),
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                bytes: 0,
                cursor,
            }),
            wake: Notify::new(),
        });
        if !by_cursor {
            FILTERED_SUBSCRIPTIONS.fetch_add(1, Ordering::Relaxed);
            st.subs.push(shared.clone());
        }
        drop(st);
        hub.subscribers.fetch_add(1, Ordering::Relaxed);
        Subscription {
            hub,
            shared,
            gap,
            disk,
            from,
            ended: false,
        }
    }

    /// Ends the stream before the first entry whose `ts` (epoch ms) is at or after `until`.
    pub fn until(self, until: Option<i64>) -> Subscription {
        if let Some(until) = until {
            // Set once, here: only the builder reaches a fresh subscription's `Shared`.
            let _ = self.shared.until.set(until);
        }
        self
    }

    /// True when records this subscriber still needs are no longer in the memory history (it is
    /// replaying them from the journal, or would be at its next step). The socket closes a
    /// subscriber that is behind and whose writes have stalled (4008): it has stopped reading, and
    /// catching it up could only mean reading the journal for nobody.
    pub fn behind(&self) -> bool {
        let st = self.hub.lock();
        let inner = self.shared.inner();
        !self.shared.live()
            && st
                .history
                .front()
                .is_some_and(|r| r.id > inner.cursor.saturating_add(1))
    }

    /// Subscribers connected now, this one included (a session's coalescing grows with them).
    pub fn subscribers(&self) -> u64 {
        self.hub.subscriber_count()
    }

    /// What to send next: waits (cancel-safe) until there is something.
    pub async fn next(&mut self) -> Next {
        loop {
            // A loss found when a replay from the journal starts, before its first entry.
            if let Some((after, before)) = self.gap.take() {
                return Next::Gap { after, before };
            }
            if self.ended {
                return Next::End;
            }
            let from_disk = self.disk.is_some();
            let next = if from_disk {
                self.replay_disk().await
            } else {
                self.take()
            };
            match next.map(|n| self.window(n)) {
                Some(Next::Entries(r)) if r.is_empty() => continue,
                Some(next) => return next,
                // Still on the journal, or just handed over to the history: look there first (a
                // subscription by cursor waits only once `take` has put it among the waiters).
                None if from_disk || self.disk.is_some() => continue,
                None => {}
            }
            // By cursor, `take` found nothing and put the subscription among the waiters.
            if self.shared.by_cursor || self.shared.live() {
                self.shared.wake.notified().await;
            } else {
                // A filter scan stopped at SCAN_PER_LOCK: let others run, then go on.
                tokio::task::yield_now().await;
            }
        }
    }

    /// Applies `from` (until the first entry in it) and `until` (ends the stream) to what is
    /// handed out, wherever it came from.
    fn window(&mut self, next: Next) -> Next {
        let Next::Entries(mut records) = next else {
            return next;
        };
        if let Some(from) = self.from {
            let start = records
                .iter()
                .position(|r| record_ts(&r.json).is_some_and(|t| t >= from));
            match start {
                Some(i) => {
                    records.drain(..i);
                    self.from = None;
                }
                None => records.clear(),
            }
        }
        if let Some(&until) = self.shared.until.get() {
            let end = records
                .iter()
                .position(|r| record_ts(&r.json).is_some_and(|t| t >= until));
            if let Some(i) = end {
                records.truncate(i);
                self.ended = true;
                if records.is_empty() {
                    return Next::End;
                }
            }
        }
        Next::Entries(records)
    }

    /// One step of the journal replay: buffered records up to the budget; else hands over to the
    /// history once it holds the next id (under the hub lock, so the seam has no gap and no
    /// duplicate); else reads the next batch (on a blocking thread; cancel-safe). None when the
    /// step yielded nothing to send.
    async fn replay_disk(&mut self) -> Option<Next> {
        let disk = self.disk.as_mut()?;
        if !disk.buf.is_empty() {
            let mut bytes = 0usize;
            let mut out = Vec::new();
            while bytes < self.shared.budget {
                let Some(r) = disk.buf.pop_front() else { break };
                bytes += r.json.len();
                out.push(r);
            }
            return Some(Next::Entries(out));
        }
        if disk.placed {
            let st = self.hub.lock();
            let mut inner = self.shared.inner();
            let next = inner.cursor.saturating_add(1);
            if st.history.front().is_none_or(|f| f.id <= next) {
                let live = self.shared.live_at(inner.cursor, st.last_id);
                self.shared.set_live(&mut inner, live);
                drop(inner);
                drop(st);
                self.disk = None;
                return None;
            }
        }
        let chunk = disk.reader.next_batch().await;
        match chunk {
            Ok(Chunk::Records(records)) => {
                // The reader applied the filter; its position is past what it read, matching or
                // not.
                disk.placed = true;
                disk.at_end = false;
                if let Some(read_to) = disk.reader.position() {
                    self.shared.inner().cursor = read_to;
                }
                disk.buf.extend(records);
                None
            }
            Ok(Chunk::Gone { after, oldest }) => {
                // Retention removed segments before the replay got to them.
                self.shared.inner().cursor = oldest - 1;
                Some(Next::Gap {
                    after,
                    before: oldest,
                })
            }
            Ok(Chunk::CaughtUp) if !disk.at_end => {
                // The history may have moved past the journal's end while this read ran: look
                // again (the handover above), and read once more if it has.
                disk.at_end = true;
                disk.placed = true;
                if let Some(read_to) = disk.reader.position() {
                    let mut inner = self.shared.inner();
                    inner.cursor = inner.cursor.max(read_to);
                }
                None
            }
            Ok(Chunk::CaughtUp) => {
                let read_to = disk.reader.position();
                self.leave_disk(read_to)
            }
            Err(e) => {
                tracing::error!(error = %e, "journal replay failed; continuing from the history");
                self.leave_disk(None)
            }
        }
    }

    /// The journal has nothing more (or failed): continue from the history after what was read,
    /// reporting as a gap what neither holds (only after a journal error).
    fn leave_disk(&mut self, read_to: Option<u64>) -> Option<Next> {
        self.disk = None;
        let st = self.hub.lock();
        let mut inner = self.shared.inner();
        if let Some(id) = read_to {
            inner.cursor = inner.cursor.max(id);
        }
        let mut gap = None;
        if let Some(front) = st.history.front().map(|r| r.id) {
            if front > inner.cursor.saturating_add(1) {
                gap = Some(Next::Gap {
                    after: inner.cursor,
                    before: front,
                });
                inner.cursor = front - 1;
            }
        }
        let live = self.shared.live_at(inner.cursor, st.last_id);
        self.shared.set_live(&mut inner, live);
        gap
    }

    /// When the history has passed this subscriber: with a journal, a replay from it after the
    /// cursor (after what is still queued, handed out first), else `Gone` (what it still has
    /// queued would not save it). Else the queue if anything is in it; else, when catching up, the
    /// matching records after the cursor up to the budget, switching to live (by cursor: waiting
    /// for the next publish) at the end of the history. None when nothing new matched.
    fn take(&mut self) -> Option<Next> {
        if !self.shared.by_cursor {
            // Live: the publisher queues for it, and only it turns `live` off, under this lock. So
            // the queue is all there is to look at, without the hub lock the publisher holds.
            let mut inner = self.shared.inner();
            if self.shared.live() {
                if inner.queue.is_empty() {
                    return None;
                }
                inner.bytes = 0;
                return Some(Next::Entries(inner.queue.drain(..).collect()));
            }
        }
        // Catching up (or by cursor): only this subscription turns `live` back on, so it stays off
        // meanwhile.
        let mut st = self.hub.lock();
        let mut inner = self.shared.inner();
        let first = st.history.front().map(|r| r.id);
        if !self.shared.live() && first.is_some_and(|first| first > inner.cursor.saturating_add(1))
        {
            let Some(store) = self.hub.store.get() else {
                inner.queue.clear();
                inner.bytes = 0;
                return Some(Next::Gone);
            };
            // Opened under the hub lock: every id the history has passed was journaled before it
            // was published, so the reader finds all of them (or reports what retention removed).
            let (replay, missing) = Disk::after(store, inner.cursor, &self.shared.filter);
            self.disk = Some(replay);
            self.gap = missing;
            if inner.queue.is_empty() {
                return None;
            }
        }
        if !inner.queue.is_empty() {
            inner.bytes = 0;
            let out: Vec<Record> = inner.queue.drain(..).collect();
            return Some(Next::Entries(out));
        }
        if self.shared.live() {
            return None;
        }
        let Some(first) = first else {
            drop(inner);
            self.caught_up(&mut st);
            return None;
        };
        let next = inner.cursor.saturating_add(1);
        let skip = usize::try_from(next - first).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let all = self.shared.filter.is_all();
        let mut scanned = 0usize;
        let mut rest = st.history.iter().skip(skip).peekable();
        while let Some(r) =
            rest.next_if(|_| bytes < self.shared.budget && (all || scanned < SCAN_PER_LOCK))
        {
            scanned += 1;
            inner.cursor = r.id;
            if all || self.shared.passes(r) {
                bytes += r.json.len();
                // Unfiltered: its outputs only send the text (ws.rs, the NATS publisher).
                out.push(if all { r.to_send() } else { r.clone() });
            }
        }
        let end = rest.peek().is_none();
        drop(inner);
        if end && (out.is_empty() || !self.shared.by_cursor) {
            self.caught_up(&mut st);
        }
        drop(st);
        (!out.is_empty()).then_some(Next::Entries(out))
    }

    /// The history holds nothing after the cursor: from now on the publisher queues for this
    /// subscription, or (by cursor) wakes it at its next publish. Called under the hub lock, which
    /// the publisher holds while it appends and takes the waiters, so no publish is missed.
    fn caught_up(&self, st: &mut State) {
        if !self.shared.by_cursor {
            self.shared.set_live(&mut self.shared.inner(), true);
        } else if !self.shared.waiting.swap(true, Ordering::Relaxed) {
            st.waiters.push(self.shared.clone());
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut st = self.hub.lock();
        if self.shared.by_cursor {
            st.waiters.retain(|s| !Arc::ptr_eq(s, &self.shared));
        } else {
            st.subs.retain(|s| !Arc::ptr_eq(s, &self.shared));
        }
        drop(st);
        if !self.shared.by_cursor {
            FILTERED_SUBSCRIPTIONS.fetch_sub(1, Ordering::Relaxed);
        }
        self.hub.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64) -> Record {
        Record::from_json(id, Bytes::from(format!("{{\"id\":{id}}}")))
    }

    fn sub(hub: &Arc<Hub>, start: Start) -> Subscription {
        Subscription::new(hub.clone(), start, Filter::default(), 1 << 20)
    }

    /// The ids of the next `Entries`, or a panic naming what came instead (bounded wait).
    async fn ids(s: &mut Subscription) -> Vec<u64> {
        match tokio::time::timeout(std::time::Duration::from_secs(5), s.next()).await {
            Ok(Next::Entries(r)) => r.iter().map(|r| r.id).collect(),
            other => panic!("{other:?}"),
        }
    }

    /// At least `n` ids, taken until there.
    async fn at_least(s: &mut Subscription, n: usize) -> Vec<u64> {
        let mut got = Vec::new();
        while got.len() < n {
            got.extend(ids(s).await);
        }
        got
    }

    /// At least `n` ids, taken until there; fails unless some came from a journal replay.
    async fn ids_via_journal(s: &mut Subscription, n: usize) -> Vec<u64> {
        let mut got = Vec::new();
        let mut from_disk = false;
        while got.len() < n {
            got.extend(ids(s).await);
            from_disk |= s.disk.is_some();
        }
        assert!(from_disk, "never replayed from the journal");
        got
    }

    #[tokio::test]
    async fn since_backlog_and_live_start_where_they_should() {
        let hub = Arc::new(Hub::new(3));
        let mut live = sub(&hub, Start::Live);
        hub.publish((1..=3).map(rec).collect());
        assert_eq!(ids(&mut live).await, vec![1, 2, 3]);
        hub.publish((4..=5).map(rec).collect());
        assert_eq!(ids(&mut live).await, vec![4, 5], "history keeps 3");
        assert_eq!(ids(&mut sub(&hub, Start::Since(3))).await, vec![4, 5]);
        assert_eq!(ids(&mut sub(&hub, Start::Backlog(2))).await, vec![4, 5]);
        assert_eq!(ids(&mut sub(&hub, Start::Backlog(99))).await, vec![3, 4, 5]);
        let mut old = sub(&hub, Start::Since(1));
        assert!(matches!(
            old.next().await,
            Next::Gap {
                after: 1,
                before: 3
            }
        ));
        assert_eq!(ids(&mut old).await, vec![3, 4, 5]);
        assert_eq!(hub.subscriber_count(), 2);
        let mut ahead = sub(&hub, Start::Since(6));
        hub.publish((6..=7).map(rec).collect());
        assert_eq!(
            ids(&mut ahead).await,
            vec![7],
            "a since ahead waits for its ids"
        );
        assert_eq!(hub.last_id(), 7);
    }

    /// A filter every record matches (`rec` has no method) that is not the empty one: the
    /// subscription is fed through its queue, as a filtered one is.
    fn match_all() -> Filter {
        Filter::parse("-method:NONE").expect("grammar")
    }

    #[tokio::test]
    async fn the_budget_bounds_the_queue_then_the_history_catches_up_until_it_is_passed() {
        let hub = Arc::new(Hub::new(10));
        // Each record is 8 bytes of JSON. A live filtered subscription queues up to its budget
        // (20: two records), then catches up from the history a budget at a time (the crossing
        // record included).
        let mut s = Subscription::new(hub.clone(), Start::Live, match_all(), 20);
        hub.publish((1..=9).map(rec).collect());
        assert_eq!(ids(&mut s).await, vec![1, 2]);
        assert_eq!(ids(&mut s).await, vec![3, 4, 5]);
        assert!(!s.behind());
        hub.publish((10..=20).map(rec).collect());
        assert!(s.behind());
        // No journal attached (unit tests, or a hub without a store): nothing to continue from.
        assert!(matches!(s.next().await, Next::Gone));
    }

    #[tokio::test]
    async fn an_unfiltered_subscription_reads_the_history_a_budget_at_a_time_and_costs_the_publisher_nothing_while_it_reads(
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (hub, mut journal) = journaled_hub(dir.path(), 10, u64::MAX);
        let mut s = Subscription::new(hub.clone(), Start::Live, Filter::default(), 20);
        assert!(s.take().is_none(), "nothing published yet");
        assert_eq!(hub.lock().waiters.len(), 1, "waits for the next publish");
        commit(&hub, &mut journal, (1..=9).map(rec).collect());
        // Woken and forgotten by the publisher; nothing is queued for it.
        assert!(hub.lock().waiters.is_empty());
        assert!(s.shared.inner().queue.is_empty());
        assert_eq!(ids(&mut s).await, vec![1, 2, 3]);
        commit(&hub, &mut journal, (10..=12).map(rec).collect());
        assert!(hub.lock().waiters.is_empty(), "not waiting: not touched");
        assert!(s.shared.inner().queue.is_empty());
        assert_eq!(ids(&mut s).await, vec![4, 5, 6]);
        assert!(!s.behind());
        commit(&hub, &mut journal, (13..=20).map(rec).collect());
        assert!(s.behind(), "the history (10) no longer holds 7");
        let got = ids_via_journal(&mut s, 14).await;
        assert!(got.iter().copied().eq(7..=20), "{got:?}");
        // Without a journal the queue stays: it is the only slack past the history.
        let plain = Arc::new(Hub::new(10));
        let q = Subscription::new(plain.clone(), Start::Live, Filter::default(), 1 << 20);
        plain.publish((1..=3).map(rec).collect());
        assert_eq!(q.shared.inner().queue.len(), 3);
    }

    /// A hub of `history` records with a journal in `dir` attached, and the journal to write.
    fn journaled_hub(
        dir: &std::path::Path,
        history: usize,
        retention_bytes: u64,
    ) -> (Arc<Hub>, crate::store::journal::Journal) {
        use crate::store::journal::{Journal, Options, Retention};
        let options = Options {
            history,
            retention: Retention {
                age: std::time::Duration::from_secs(1 << 40),
                bytes: retention_bytes,
            },
            // Many small segments, so readers cross segments and retention removes some.
            segment_bytes: 4096,
        };
        let (journal, _) = Journal::open(dir, &options, None).expect("journal");
        let hub = Arc::new(Hub::new(history));
        hub.attach_store(journal.store());
        (hub, journal)
    }

    /// What the tailer does per batch: journal it, then publish it.
    fn commit(hub: &Hub, journal: &mut crate::store::journal::Journal, batch: Vec<Record>) {
        journal.append(&batch).expect("append");
        hub.publish(batch);
    }

    /// Ids 1..=`last` made by `make`, committed ten at a time (`last` a multiple of ten).
    fn commit_in_tens(
        hub: &Hub,
        journal: &mut crate::store::journal::Journal,
        last: u64,
        make: impl Fn(u64) -> Record,
    ) {
        for first in (1..=last).step_by(10) {
            commit(hub, journal, (first..first + 10).map(&make).collect());
        }
    }

    #[tokio::test]
    async fn an_overtaken_subscriber_continues_from_the_journal_then_from_memory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (hub, mut journal) = journaled_hub(dir.path(), 10, u64::MAX);
        // A budget of two records: the queue overflows at once and the history (10) is passed
        // many times over before the subscriber takes anything.
        let mut s = Subscription::new(hub.clone(), Start::Live, Filter::default(), 20);
        commit_in_tens(&hub, &mut journal, 500, rec);
        assert!(s.behind());
        let got = ids_via_journal(&mut s, 500).await;
        assert!(got.iter().copied().eq(1..=500), "gap or duplicate: {got:?}");
        // The seam back: the history holds what follows the journal's last record read, so the
        // replay hands over to it, then waits for the next publish.
        commit(&hub, &mut journal, (501..=503).map(rec).collect());
        assert_eq!(at_least(&mut s, 3).await, vec![501, 502, 503]);
        assert!(s.disk.is_none(), "still on the journal after its end");
        assert!(s.take().is_none());
        assert_eq!(
            hub.lock().waiters.len(),
            1,
            "not waiting for the next publish"
        );
        commit(&hub, &mut journal, (504..=504).map(rec).collect());
        assert_eq!(ids(&mut s).await, vec![504]);
    }

    #[tokio::test]
    async fn an_overtaken_filtered_subscriber_gets_its_queue_then_the_journal_then_live() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (hub, mut journal) = journaled_hub(dir.path(), 10, u64::MAX);
        // A budget of two records: the queue overflows at once and the history (10) is passed
        // many times over before the subscriber takes anything.
        let mut s = Subscription::new(hub.clone(), Start::Live, match_all(), 20);
        commit_in_tens(&hub, &mut journal, 500, rec);
        assert!(s.behind());
        assert_eq!(ids(&mut s).await, vec![1, 2], "the queue first");
        let got = ids_via_journal(&mut s, 498).await;
        assert!(got.iter().copied().eq(3..=500), "gap or duplicate: {got:?}");
        commit(&hub, &mut journal, (501..=503).map(rec).collect());
        assert_eq!(at_least(&mut s, 3).await, vec![501, 502, 503]);
        assert!(s.disk.is_none(), "still on the journal after its end");
        assert!(s.shared.live());
        commit(&hub, &mut journal, (504..=504).map(rec).collect());
        assert_eq!(ids(&mut s).await, vec![504]);
    }

    #[tokio::test]
    async fn a_filtered_overtaken_subscriber_gets_its_matches_from_the_journal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (hub, mut journal) = journaled_hub(dir.path(), 10, u64::MAX);
        let record = |id: u64| {
            let method = if id % 3 == 0 { "POST" } else { "GET" };
            Record::from_json(
                id,
                Bytes::from(format!("{{\"id\":{id},\"method\":\"{method}\"}}")),
            )
        };
        let post = Filter::parse("method:POST").expect("grammar");
        let mut s = Subscription::new(hub.clone(), Start::Live, post, 40);
        commit_in_tens(&hub, &mut journal, 300, record);
        let got = ids_via_journal(&mut s, 100).await;
        assert!(got.iter().copied().eq((3..=300).step_by(3)), "{got:?}");
        commit(&hub, &mut journal, (301..=303).map(record).collect());
        assert_eq!(ids(&mut s).await, vec![303]);
    }

    #[tokio::test]
    async fn an_overtaken_subscriber_past_the_retention_is_told_of_the_gap() {
        let dir = tempfile::tempdir().expect("temp dir");
        // About 8 KiB kept: the oldest segments go while the subscriber does not read.
        let (hub, mut journal) = journaled_hub(dir.path(), 10, 8 << 10);
        let mut s = Subscription::new(hub.clone(), Start::Live, Filter::default(), 20);
        commit_in_tens(&hub, &mut journal, 5000, rec);
        let oldest = hub.store().expect("store").stats().oldest_id;
        assert!(oldest > 3, "retention removed nothing (oldest {oldest})");
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), s.next()).await;
        assert!(
            matches!(next, Ok(Next::Gap { after: 0, before }) if before == oldest),
            "{next:?} (oldest kept {oldest})"
        );
        let got = at_least(&mut s, (5001 - oldest) as usize).await;
        assert!(got.iter().copied().eq(oldest..=5000), "{got:?}");
    }

    #[tokio::test]
    async fn a_journal_that_lacks_what_the_history_passed_ends_in_a_gap_not_a_loop() {
        // The daemon journals before it publishes; should a record ever reach the history only,
        // the replay reads the journal's end twice, then reports the loss and goes on.
        let dir = tempfile::tempdir().expect("temp dir");
        let (hub, mut journal) = journaled_hub(dir.path(), 10, u64::MAX);
        commit(&hub, &mut journal, (1..=20).map(rec).collect());
        let mut s = sub(&hub, Start::Since(0));
        hub.publish((21..=40).map(rec).collect());
        assert_eq!(ids(&mut s).await, (1..=20).collect::<Vec<_>>());
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), s.next()).await;
        assert!(
            matches!(
                next,
                Ok(Next::Gap {
                    after: 20,
                    before: 31
                })
            ),
            "{next:?}"
        );
        assert_eq!(ids(&mut s).await, (31..=40).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn journal_and_history_hand_over_without_gap_or_duplicate_under_a_flood() {
        // A tiny history and budget: the subscriber switches between its queue, the history and the
        // journal again and again while a publisher journals and publishes as the tailer does.
        const LAST: u64 = 50_000;
        let dir = tempfile::tempdir().expect("temp dir");
        let (hub, mut journal) = journaled_hub(dir.path(), 50, u64::MAX);
        let mut s = Subscription::new(hub.clone(), Start::Since(0), Filter::default(), 100);
        let publisher = {
            let hub = hub.clone();
            tokio::spawn(async move {
                for first in (1..=LAST).step_by(10) {
                    commit(&hub, &mut journal, (first..first + 10).map(rec).collect());
                    tokio::task::yield_now().await;
                }
                journal
            })
        };
        let mut expected = 1u64;
        let mut on_disk = 0u32;
        while expected <= LAST {
            for id in ids(&mut s).await {
                assert_eq!(id, expected, "gap or duplicate");
                expected += 1;
            }
            on_disk += u32::from(s.disk.is_some());
        }
        let _journal = publisher.await.expect("publisher");
        eprintln!("steps on the journal: {on_disk}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn live_continues_exactly_after_the_replay_under_concurrent_publishing() {
        // A large budget stays live; a tiny one keeps switching between its queue and the history.
        for budget in [1 << 20, 100] {
            let hub = Arc::new(Hub::new(100_000));
            let publisher = {
                let hub = hub.clone();
                tokio::spawn(async move {
                    for start in (1..=50_000u64).step_by(10) {
                        hub.publish((start..start + 10).map(rec).collect());
                        tokio::task::yield_now().await;
                    }
                })
            };
            let mut s = Subscription::new(hub.clone(), Start::Since(0), Filter::default(), budget);
            let mut expected = 1u64;
            while expected <= 50_000 {
                for id in ids(&mut s).await {
                    assert_eq!(id, expected, "gap or duplicate (budget {budget})");
                    // /api/health reads this: never behind an entry already handed out.
                    assert!(hub.last_id() >= id, "last id behind a delivered entry");
                    expected += 1;
                }
            }
            publisher.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_filter_selects_for_backlog_since_and_live() {
        let hub = Arc::new(Hub::new(100));
        let method = |id: u64| if id % 3 == 0 { "POST" } else { "GET" };
        let record = |id: u64| {
            let json = format!("{{\"id\":{id},\"method\":\"{}\"}}", method(id));
            Record::from_json(id, Bytes::from(json))
        };
        hub.publish((1..=30).map(record).collect());
        let post = Filter::parse("method:POST").expect("grammar");
        let mut b = Subscription::new(hub.clone(), Start::Backlog(2), post.clone(), 1 << 20);
        assert_eq!(ids(&mut b).await, vec![27, 30]);
        let mut s = Subscription::new(hub.clone(), Start::Since(20), post, 1 << 20);
        assert_eq!(ids(&mut s).await, vec![21, 24, 27, 30]);
        hub.publish((31..=33).map(record).collect());
        assert_eq!(ids(&mut s).await, vec![33]);
        // A view narrows whatever is asked: all of it, or something outside it.
        let view = Filter::parse("method:POST").expect("grammar");
        let all = Filter::default();
        let mut v = Subscription::with_view(hub.clone(), Start::Backlog(2), &view, &all, 1 << 20);
        assert_eq!(ids(&mut v).await, vec![30, 33]);
        let get = Filter::parse("method:GET").expect("grammar");
        let mut none = Subscription::with_view(hub.clone(), Start::Since(0), &view, &get, 1 << 20);
        hub.publish((34..=36).map(record).collect());
        assert_eq!(ids(&mut v).await, vec![36]);
        // The whole history scanned (far below SCAN_PER_LOCK), nothing is both POST and GET.
        assert!(none.take().is_none());
        assert!(none.shared.live(), "caught up, empty-handed");
    }

    #[test]
    fn a_record_knows_once_whether_its_text_is_utf8() {
        let good = Record::from_json(1, Bytes::from_static(b"{\"id\":1,\"user\":\"\xc3\xa9\"}"));
        assert_eq!(good.utf8_json(), Some(&good.json));
        let bad = Record::from_json(2, Bytes::from_static(b"{\"id\":2,\"user\":\"\xc3\"}"));
        assert_eq!(bad.utf8_json(), None, "a damaged record read back");
        assert_eq!(bad.clone().utf8_json(), None, "clones share the answer");
        let mut entry = parsers::Entry::default();
        assert!(Record::new(3, &mut entry).utf8_json().is_some());
    }

    #[test]
    fn an_unfiltered_subscriber_takes_the_text_without_the_fields_table() {
        // Issue 14: an unfiltered subscriber by cursor takes a record per record it sends; a copy
        // that shares only the JSON costs one shared count taken and given back, not two.
        let dir = tempfile::tempdir().expect("temp dir");
        let (hub, mut journal) = journaled_hub(dir.path(), 100, u64::MAX);
        let host = |id: u64| {
            let json = format!("{{\"id\":{id},\"destination\":\"http://h{id}.test/x\"}}");
            Record::from_json(id, Bytes::from(json))
        };
        let mut s = sub(&hub, Start::Since(0));
        assert!(s.shared.by_cursor);
        commit(&hub, &mut journal, (1..=3).map(host).collect());
        let Some(Next::Entries(taken)) = s.take() else {
            panic!("nothing taken");
        };
        let st = hub.lock();
        assert_eq!(taken.len(), 3);
        for (t, h) in taken.iter().zip(&st.history) {
            assert!(h.clone().shares_fields_with(h), "a clone shares the table");
            assert!(
                !t.shares_fields_with(h),
                "record {} took the fields table",
                t.id
            );
            assert_eq!(
                (t.id, &t.json, t.utf8_json()),
                (h.id, &h.json, h.utf8_json())
            );
            // Built from the JSON if ever asked, equal to the history's.
            assert_eq!(t.fields(), h.fields());
        }
        assert!(taken[0].fields().host().is_some_and(|h| h == "h1.test"));
    }

    #[test]
    fn a_record_stays_a_cache_line() {
        // The history holds 10,000 of them by default, and every take walks it.
        assert_eq!(std::mem::size_of::<Record>(), 64);
    }

    /// Asserts the next thing is `End` (bounded wait).
    async fn ends(s: &mut Subscription) {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), s.next()).await;
        assert!(matches!(next, Ok(Next::End)), "{next:?}");
    }

    #[tokio::test]
    async fn a_filtered_window_ends_at_the_first_entry_past_until_matching_or_not() {
        // CONTRACT §8: the log's time closes the window; the entry past `until` need not match.
        let hub = Arc::new(Hub::new(100));
        let record = |id: u64, method: &str| {
            let json = format!("{{\"id\":{id},\"ts\":{id}.5,\"method\":\"{method}\"}}");
            Record::from_json(id, Bytes::from(json))
        };
        let method = |id: u64| if id == 1 || id == 3 { "POST" } else { "GET" };
        hub.publish((1..=5).map(|id| record(id, method(id))).collect());
        let post = Filter::parse("method:POST").expect("grammar");
        // From the history: no POST after 4.0 s, the GET at 4.5 s ends it.
        let mut past = Subscription::new(hub.clone(), Start::Since(0), post.clone(), 1 << 20)
            .until(Some(4_000));
        assert_eq!(ids(&mut past).await, vec![1, 3]);
        ends(&mut past).await;
        // Live, the end still ahead: a GET past it ends the stream.
        let mut live =
            Subscription::new(hub.clone(), Start::Live, post, 1 << 20).until(Some(7_000));
        hub.publish(vec![record(6, "POST"), record(7, "GET")]);
        assert_eq!(ids(&mut live).await, vec![6]);
        ends(&mut live).await;
    }

    #[tokio::test]
    async fn a_subscription_for_exact_hosts_is_passed_over_by_batches_without_them() {
        // Issue 14: for a filter naming exact hosts the publisher checks the hosts instead of
        // locking the queue and matching the whole filter per record; the subscriber gets the same.
        let hub = Arc::new(Hub::new(100));
        let record = |id: u64, host: &str| {
            let json = format!("{{\"id\":{id},\"ts\":{id}.5,\"destination\":\"http://{host}/x\"}}");
            Record::from_json(id, Bytes::from(json))
        };
        let hosts = Filter::parse("domain:a.test domain:c.test").expect("grammar");
        let mut s = Subscription::new(hub.clone(), Start::Live, hosts.clone(), 1 << 20);
        let mut window =
            Subscription::new(hub.clone(), Start::Live, hosts, 1 << 20).until(Some(12_000));
        let glob = Filter::parse("domain:a.*").expect("grammar");
        let mut prefix = Subscription::new(hub.clone(), Start::Live, glob, 1 << 20);
        hub.publish((1..=10).map(|id| record(id, "b.test")).collect());
        assert_eq!(s.shared.inner().cursor, 0, "not passed over");
        // A window's end may come in any record, and a `*` names no exact host: both looked at.
        assert_eq!(window.shared.inner().cursor, 10);
        assert_eq!(prefix.shared.inner().cursor, 10);
        hub.publish(vec![
            record(11, "b.test"),
            record(12, "c.test"),
            record(13, "a.test"),
        ]);
        assert_eq!(ids(&mut s).await, vec![12, 13]);
        assert_eq!(ids(&mut prefix).await, vec![13]);
        ends(&mut window).await;
        hub.publish((14..=16).map(|id| record(id, "b.test")).collect());
        hub.publish(vec![record(17, "a.test")]);
        assert_eq!(ids(&mut s).await, vec![17]);
    }
}
