// SPDX-License-Identifier: MPL-2.0
//! What every test that meets a real peer needs, in one file for both test binaries (the
//! plugin's unit tests include it from src/test_support.rs): a free port, the venv's Python,
//! and a tests/python script as a child process read line by line.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A port nobody listens on right now, below Linux's ephemeral range (32768-60999): the
/// client ends of other connections (vidgear's, ZeroMQ's) take ports from that range, and one
/// could take ours between this check and the element's bind. Each port is handed out once
/// per test process; the start differs between processes.
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

/// What the venv's Python prints on stdout when run with `args`; a failure is the test's,
/// with Python's stderr.
pub fn python_stdout<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = Command::new(python()).args(args).output().expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 from python")
}

/// Starts tests/python/`name` with the venv's python; its stdout lines arrive on the
/// receiver as they are printed (stderr goes to the test's).
pub fn spawn_script<S: AsRef<std::ffi::OsStr>>(
    name: &str,
    args: &[S],
) -> (Child, mpsc::Receiver<String>) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name);
    let mut child = Command::new(python())
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn python {name}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines)
}

/// A running script from tests/python; killed when dropped.
pub struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    /// tests/python/netgear_peer.py: plain sender or receiver.
    pub fn start(args: &[String]) -> Peer {
        Peer::script("netgear_peer.py", args)
    }

    /// tests/python/netgear_modes.py: the exclusive modes.
    pub fn modes(args: &[String]) -> Peer {
        Peer::script("netgear_modes.py", args)
    }

    /// Any script in tests/python.
    pub fn script(name: &str, args: &[String]) -> Peer {
        let (child, lines) = spawn_script(name, args);
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

    /// The peer's next line, if it prints one within `timeout`.
    pub fn line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// A line the peer has printed already, without waiting.
    pub fn printed_line(&self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// The peer's next line, read as JSON.
    pub fn json(&self, timeout: Duration) -> serde_json::Value {
        let line = self.line(timeout).expect("no line from the peer");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
    }

    /// The peer's closing JSON report, once it has exited.
    pub fn report(&mut self, timeout: Duration) -> serde_json::Value {
        let report = self.json(timeout);
        self.wait_exit();
        report
    }

    /// Waits for the peer to exit by itself.
    pub fn wait_exit(&mut self) {
        let _ = self.child.wait();
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

/// Options for a peer script: `--key value …` (an empty value: a bare flag).
pub fn flag_args(pairs: &[(&str, String)]) -> Vec<String> {
    let mut args = Vec::new();
    for (k, v) in pairs {
        args.push(format!("--{k}"));
        if !v.is_empty() {
            args.push(v.clone());
        }
    }
    args
}

/// Arguments for a peer script: `mode --key value …`.
pub fn script_args(mode: &str, pairs: &[(&str, String)]) -> Vec<String> {
    let mut args = vec![mode.to_owned()];
    args.extend(flag_args(pairs));
    args
}

/// Arguments for the peer script with a port and a pattern.
pub fn peer_args(mode: &str, port: u16, pattern: u8, extra: &[(&str, String)]) -> Vec<String> {
    let mut pairs = vec![("port", port.to_string()), ("pattern", pattern.to_string())];
    pairs.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    script_args(mode, &pairs)
}
