// SPDX-License-Identifier: MPL-2.0
//! Ports and ipc paths for the elements under test.

use super::child::free_port;

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
