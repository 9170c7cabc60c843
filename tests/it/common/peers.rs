// SPDX-License-Identifier: MPL-2.0
//! The real vidgear (0.3.6, in the venv scripts/setup makes) as a peer: the scripts in
//! tests/python run as child processes and read line by line.

use super::child::spawn_script;
use super::Sender;
use serde_json::Value;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    pub fn json(&self, timeout: Duration) -> Value {
        let line = self.line(timeout).expect("no line from the peer");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
    }

    /// The peer's closing JSON report, once it has exited.
    pub fn report(&mut self, timeout: Duration) -> Value {
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

/// A vidgear sender's frames: `frames` of `width`x`height`x`channels`; with `jpeg` (its
/// colorspace), smooth frames JPEG-compressed, else exact test frames sent raw.
pub fn sender_args(
    width: usize,
    height: usize,
    channels: usize,
    frames: usize,
    jpeg: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut args = vec![
        ("width", width.to_string()),
        ("height", height.to_string()),
        ("channels", channels.to_string()),
        ("frames", frames.to_string()),
    ];
    if let Some(colorspace) = jpeg {
        args.push(("jpeg", colorspace.to_string()));
        args.push(("smooth", String::new()));
    }
    args
}

/// A moment `seconds` ahead as a `--start-at` value, so senders that import vidgear at
/// different speeds start sending together.
pub fn start_at(seconds: f64) -> String {
    format!("{:.3}", unix_now().as_secs_f64() + seconds)
}

/// The wall clock as Python's `time.time()` reads it: the time since the Unix epoch.
pub fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after the epoch")
}

/// Sends `frames` (packed rows) through `sender` into `peer`, a ready vidgear receiver,
/// `pause(idx)` ms after the one before, as a live camera would; then ends the stream,
/// waits up to `eos` for the sink's EOS and returns the receiver's report, which must say
/// that it ended on our termination and that no frame differed in numpy.
pub fn sink_to_vidgear(
    peer: &mut Peer,
    sender: &Sender,
    frames: &[Vec<u8>],
    pause: impl Fn(usize) -> u64,
    eos: Duration,
) -> Value {
    sender.play();
    for (idx, frame) in frames.iter().enumerate() {
        std::thread::sleep(Duration::from_millis(pause(idx)));
        sender.push_packed(frame, idx as u64).expect("push");
    }
    sender.finish_expect_eos(eos);
    let report = peer.report(eos + Duration::from_secs(5));
    assert_eq!(
        report["terminated"],
        Value::Bool(true),
        "vidgear did not end on our termination: {report}"
    );
    assert_eq!(
        report["bad"],
        Value::Array(vec![]),
        "frames differ in numpy: {report}"
    );
    report
}

/// The (server port, frame index) pairs a vidgear multi-server receiver reports, sorted.
pub fn server_frame_pairs(report: &Value) -> Vec<(u64, i64)> {
    let mut pairs: Vec<(u64, i64)> = report["pairs"]
        .as_array()
        .expect("pairs in the report")
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_i64().unwrap()))
        .collect();
    pairs.sort();
    pairs
}

/// Frames `0..frames` of each server, as `server_frame_pairs` lists them.
pub fn frames_of_every_server(servers: &[u16], frames: i64) -> Vec<(u64, i64)> {
    let mut pairs: Vec<(u64, i64)> = servers
        .iter()
        .flat_map(|p| (0..frames).map(move |i| (u64::from(*p), i)))
        .collect();
    pairs.sort();
    pairs
}
