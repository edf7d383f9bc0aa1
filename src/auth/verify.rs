//! Argon2 verification under a concurrency cap: at most `permits` hashes run at once, each on tokio's
//! blocking pool, with a queue in front; a caller that finds the queue full, or waits in it longer
//! than [`QUEUE_DEADLINE`], is told "busy" with an estimate of when the queue will have drained. The
//! permit travels into the blocking task, so it is held until hashing ends even if the caller goes
//! away.
//!
//! Each hash runs in a work area of its own anonymous mapping (m_cost KiB, 19 MiB with the default
//! parameters). `Argon2::verify_password` allocates and frees such areas per call, and glibc keeps
//! those frees resident: after the first large free its dynamic mmap threshold rises above the area
//! size, so later areas come from the heap and per-thread arenas (issue 9: 100 sign-ins, 866 MB). A
//! pool of areas capped that to `permits` areas, but kept them (38 MiB) for the daemon's whole life
//! (issue 14). Now an area finished while others wait is handed to the next hash, and the last one of
//! a burst is unmapped: the pages go back to the kernel whatever the allocator does.
use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::sync::{watch, Semaphore};

/// Sign-ins that may wait for a permit by default: a burst of 100 simultaneous sign-ins (issue 14)
/// fits with room to spare. A waiting sign-in holds its request and password only, a few KiB.
pub const DEFAULT_QUEUE: usize = 128;

/// How long a sign-in waits in the queue at most before it is told "busy": about a browser's or an
/// HTTP client's patience. 100 default-cost hashes on 2 permits take a few seconds; the deadline
/// leaves room for a loaded machine.
pub const QUEUE_DEADLINE: Duration = Duration::from_secs(30);

/// The cap was exhausted and the queue full (or the wait exceeded [`QUEUE_DEADLINE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password verifications in flight")]
pub struct Busy {
    /// Whole seconds (at least 1) until the callers ahead are likely to be served: the admitted
    /// callers times the recent time per hash, divided by the permits.
    pub retry_after: u64,
}

/// Counters for tests and health: what runs now, the most that ever ran at once, how many ran.
#[derive(Debug)]
pub struct VerifyStats {
    /// Verifications hashing right now; a watch so tests can await a count instead of polling.
    in_flight: watch::Sender<usize>,
    /// The highest `in_flight` ever observed.
    max_in_flight: AtomicUsize,
    /// Verifications started since start-up.
    started: AtomicU64,
    /// Recent time per hash, ns (a moving average; 0 until the first hash ends).
    hash_nanos: AtomicU64,
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
    /// Callers waiting for a permit: while there are any, a finished hash keeps its area for them.
    waiting: Arc<AtomicUsize>,
    /// `permits` + queue length: beyond it a caller gets [`Busy`] without waiting.
    admit_limit: usize,
    /// The permit count, reported to tests.
    permits: usize,
    /// Shared counters.
    stats: Arc<VerifyStats>,
    /// Argon2 work areas handed from a finished hash to a waiting one. A hash needs a permit before
    /// it takes or maps one, so at most `permits` areas ever exist; none while nobody signs in.
    areas: Arc<Mutex<Vec<Area>>>,
}

impl Verifier {
    /// A verifier running at most `permits` hashes at once, with `queue` callers waiting at most.
    pub fn new(permits: usize, queue: usize) -> Verifier {
        let permits = permits.max(1);
        Verifier {
            semaphore: Arc::new(Semaphore::new(permits)),
            admitted: Arc::new(AtomicUsize::new(0)),
            waiting: Arc::new(AtomicUsize::new(0)),
            admit_limit: permits.saturating_add(queue),
            permits,
            stats: Arc::new(VerifyStats {
                in_flight: watch::Sender::new(0),
                max_in_flight: AtomicUsize::new(0),
                started: AtomicU64::new(0),
                hash_nanos: AtomicU64::new(0),
            }),
            areas: Arc::new(Mutex::new(Vec::with_capacity(permits))),
        }
    }

    /// The default cap with `queue` waiting: one permit per core, at most 2, so at most 2 areas
    /// (38 MiB with the default m=19 MiB) exist while sign-ins run, and the daemon stays within 64 MB
    /// on any machine (CONTRACT §11).
    pub fn for_this_machine(queue: usize) -> Verifier {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get().min(2));
        Verifier::new(cores, queue)
    }

    /// Checks `password` against the PHC string `hash` on the blocking pool.
    pub async fn verify(&self, hash: Arc<str>, password: String) -> Result<bool, Busy> {
        let previous = self.admitted.fetch_add(1, Ordering::AcqRel);
        let admission = Admission(self.admitted.clone());
        if previous >= self.admit_limit {
            return Err(self.busy(previous));
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let in_queue = Admission(self.waiting.clone());
        let permit = match tokio::time::timeout(
            QUEUE_DEADLINE,
            self.semaphore.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            _ => return Err(self.busy(self.admitted.load(Ordering::Acquire))),
        };
        drop(in_queue);
        let stats = self.stats.clone();
        let areas = self.areas.clone();
        let waiting = self.waiting.clone();
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
            let start = Instant::now();
            let ok = verify_pooled(&hash, password.as_bytes(), &areas);
            stats.record_hash(start.elapsed());
            stats.in_flight.send_modify(|n| *n -= 1);
            // Nobody waits for a permit: the burst is over, so the spare areas go back to the
            // kernel rather than stay resident. (A caller that starts waiting just after this maps
            // an area of its own; the last hash of a burst gets here after its push. Only a waiter
            // that gives up after an area was kept for it leaves one until the next sign-in.)
            if waiting.load(Ordering::Acquire) == 0 {
                let spare = std::mem::take(&mut *lock(&areas));
                drop(spare);
            }
            ok
        });
        // A panic inside argon2 counts as a failed verification.
        Ok(task.await.unwrap_or(false))
    }

    /// "Busy", with the time `ahead` admitted callers take to be served at the recent hash rate.
    fn busy(&self, ahead: usize) -> Busy {
        let per_hash = self.stats.hash_nanos.load(Ordering::Acquire) as u128;
        let nanos = per_hash * ahead as u128 / self.permits as u128;
        let secs = nanos.div_ceil(1_000_000_000);
        Busy {
            retry_after: u64::try_from(secs).unwrap_or(u64::MAX).max(1),
        }
    }

    /// How many hashes may run at once (and how many work areas may exist).
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

