//! Users files for tests, shared by every harness (`tests/common`, `tests/auth_support`,
//! `tests/pkg_support` include this file): Argon2id hashes at chosen (cheap) costs and a users file
//! written from name/password pairs. A leaf module: it names nothing of its includer.
#![allow(dead_code)]

use proxytail::auth::users::{hash_password_with, HashParams};
use std::path::{Path, PathBuf};

/// Argon2id v0x13 parameters with `m_kib` KiB of memory, `t` passes and one lane.
pub fn hash_params(m_kib: u32, t: u32) -> HashParams {
    HashParams {
        algorithm: argon2::Algorithm::Argon2id,
        version: argon2::Version::V0x13,
        params: argon2::Params::new(m_kib, t, 1, None).expect("valid Argon2 parameters"),
    }
}

/// Cheap Argon2id parameters for tests: m=1024 KiB, t=1, p=1.
pub fn cheap_params() -> HashParams {
    hash_params(1024, 1)
}

/// A cheap Argon2id PHC string of `password`.
pub fn cheap_hash(password: &str) -> String {
    hash_password_with(password, &cheap_params()).expect("hash")
}

/// Writes a users file (a comment line, a blank line, then `name:cheap hash` per user) into `dir`
/// and returns its path.
pub fn write_users(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let mut text = String::from("# test users\n\n");
    for (name, password) in users {
        text.push_str(&format!("{name}:{}\n", cheap_hash(password)));
    }
    let path = dir.join("users");
    std::fs::write(&path, text).expect("users file");
    path
}
