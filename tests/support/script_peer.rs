// SPDX-License-Identifier: MPL-2.0
//! A Python script from tests/python run with the venv's vidgear, read line by line: for
//! the scripts `common::Peer` does not start (netgear_pixels.py, netgear_paced.py).
#![allow(dead_code)]

use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

pub struct ScriptPeer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ScriptPeer {
    pub fn start(script: &str, args: &[String]) -> ScriptPeer {
        let (child, lines) = super::common::spawn_script(script, args);
        ScriptPeer { child, lines }
    }

    /// Waits for the script's first line, READY.
    pub fn wait_ready(&self) {
        let ready = self.lines.recv_timeout(Duration::from_secs(20));
        assert_eq!(ready.as_deref(), Ok("READY"), "script not ready");
    }

    /// The script's closing JSON line.
    pub fn report(mut self) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("script report");
        let _ = self.child.wait();
        serde_json::from_str(&line).expect("JSON report")
    }
}

impl Drop for ScriptPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
