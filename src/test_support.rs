// SPDX-License-Identifier: MPL-2.0
//! Helpers for the unit tests that meet real peers: GStreamer init, free ports, the
//! venv's Python with vidgear, and tests/python/netgear_peer.py as a child process (the
//! integration tests' own, from tests/it/common/child.rs).

#[path = "../tests/it/common/child.rs"]
mod child;

pub use child::{free_port, peer_args, python_stdout, Peer};
use std::sync::Once;
use std::time::Duration;

/// Initialises GStreamer once, so the transport's debug category logs as it does in the
/// elements.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| gst::init().expect("gst init"));
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