impl VerifyStats {
    /// Folds one hash's duration into the moving average (weight 1/8).
    fn record_hash(&self, took: Duration) {
        let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .hash_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    old - old / 8 + sample / 8
                })
            });
    }
}

fn lock(areas: &Mutex<Vec<Area>>) -> std::sync::MutexGuard<'_, Vec<Area>> {
    areas.lock().unwrap_or_else(|p| p.into_inner())
}

/// An Argon2 work area in an anonymous private mapping of its own, unmapped when dropped.
#[derive(Debug)]
struct Area {
    /// The first block; page-aligned, so aligned for `Block` (64 bytes).
    ptr: NonNull<Block>,
    /// Blocks mapped.
    blocks: usize,
}

// SAFETY: the mapping is owned by this value alone (no aliasing pointer exists), so moving it to
// another thread is sound, as for a `Box<[Block]>`.
unsafe impl Send for Area {}

impl Area {
    /// Maps `blocks` zeroed blocks, or `None` when the kernel refuses.
    fn map(blocks: usize) -> Option<Area> {
        let len = blocks.max(1).checked_mul(std::mem::size_of::<Block>())?;
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses aliases no memory.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }
        .ok()?;
        Some(Area {
            ptr: NonNull::new(ptr.cast::<Block>())?,
            blocks: blocks.max(1),
        })
    }

    fn as_mut_slice(&mut self) -> &mut [Block] {
        // SAFETY: `ptr` points to `blocks` blocks of readable, writable memory that lives as long
        // as `self`; zeroed bytes (what a fresh mapping holds) are a valid `Block` (plain u64s), and
        // `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.blocks) }
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        let len = self.blocks * std::mem::size_of::<Block>();
        // SAFETY: exactly the mapping made in `Area::map`, unmapped once; no slice of it outlives
        // `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), len) };
    }
}

/// Recomputes the hash of `password` with the PHC string's algorithm, version, parameters and salt,
/// in a handed-over area when one is free and large enough, else in a new mapping, and compares it
/// in constant time; hands the area on afterwards (the caller unmaps the spare ones when nobody
/// waits). Any malformed part of `phc` is a failed verification.
fn verify_pooled(phc: &str, password: &[u8], areas: &Mutex<Vec<Area>>) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    let free = lock(areas).pop();
    let mut area = match free {
        Some(area) if area.blocks >= blocks => area,
        // None free, or too small (the users file changed parameters): a new one is mapped.
        _ => match Area::map(blocks) {
            Some(area) => area,
            None => {
                tracing::error!(blocks, "cannot map an Argon2 work area");
                return false;
            }
        },
    };
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    let hashed = argon2
        .hash_password_into_with_memory(
            password,
            salt,
            &mut out,
            &mut area.as_mut_slice()[..blocks],
        )
        .is_ok();
    lock(areas).push(area);
    hashed && bool::from(out.ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verification_matches_argon2_and_keeps_no_area_after_a_burst() {
        let hash: Arc<str> = crate::auth::users::hash_password("right").unwrap().into();
        let verifier = Verifier::new(2, 4);
        for _ in 0..3 {
            assert!(verifier.verify(hash.clone(), "right".into()).await.unwrap());
            assert!(!verifier.verify(hash.clone(), "wrong".into()).await.unwrap());
        }
        // One at a time: nobody ever waited, so every area was unmapped after its hash.
        assert!(lock(&verifier.areas).is_empty());
        // A burst: areas are handed on while others wait, and none is left once it is over.
        let verifier = Arc::new(verifier);
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (v, h) = (verifier.clone(), hash.clone());
            tasks.push(tokio::spawn(
                async move { v.verify(h, "right".into()).await },
            ));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(true));
        }
        assert!(verifier.max_in_flight() <= 2);
        assert!(lock(&verifier.areas).is_empty());
        assert!(verifier.stats.hash_nanos.load(Ordering::Acquire) > 0);
    }

    #[test]
    fn busy_estimates_the_wait_for_the_callers_ahead() {
        let verifier = Verifier::new(2, 4);
        // No hash measured yet: the least honest answer is 1 s.
        assert_eq!(verifier.busy(10).retry_after, 1);
        verifier.stats.record_hash(Duration::from_millis(500));
        // 10 ahead, 2 at a time, 0.5 s each: 2.5 s, rounded up.
        assert_eq!(verifier.busy(10).retry_after, 3);
    }

    #[test]
    fn malformed_hashes_fail() {
        let areas = Mutex::new(Vec::new());
        assert!(!verify_pooled("", b"x", &areas));
        assert!(!verify_pooled(
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ",
            b"x",
            &areas
        ));
        assert!(!verify_pooled(
            "$argon2id$v=99$m=8,t=1,p=1$c2FsdHNhbHQ$AAAA",
            b"x",
            &areas
        ));
    }
}
