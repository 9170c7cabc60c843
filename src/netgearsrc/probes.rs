// SPDX-License-Identifier: MPL-2.0
//! Connections that close before their handshake on a plain receiver: a TCP health check,
//! or a sender with another pattern whose libzmq noticed the mismatch first (libzmq 4.3
//! reports both alike). One is a probe and stays silent; the same address failing again
//! after a sender's retry interval looks like a sender that keeps retrying.

use crate::sync::lock;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Closer repeats are a scanner or a health check, not a NetGear sender: vidgear retries a
/// refused handshake only after its request timeout (at least 4 s), and libzmq at once.
const MIN_RETRY_GAP: Duration = Duration::from_secs(1);
/// Addresses remembered at most; a flood of probes cannot grow the map without bound.
const MAX_ADDRESSES: usize = 64;

/// The last probe seen from each address.
#[derive(Default)]
pub struct Probes(Mutex<HashMap<String, Instant>>);

impl Probes {
    /// Records a probe from `peer` (`ip:port`); true when the same IP probed between
    /// `MIN_RETRY_GAP` and `window` ago, as a retrying sender of another pattern would.
    pub fn repeated(&self, peer: &str, window: Duration) -> bool {
        let ip = match peer.rsplit_once(':') {
            Some((ip, _)) => ip.to_owned(),
            None => peer.to_owned(),
        };
        let now = Instant::now();
        let mut last = lock(&self.0);
        if last.len() >= MAX_ADDRESSES {
            last.retain(|_, at| now.duration_since(*at) < window);
        }
        let before = last.insert(ip, now);
        before.is_some_and(|at| {
            let gap = now.duration_since(at);
            (MIN_RETRY_GAP..=window).contains(&gap)
        })
    }

    pub fn reset(&self) {
        lock(&self.0).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_repeats_and_first_probes_stay_silent() {
        let probes = Probes::default();
        let window = Duration::from_secs(12);
        assert!(!probes.repeated("127.0.0.1:4000", window));
        assert!(!probes.repeated("127.0.0.1:4001", window));
        assert!(!probes.repeated("10.0.0.1:4001", window));
        let mut map = lock(&probes.0);
        let past = Instant::now() - Duration::from_secs(2);
        map.insert("127.0.0.1".into(), past);
        map.insert("[::1]".into(), Instant::now() - Duration::from_secs(20));
        drop(map);
        assert!(probes.repeated("127.0.0.1:4002", window));
        assert!(!probes.repeated("[::1]:4002", window));
    }
}
