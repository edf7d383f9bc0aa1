//! Wrong password and unknown user cost the same (RELIABILITY 36): 200 interleaved samples of each,
//! medians compared. A statistical equal-work check, not a speed assertion: an unknown user that
//! skipped hashing, or a dummy hash with other parameters than the users', fails it by a wide margin.
mod auth_support;

use auth_support::*;
use proxytail::auth::users::hash_password_with;
use proxytail::auth::Authenticator;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const SAMPLES: usize = 200;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_take_the_same_time() {
    // Parameters other than the crate defaults, so that a dummy hash not derived from the users'
    // own parameters would show.
    let params = hash_params(4096, 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    let hash = hash_password_with("the right one", &params).unwrap();
    std::fs::write(&path, format!("# one user\nalice:{hash}\n")).unwrap();
    let auth = Authenticator::load(&config(&["--users", path.to_str().unwrap()])).unwrap();
    let wrong = basic("alice", "not the right one");
    let unknown = basic("nobody", "not the right one");

    let mut t_wrong = Vec::with_capacity(SAMPLES);
    let mut t_unknown = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        // A fresh address per attempt keeps the brute-force throttle out of the measurement.
        let peer = |net: u8| IpAddr::V4(Ipv4Addr::new(10, net, (i / 256) as u8, (i % 256) as u8));
        // Alternate which goes first so that drifts in machine load hit both alike.
        let order: [(&str, u8); 2] = if i % 2 == 0 {
            [(&wrong, 1), (&unknown, 2)]
        } else {
            [(&unknown, 2), (&wrong, 1)]
        };
        for (header, net) in order {
            let start = Instant::now();
            let result = auth.authenticate(Some(header), None, peer(net)).await;
            let took = start.elapsed();
            assert!(
                matches!(result, Err(proxytail::auth::AuthError::Invalid)),
                "{result:?}"
            );
            if net == 1 {
                t_wrong.push(took);
            } else {
                t_unknown.push(took);
            }
        }
    }
    let (m_wrong, m_unknown) = (median(t_wrong), median(t_unknown));
    let larger = m_wrong.max(m_unknown);
    let diff = m_wrong.abs_diff(m_unknown);
    eprintln!("median wrong password {m_wrong:?}, unknown user {m_unknown:?}, diff {diff:?}");
    assert!(
        diff < larger / 4,
        "medians differ by {diff:?} (wrong password {m_wrong:?}, unknown user {m_unknown:?})"
    );
    assert_eq!(auth.verifier().started(), 2 * SAMPLES as u64);
}
