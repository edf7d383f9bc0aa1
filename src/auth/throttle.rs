//! Brute-force throttling per client address: too many failures within a window lock the address
//! out for a while. The map is bounded and swept, and IPv6 clients are grouped by their /64.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How many failures, over which window, lock an address out for how long; and how many addresses
/// are tracked at most.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    /// Failures within `window` that trigger a lockout.
    pub max_failures: u32,
    /// The counting window.
    pub window: Duration,
    /// How long a locked-out address is refused.
    pub lockout: Duration,
    /// Bound on tracked addresses, so a spray of source addresses cannot grow memory without limit.
    pub max_tracked: usize,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        ThrottleLimits {
            max_failures: 10,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            max_tracked: 10_000,
        }
    }
}

/// Failures of one address.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Start of the current counting window.
    window_start: Instant,
    /// Failures since `window_start`.
    failures: u32,
    /// Set while the address is locked out.
    locked_until: Option<Instant>,
}

/// The tracked addresses.
#[derive(Debug)]
struct State {
    /// Failures per address key (IPv4, or an IPv6 /64).
    records: HashMap<IpAddr, Record>,
    /// When the map was last swept of stale records.
    last_sweep: Instant,
}

/// Per-address failure counter with lockout.
#[derive(Debug)]
pub struct Throttle {
    /// The thresholds.
    limits: ThrottleLimits,
    /// The tracked addresses; a plain mutex, held for a few map operations only.
    state: Mutex<State>,
}

impl Throttle {
    /// A throttle with `limits`.
    pub fn new(limits: ThrottleLimits) -> Throttle {
        Throttle {
            limits,
            state: Mutex::new(State {
                records: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// `Err(seconds until a retry may succeed)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let state = self.lock();
        match state.records.get(&key(ip)).and_then(|r| r.locked_until) {
            Some(until) if until > now => Err(ceil_secs(until - now)),
            _ => Ok(()),
        }
    }

    /// Counts a failure from `ip`; returns `Some(retry_after)` if this failure locked it out.
    pub fn record_failure(&self, ip: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let limits = self.limits;
        let mut state = self.lock();
        if now.duration_since(state.last_sweep) >= limits.window {
            sweep(&mut state, now, limits.window);
        }
        let k = key(ip);
        if !state.records.contains_key(&k) && state.records.len() >= limits.max_tracked {
            sweep(&mut state, now, limits.window);
            if state.records.len() >= limits.max_tracked {
                // Every slot holds a recent failure: drop the oldest unlocked record, or, if all
                // are locked out, leave this address untracked (the verification cap still holds).
                let oldest = state
                    .records
                    .iter()
                    .filter(|(_, r)| r.locked_until.is_none())
                    .min_by_key(|(_, r)| r.window_start)
                    .map(|(k, _)| *k);
                match oldest {
                    Some(old) => {
                        state.records.remove(&old);
                    }
                    None => return None,
                }
            }
        }
        let record = state.records.entry(k).or_insert(Record {
            window_start: now,
            failures: 0,
            locked_until: None,
        });
        if let Some(until) = record.locked_until {
            if until > now {
                return Some(ceil_secs(until - now));
            }
            record.locked_until = None;
            record.failures = 0;
            record.window_start = now;
        }
        if now.duration_since(record.window_start) >= limits.window {
            record.failures = 0;
            record.window_start = now;
        }
        record.failures += 1;
        if record.failures >= limits.max_failures {
            record.locked_until = Some(now + limits.lockout);
            return Some(ceil_secs(limits.lockout));
        }
        None
    }

    /// Forgets the failures of `ip` after a successful authentication.
    pub fn record_success(&self, ip: IpAddr) {
        self.lock().records.remove(&key(ip));
    }

    /// How many addresses are tracked (for tests and health).
    pub fn tracked(&self) -> usize {
        self.lock().records.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map inconsistent; keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drops records whose window has passed and that are not locked out.
fn sweep(state: &mut State, now: Instant, window: Duration) {
    state.records.retain(|_, r| match r.locked_until {
        Some(until) => until > now,
        None => now.duration_since(r.window_start) < window,
    });
    state.last_sweep = now;
}

/// The throttling key: IPv4 as is (IPv4-mapped IPv6 too), IPv6 reduced to its /64, since one
/// client usually owns a whole /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn locks_out_after_max_failures_then_releases() {
        let t = Throttle::new(ThrottleLimits::default());
        let a = ip("10.0.0.1");
        for _ in 0..9 {
            assert_eq!(t.record_failure(a), None);
            assert!(t.check(a).is_ok());
        }
        assert_eq!(t.record_failure(a), Some(300));
        assert_eq!(t.check(a), Err(300));
        assert!(
            t.check(ip("10.0.0.2")).is_ok(),
            "other addresses unaffected"
        );
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(t.check(a), Err(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(t.check(a).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_spread_over_windows_do_not_lock() {
        let t = Throttle::new(ThrottleLimits::default());
        let a = ip("10.0.0.1");
        for _ in 0..3 {
            for _ in 0..9 {
                assert_eq!(t.record_failure(a), None);
            }
            tokio::time::advance(Duration::from_secs(61)).await;
        }
        assert!(t.check(a).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets() {
        let t = Throttle::new(ThrottleLimits::default());
        let a = ip("10.0.0.1");
        for _ in 0..9 {
            t.record_failure(a);
        }
        t.record_success(a);
        assert_eq!(t.record_failure(a), None);
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_grouped_by_64() {
        let t = Throttle::new(ThrottleLimits::default());
        for i in 0..10 {
            t.record_failure(ip(&format!("2001:db8:1:2::{i:x}")));
        }
        assert!(t.check(ip("2001:db8:1:2:ffff::1")).is_err());
        assert!(t.check(ip("2001:db8:1:3::1")).is_ok());
        assert!(t.check(ip("::ffff:10.0.0.9")).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn map_stays_bounded_and_sweeps() {
        let limits = ThrottleLimits {
            max_tracked: 100,
            ..ThrottleLimits::default()
        };
        let t = Throttle::new(limits);
        for i in 0..1000u32 {
            t.record_failure(IpAddr::V4(i.into()));
            assert!(t.tracked() <= 100);
        }
        tokio::time::advance(Duration::from_secs(61)).await;
        t.record_failure(ip("10.9.9.9"));
        assert_eq!(t.tracked(), 1, "stale records swept");
    }
}
