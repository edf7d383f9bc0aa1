//! Argon2 verification under a concurrency cap: at most `permits` hashes run at once, each on tokio's
//! blocking pool, with a short queue in front; beyond it callers are told "busy" at once. The permit
//! travels into the blocking task, so it is held until hashing ends even if the caller goes away.
//!
//! Each hash runs in a work area taken from a fixed pool (one area per permit) and given back after:
//! `Argon2::verify_password` allocates and frees m_cost KiB per call, and glibc keeps those frees in
//! per-thread arenas, so RSS grew with every sign-in (issue 9: 100 sign-ins, 866 MB). With the pool the
//! daemon's Argon2 memory is at most `permits` areas, allocated once, whatever the number of sign-ins.
use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
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
    /// Argon2 work areas not in use. A hash needs a permit before it takes one, so at most `permits`
    /// areas ever exist; each grows (once) to the largest m_cost it has served.
    areas: Arc<Mutex<Vec<Vec<Block>>>>,
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
            areas: Arc::new(Mutex::new(Vec::with_capacity(permits))),
        }
    }

    /// The default cap: one permit per core, at most 2, so the pool stays within 2 areas (38 MiB with
    /// the default m=19 MiB) and the daemon within 64 MB on any machine (CONTRACT §11); a queue of 16
    /// so a burst of sign-ins waits a few hundred milliseconds rather than getting 503.
    pub fn for_this_machine() -> Verifier {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get().min(2));
        Verifier::new(cores, 16)
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
        let areas = self.areas.clone();
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
            let mut area = take_area(&areas);
            let ok = verify_in(&hash, password.as_bytes(), &mut area);
            give_back(&areas, area);
            stats.in_flight.send_modify(|n| *n -= 1);
            ok
        });
        // A panic inside argon2 counts as a failed verification.
        Ok(task.await.unwrap_or(false))
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

/// A free work area, or a new empty one (only while fewer than `permits` exist: the caller holds one).
fn take_area(areas: &Mutex<Vec<Vec<Block>>>) -> Vec<Block> {
    areas
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop()
        .unwrap_or_default()
}

fn give_back(areas: &Mutex<Vec<Vec<Block>>>, area: Vec<Block>) {
    areas.lock().unwrap_or_else(|p| p.into_inner()).push(area);
}

/// Recomputes the hash of `password` with the PHC string's algorithm, version, parameters and salt in
/// `area` (grown to the parameters' block count if smaller) and compares it in constant time. Any
/// malformed part of `phc` is a failed verification.
fn verify_in(phc: &str, password: &[u8], area: &mut Vec<Block>) -> bool {
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
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    if argon2
        .hash_password_into_with_memory(password, salt, &mut out, &mut area[..])
        .is_err()
    {
        return false;
    }
    out.ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pooled_verification_matches_argon2_and_reuses_its_areas() {
        let hash: Arc<str> = crate::auth::users::hash_password("right").unwrap().into();
        let verifier = Verifier::new(2, 4);
        for _ in 0..3 {
            assert!(verifier.verify(hash.clone(), "right".into()).await.unwrap());
            assert!(!verifier.verify(hash.clone(), "wrong".into()).await.unwrap());
        }
        let areas = verifier.areas.lock().unwrap();
        assert!(areas.len() <= 2, "{} areas for 2 permits", areas.len());
        let blocks = Params::default().block_count();
        assert!(areas.iter().all(|a| a.len() == blocks));
    }

    #[test]
    fn malformed_hashes_fail() {
        let mut area = Vec::new();
        assert!(!verify_in("", b"x", &mut area));
        assert!(!verify_in(
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ",
            b"x",
            &mut area
        ));
        assert!(!verify_in(
            "$argon2id$v=99$m=8,t=1,p=1$c2FsdHNhbHQ$AAAA",
            b"x",
            &mut area
        ));
    }
}
