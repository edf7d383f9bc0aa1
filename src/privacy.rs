//! The privacy policy (CONTRACT §7): applied by the tailer to each entry as it is made, and by a
//! fleet central to each entry it takes from a node's stream, before its id, record and journal
//! line, so nothing downstream (history, journal, subscribers, filters)
//! ever holds a raw value the policy removes.
//!
//! Pseudonyms are `p-` plus the first 12 hex digits of HMAC-SHA-256 under a 256-bit key drawn from
//! the OS random source, held only in memory and replaced when the UTC day changes: within a day a
//! client (or user) keeps one pseudonym; across days, or after a restart, nothing links them.
//! Client addresses and user names are hashed under different prefixes, so a user called
//! `10.0.0.1` never shares a pseudonym with that address.
use crate::config::{ClientIpPrivacy, PrivacyPolicy, QueryPrivacy, UserPrivacy};
use hmac::{Hmac, Mac};
use parsers::Entry;
use sha2::Sha256;
use std::borrow::Cow;
use std::net::IpAddr;

/// Hex digits of the HMAC kept in a pseudonym: 48 bits, so collisions stay rare within a day's
/// clients while the text stays short.
const PSEUDONYM_HEX: usize = 12;
/// Seconds in a UTC day.
const DAY_SECS: u64 = 86_400;

/// Applies the policy; built only when some setting is not `keep` (so `keep` costs nothing).
#[derive(Debug)]
pub struct Privacy {
    /// What to do with each field.
    policy: PrivacyPolicy,
    /// The current key and the UTC day it belongs to (days since the epoch); `None` until the
    /// first pseudonym is needed.
    key: Option<(u64, [u8; 32])>,
}

impl Privacy {
    /// The policy's applier, or `None` when it keeps everything.
    pub fn new(policy: PrivacyPolicy) -> Option<Privacy> {
        (policy != PrivacyPolicy::default()).then_some(Privacy { policy, key: None })
    }

    /// Applies the policy to `entry`, with today's key (UTC day from the system clock).
    pub fn apply(&mut self, entry: &mut Entry<'_>) {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.apply_on_day(entry, secs / DAY_SECS);
    }

    /// Applies the policy to `entry` with the key of `day` (days since the epoch, UTC); a new
    /// day draws a new key and forgets the old one.
    fn apply_on_day(&mut self, entry: &mut Entry<'_>, day: u64) {
        match self.policy.client_ip {
            ClientIpPrivacy::Keep => {}
            ClientIpPrivacy::Truncate => {
                // An address that does not parse (a host name) cannot be truncated: it is dropped
                // rather than kept whole.
                entry.client_ip = entry
                    .client_ip
                    .as_deref()
                    .and_then(truncate)
                    .map(Cow::Owned);
            }
            ClientIpPrivacy::Pseudonymize => {
                if let Some(ip) = entry.client_ip.as_deref() {
                    // Parsed first, so `2001:0db8::5` and `2001:db8::5` are one client.
                    let canonical = ip.parse::<IpAddr>().map(|a| a.to_canonical().to_string());
                    let text = canonical.as_deref().unwrap_or(ip);
                    let p = self.pseudonym(day, b"client\0", text);
                    entry.client_ip = Some(Cow::Owned(p));
                }
            }
        }
        match self.policy.user {
            UserPrivacy::Keep => {}
            UserPrivacy::Drop => entry.user = None,
            UserPrivacy::Pseudonymize => {
                if let Some(user) = entry.user.as_deref() {
                    let p = self.pseudonym(day, b"user\0", user);
                    entry.user = Some(Cow::Owned(p));
                }
            }
        }
        if self.policy.query == QueryPrivacy::Strip {
            if let Some(dest) = &mut entry.destination {
                if let Some(i) = dest.find('?') {
                    match dest {
                        Cow::Borrowed(s) => *s = &s[..i],
                        Cow::Owned(s) => s.truncate(i),
                    }
                }
            }
        }
    }

