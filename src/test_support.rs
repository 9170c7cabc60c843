// SPDX-License-Identifier: MPL-2.0
//! Helpers for the unit tests that meet real peers: GStreamer init, free ports, the
//! venv's Python with vidgear, and tests/python/netgear_peer.py as a child process.

#[path = "../tests/it/common/child.rs"]
mod child;

pub use child::{free_port, python};
use std::process::Child;
use std::sync::{mpsc, Once};
use std::time::Duration;

/// Initialises GStreamer once, so the transport's debug category logs as it does in the
/// elements.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| gst::init().expect("gst init"));
}

/// A running `tests/python/netgear_peer.py`: a plain vidgear sender or receiver, or the
/// maker of a key set.
pub struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    /// Starts the script with the venv's python; its stdout lines arrive as they are
    /// printed (stderr goes to the test's).
    pub fn start(args: &[String]) -> Peer {
        let (child, lines) = child::spawn_script("netgear_peer.py", args);
        Peer { child, lines }
    }

    /// Waits for a receiving peer to say it is bound.
    pub fn wait_ready(&self, timeout: Duration) {
        let line = self
            .lines
            .recv_timeout(timeout)
            .expect("peer never became ready");
        assert_eq!(line, "READY", "unexpected first line from peer");
    }

    /// The peer's closing JSON report.
    pub fn report(&mut self, timeout: Duration) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(timeout)
            .expect("peer printed no report");
        let _ = self.child.wait();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad report {line:?}: {e}"))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Arguments for the peer script: `mode --port P --pattern N --key value …` (an empty
/// value: a bare flag).
pub fn peer_args(mode: &str, port: u16, pattern: u8, extra: &[(&str, String)]) -> Vec<String> {
    let mut pairs = vec![("port", port.to_string()), ("pattern", pattern.to_string())];
    pairs.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    let mut args = vec![mode.to_owned()];
    for (k, v) in pairs {
        args.push(format!("--{k}"));
        if !v.is_empty() {
            args.push(v);
        }
    }
    args
}

/// A vidgear key set under a fresh directory.
pub fn vidgear_keys(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("netgear-net-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.to_string_lossy().into_owned();
    let mut peer = Peer::start(&["keys".into(), "--certs".into(), dir.clone()]);
    peer.report(Duration::from_secs(20));
    dir
}
