// SPDX-License-Identifier: MPL-2.0
//! vidgear's receiver give-up on `netgearsrc` (patterns 0, 1): with `max-retries=N` the
//! stream ends (a warning, then EOS) after N silent periods in a row, each 3 ×
//! `request-timeout` with no message, so after N × 3 × request-timeout of silence. The
//! default is vidgear's 3; 0 never gives up, so senders may come and go. Senders are the
//! real vidgear.

use crate::common::*;
use gst::prelude::*;
use std::time::{Duration, Instant};

fn receiver(port: u16, pattern: u8, props: &[(&str, &str)]) -> Receiver {
    let (port, pattern) = (port.to_string(), pattern.to_string());
    let mut all = vec![
        ("port", port.as_str()),
        ("address", "127.0.0.1"),
        ("pattern", pattern.as_str()),
    ];
    all.extend_from_slice(props);
    Receiver::new(&all)
}

fn assert_exact(frames: &[Frame]) {
    for frame in frames {
        let packed = frame.packed();
        assert_eq!(
            packed,
            test_frame(frame_index(&packed), 64, 48, 3, false),
            "a frame differs"
        );
    }
}

/// A vidgear sender of `bursts` × `frames` frames with `pause` seconds of silence between.
fn bursts(port: u16, pattern: u8, bursts: u32, frames: u32, pause: f64) -> Peer {
    Peer::modes(&script_args(
        "burst-send",
        &[
            ("port", port.to_string()),
            ("pattern", pattern.to_string()),
            ("bursts", bursts.to_string()),
            ("frames", frames.to_string()),
            ("pause", pause.to_string()),
        ],
    ))
}

#[test]
fn no_sender_ends_after_max_retries_silent_periods() {
    for pattern in [0u8, 1] {
        let port = free_port();
        let receiver = receiver(
            port,
            pattern,
            &[
                ("request-timeout", "300"),
                ("max-retries", "2"),
                // vidgear's count from the start (recording.rs: the default waits).
                ("wait-for-sender", "false"),
            ],
        );
        let start = Instant::now();
        receiver.play();
        let watched = watch(&receiver.pipeline, start, Duration::from_secs(10));
        assert!(
            matches!(watched.outcome, Outcome::Eos),
            "pattern {pattern}: {:?} after {:?}",
            watched.outcome,
            watched.after
        );
        // max-retries × 3 × request-timeout = 2 × 900 ms: never sooner, and one period
        // less than max-retries + 1 would take.
        assert!(
            watched.after >= Duration::from_millis(1800)
                && watched.after < Duration::from_millis(2700),
            "pattern {pattern}: EOS after {:?}",
            watched.after
        );
        let expected = format!("No sender for 2 × 900 ms on tcp://127.0.0.1:{port}: end of stream");
        assert!(
            watched.warnings.iter().any(|w| w.contains(&expected)),
            "pattern {pattern}: warnings {:?}",
            watched.warnings
        );
        // One rebind between the two silent periods, as vidgear reconnects once.
        assert_eq!(receiver.stats().get::<u64>("reconnects").unwrap(), 1);
    }
}

/// Two pauses of two silent periods each: vidgear's counter, never reset, would give up
/// at the third; ours counts periods in a row, and a frame starts it again.
#[test]
fn pauses_shorter_than_the_give_up_keep_the_stream() {
    for pattern in [1u8, 0] {
        let port = free_port();
        let receiver = receiver(
            port,
            pattern,
            &[("request-timeout", "300"), ("max-retries", "3")],
        );
        receiver.play();
        // 2.0 s pauses: rebinds after 0.9 and 1.8 s, the give-up would come at 2.7 s.
        let mut peer = bursts(port, pattern, 3, 5, 2.0);
        let (frames, eos) = receiver.collect(Duration::from_secs(15));
        let report = peer.report(Duration::from_secs(20));
        assert_eq!(report["sent"], 15, "pattern {pattern}");
        assert!(eos, "pattern {pattern}: no EOS from the termination");
        assert_eq!(frames.len(), 15, "pattern {pattern}");
        assert_exact(&frames);
        let warnings = queued_warnings(&receiver.pipeline);
        assert!(
            !warnings.iter().any(|w| w.contains("No sender")),
            "pattern {pattern}: gave up: {warnings:?}"
        );
        assert!(
            receiver.stats().get::<u64>("reconnects").unwrap() >= 4,
            "pattern {pattern}: {:?}",
            receiver.stats()
        );
    }
}

/// `max-retries=0` keeps the source waiting through any silence: a sender that dies and
/// one that starts much later (longer than the default give-up, vidgear's 3, would allow).
#[test]
fn max_retries_zero_waits_for_senders_that_come_and_go() {
    init();
    let src = gst::ElementFactory::make("netgearsrc").build().unwrap();
    let sink = gst::ElementFactory::make("netgearsink").build().unwrap();
    assert_eq!(src.property::<u32>("max-retries"), 3, "vidgear's default");
    assert_eq!(sink.property::<u32>("max-retries"), 3);
    for pattern in [1u8, 0] {
        let port = free_port();
        let receiver = receiver(
            port,
            pattern,
            &[("request-timeout", "200"), ("max-retries", "0")],
        );
        receiver.play();
        let args = [
            ("frames", "1000".to_string()),
            ("interval", "0.02".into()),
            ("width", "64".into()),
            ("height", "48".into()),
            ("channels", "3".into()),
        ];
        let mut first = Peer::start(&peer_args("send", port, pattern, &args));
        let frame = receiver.next_frame(Duration::from_secs(15));
        assert!(
            frame.is_some(),
            "pattern {pattern}: nothing from the first sender"
        );
        first.kill();
        // 3 s of silence: five periods of 600 ms, vidgear's default (3) gives up at 1.8 s.
        let start = Instant::now();
        let watched = watch(&receiver.pipeline, start, Duration::from_secs(3));
        assert!(
            matches!(watched.outcome, Outcome::TimedOut) && watched.warnings.is_empty(),
            "pattern {pattern}: {:?}, {:?}",
            watched.outcome,
            watched.warnings
        );
        while receiver.next_frame(Duration::from_millis(100)).is_some() {}
        let mut second = bursts(port, pattern, 1, 5, 0.0);
        let (frames, eos) = receiver.collect(Duration::from_secs(10));
        let _ = second.report(Duration::from_secs(15));
        assert!(eos, "pattern {pattern}: no EOS from the second sender");
        assert_eq!(frames.len(), 5, "pattern {pattern}");
        assert_exact(&frames);
    }
}