    /// `p-` and the first hex digits of HMAC(key of `day`, `domain` + `value`).
    fn pseudonym(&mut self, day: u64, domain: &[u8], value: &str) -> String {
        let key = match self.key {
            Some((d, key)) if d == day => key,
            _ => {
                let key = random_key();
                self.key = Some((day, key));
                key
            }
        };
        // HMAC takes a key of any length; a 32-byte one cannot be refused.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes any key");
        mac.update(domain);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(2 + PSEUDONYM_HEX);
        out.push_str("p-");
        for b in &digest[..PSEUDONYM_HEX / 2] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// 32 bytes from the OS random source (the thread's OS-seeded CSPRNG should that fail).
fn random_key() -> [u8; 32] {
    use rand::{RngCore, TryRngCore};
    let mut key = [0u8; 32];
    if rand::rngs::OsRng.try_fill_bytes(&mut key).is_err() {
        rand::rng().fill_bytes(&mut key);
    }
    key
}

/// The address with its host part zeroed (IPv4 /24, IPv6 /48, IPv4-mapped IPv6 as IPv4), or
/// `None` if `ip` is not an address.
fn truncate(ip: &str) -> Option<String> {
    let addr = ip.parse::<IpAddr>().ok()?.to_canonical();
    let prefix = if addr.is_ipv4() { 24 } else { 48 };
    Some(crate::filter::mask(addr, prefix).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(client_ip: ClientIpPrivacy, user: UserPrivacy, query: QueryPrivacy) -> Privacy {
        Privacy::new(PrivacyPolicy {
            client_ip,
            user,
            query,
        })
        .expect("not all keep")
    }

    fn entry(ip: &str, user: Option<&str>, dest: &str) -> Entry<'static> {
        Entry {
            client_ip: Some(Cow::Owned(ip.to_owned())),
            user: user.map(|u| Cow::Owned(u.to_owned())),
            destination: Some(Cow::Owned(dest.to_owned())),
            ..Entry::default()
        }
    }

    #[test]
    fn keep_everywhere_builds_nothing() {
        assert!(Privacy::new(PrivacyPolicy::default()).is_none());
    }

    #[test]
    fn truncate_zeroes_the_host_part() {
        let mut p = policy(
            ClientIpPrivacy::Truncate,
            UserPrivacy::Keep,
            QueryPrivacy::Keep,
        );
        for (ip, want) in [
            ("10.1.2.3", Some("10.1.2.0")),
            ("2001:db8:aaaa:bbbb::1", Some("2001:db8:aaaa::")),
            ("::ffff:192.168.7.9", Some("192.168.7.0")),
            ("proxy.example.com", None),
        ] {
            let mut e = entry(ip, Some("bob"), "http://x/?a=1");
            p.apply_on_day(&mut e, 1);
            assert_eq!(e.client_ip.as_deref(), want, "{ip}");
            assert_eq!(e.user.as_deref(), Some("bob"));
            assert_eq!(e.destination.as_deref(), Some("http://x/?a=1"));
        }
    }

    #[test]
    fn pseudonyms_are_stable_within_a_day_and_change_with_it() {
        let mut p = policy(
            ClientIpPrivacy::Pseudonymize,
            UserPrivacy::Pseudonymize,
            QueryPrivacy::Keep,
        );
        let apply = |p: &mut Privacy, ip: &str, user: &str, day: u64| {
            let mut e = entry(ip, Some(user), "h:443");
            p.apply_on_day(&mut e, day);
            (
                e.client_ip.map(|c| c.into_owned()),
                e.user.map(|u| u.into_owned()),
            )
        };
        let (a1, u1) = apply(&mut p, "2001:db8::5", "10.0.0.1", 100);
        let (a2, _) = apply(&mut p, "2001:0db8::5", "x", 100);
        let (b, _) = apply(&mut p, "10.0.0.1", "x", 100);
        let a1 = a1.expect("pseudonym");
        assert_eq!(
            Some(&a1),
            a2.as_ref(),
            "one pseudonym per address within a day"
        );
        assert!(
            a1.starts_with("p-") && a1.len() == 2 + PSEUDONYM_HEX,
            "{a1}"
        );
        assert_ne!(Some(&a1), b.as_ref());
        assert_ne!(b, u1, "users and addresses are hashed apart");
        let (next_day, _) = apply(&mut p, "2001:db8::5", "x", 101);
        assert_ne!(Some(a1), next_day, "a new day, a new key");
    }

    #[test]
    fn user_drop_and_query_strip() {
        let mut p = policy(
            ClientIpPrivacy::Keep,
            UserPrivacy::Drop,
            QueryPrivacy::Strip,
        );
        let mut e = entry("10.1.2.3", Some("bob"), "http://x/p?token=secret#f");
        p.apply_on_day(&mut e, 1);
        assert_eq!(e.client_ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(e.user, None);
        assert_eq!(e.destination.as_deref(), Some("http://x/p"));
        let mut borrowed = Entry {
            destination: Some(Cow::Borrowed("http://y/?q")),
            ..Entry::default()
        };
        p.apply_on_day(&mut borrowed, 1);
        assert_eq!(borrowed.destination.as_deref(), Some("http://y/"));
    }

    #[test]
    fn settings_come_from_flags_and_the_toml_file() {
        use crate::config::Config;
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("proxytail.toml");
        std::fs::write(
            &file,
            "privacy-client-ip = \"truncate\"\nprivacy-user = \"drop\"\n",
        )
        .expect("write toml");
        let args = [
            "proxytail",
            "--config",
            file.to_str().expect("utf-8 path"),
            "--privacy-user",
            "pseudonymize",
            "--privacy-query",
            "strip",
        ];
        let (_, config) = Config::from_args(args).expect("valid");
        assert_eq!(
            config.privacy,
            PrivacyPolicy {
                client_ip: ClientIpPrivacy::Truncate,
                user: UserPrivacy::Pseudonymize,
                query: QueryPrivacy::Strip,
            }
        );
        assert!(Config::from_args(["proxytail", "--privacy-query", "hide"]).is_err());
        let (_, default) = Config::from_args(["proxytail"]).expect("valid");
        assert_eq!(default.privacy, PrivacyPolicy::default());
    }
}
