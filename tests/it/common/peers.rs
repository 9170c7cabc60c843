// SPDX-License-Identifier: MPL-2.0
//! The real vidgear (0.3.6, in the venv scripts/setup makes) as a peer: the scripts in
//! tests/python run as child processes and read line by line.

use super::child::Peer;
use super::Sender;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
