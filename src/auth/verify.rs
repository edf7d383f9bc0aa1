//! Argon2 verification under a concurrency cap: at most `permits` hashes run at once, each on tokio's
//! blocking pool, with a short queue in front; beyond it callers are told "busy" at once. The permit
//! travels into the blocking task, so it is held until hashing ends even if the caller goes away.
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};

/// The cap was exhausted and the queue full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password verifications in flight")]
pub struct Busy;

/// Counters for tests and health: what runs now, the most that ever ran at once, how many ran.
#[derive(Debug)]
pub struct VerifyStats {
    /// Verifications hashing right now; a watch so tests can await a count instead of polling.
    in_flight: watch::Sender<usize>,
    /// The highest `in_flight` ever observed.
    max_in_flight: AtomicUsize,
    /// Verifications started since start-up.
    started: AtomicU64,
}

/// Releases an admission slot when dropped (request abandoned, or hashing done).
#[derive(Debug)]
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The capped verifier.
#[derive(Debug)]
pub struct Verifier {
    /// One permit per hash allowed to run at once.
    semaphore: Arc<Semaphore>,
    /// Callers admitted (queued or hashing); bounded by `admit_limit`.
    admitted: Arc<AtomicUsize>,
    /// `permits` + queue length: beyond it a caller gets [`Busy`] without waiting.
    admit_limit: usize,
    /// The permit count, reported to tests.
    permits: usize,
    /// Shared counters.
    stats: Arc<VerifyStats>,
}

impl Verifier {
    /// A verifier running at most `permits` hashes at once, with `queue` callers waiting at most.
    pub fn new(permits: usize, queue: usize) -> Verifier {
        let permits = permits.max(1);
        Verifier {
            semaphore: Arc::new(Semaphore::new(permits)),
            admitted: Arc::new(AtomicUsize::new(0)),
            admit_limit: permits + queue,
            permits,
            stats: Arc::new(VerifyStats {
                in_flight: watch::Sender::new(0),
                max_in_flight: AtomicUsize::new(0),
                started: AtomicU64::new(0),
            }),
        }
    }

    /// The default cap: one permit per core (at most 8), and a queue of twice that.
    pub fn for_this_machine() -> Verifier {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
        Verifier::new(cores, 2 * cores)
    }

    /// Checks `password` against the PHC string `hash` on the blocking pool.
    pub async fn verify(&self, hash: Arc<str>, password: String) -> Result<bool, Busy> {
        let previous = self.admitted.fetch_add(1, Ordering::AcqRel);
        let admission = Admission(self.admitted.clone());
        if previous >= self.admit_limit {
            return Err(Busy);
        }
        let permit = self
            .semaphore
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Busy)?;
        let stats = self.stats.clone();
        let task = tokio::task::spawn_blocking(move || {
            // Both guards live until hashing ends, whether or not anyone awaits the result.
            let _permit = permit;
            let _admission = admission;
            stats.started.fetch_add(1, Ordering::Relaxed);
            let mut now = 0;
            stats.in_flight.send_modify(|n| {
                *n += 1;
                now = *n;
            });
            stats.max_in_flight.fetch_max(now, Ordering::AcqRel);
            let ok = PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false);
            stats.in_flight.send_modify(|n| *n -= 1);
            ok
        });
        // A panic inside argon2 counts as a failed verification.
        Ok(task.await.unwrap_or(false))
    }

    /// How many hashes may run at once.
    pub fn permits(&self) -> usize {
        self.permits
    }

    /// How many callers may be admitted (hashing plus queued) before [`Busy`].
    pub fn admit_limit(&self) -> usize {
        self.admit_limit
    }

    /// A receiver of the number of hashes running now.
    pub fn watch_in_flight(&self) -> watch::Receiver<usize> {
        self.stats.in_flight.subscribe()
    }

    /// The most hashes ever observed running at once.
    pub fn max_in_flight(&self) -> usize {
        self.stats.max_in_flight.load(Ordering::Acquire)
    }

    /// Hashes started since start-up.
    pub fn started(&self) -> u64 {
        self.stats.started.load(Ordering::Acquire)
    }
}
