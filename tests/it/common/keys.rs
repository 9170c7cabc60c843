// SPDX-License-Identifier: MPL-2.0
//! CURVE key sets for secure mode, made by vidgear and by the plugin's own generator.

use super::{temp_dir, Peer};
use netgear_protocol::keys::KeyDirs;
use std::path::PathBuf;
use std::time::Duration;

/// A key set made by vidgear's own generate_auth_certificates in a fresh directory.
pub fn vidgear_keys(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    let mut peer = Peer::start(&[
        "keys".into(),
        "--certs".into(),
        dir.to_string_lossy().into_owned(),
    ]);
    peer.report(Duration::from_secs(20));
    assert!(dir
        .join(".vidgear/keys/private_keys/server.key_secret")
        .exists());
    dir
}

/// A key set made by our key tool's code in a fresh directory.
pub fn our_keys(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    KeyDirs::new(dir.to_str().unwrap())
        .unwrap()
        .generate()
        .unwrap();
    dir
}
