// SPDX-License-Identifier: MPL-2.0
//! What every test that meets a real peer needs, in one file for both test binaries (the
//! plugin's unit tests include it from src/test_support.rs): a free port, the venv's Python,
//! and a tests/python script as a child process read line by line.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

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
