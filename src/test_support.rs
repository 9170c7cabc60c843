// SPDX-License-Identifier: MPL-2.0
//! Helpers for the unit tests that meet real peers: GStreamer init, free ports, the
//! venv's Python with vidgear, and tests/python/netgear_peer.py as a child process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Once};
use std::time::Duration;

/// Initialises GStreamer once, so the transport's debug category logs as it does in the
/// elements.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| gst::init().expect("gst init"));
}

/// A port nobody listens on right now, below Linux's ephemeral range (32768-60999): the
/// client ends of other connections (vidgear's, ZeroMQ's) take ports from that range, and one
/// could take ours between this check and the bind. Each port is handed out once per test
/// process; the start differs between processes.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20000;
    const SPAN: u32 = 12000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let seed = std::process::id().wrapping_mul(2654435761) % SPAN;
    let _ = NEXT.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN);
}

/// The venv's Python with vidgear (scripts/setup makes it). Missing is a failure, not a skip.
pub fn python() -> PathBuf {
    let path = std::env::var_os("NETGEAR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        path.exists(),
        "no Python with vidgear at {}: run scripts/setup (or set NETGEAR_PYTHON)",
        path.display()
    );
    path
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
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/netgear_peer.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn python netgear_peer.py: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
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
