// SPDX-License-Identifier: MPL-2.0
//! Ports and ipc paths for the elements under test.

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

/// `n` different free ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    while out.len() < n {
        let p = free_port();
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Ports as the `ports` property takes them: `5566,5567`.
pub fn port_list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A fresh ipc path prefix (the endpoint becomes `ipc://PREFIX:PORT`).
pub fn ipc_prefix(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("netgear-test-{}-{tag}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir.join("feed").to_string_lossy().into_owned()
}
