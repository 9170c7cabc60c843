// SPDX-License-Identifier: MPL-2.0
//! Secure mode against the real vidgear in every pattern, with first frames larger than
//! 8 KB (libzmq's read batch): our sink into vidgear receivers, vidgear senders into
//! netgearsrc. vidgear's own faults (README, "Messages") are asserted as the messages that
//! name them.

use crate::common::*;
use gst_video::VideoFormat;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// 96x64 BGR: 18 KB, over the 8 KB that libzmq reads at once after a handshake.
const W: usize = 96;
const H: usize = 64;
/// 32x24 BGR: 2.3 KB, a first frame libzmq reads whole.
const SMALL_W: usize = 32;
const SMALL_H: usize = 24;

const VIDGEAR_PAIR_FAULT: &str =
    "a vidgear receiver in secure pair mode stops receiving (its thread dies with zmq.error.Again, a vidgear fault) when a connection's first frame is larger than about 8 KB";
const VIDGEAR_PUBSUB_FAULT: &str =
    "secure mode in pub-sub: a vidgear receiver gets no frame at all (a vidgear fault";

/// A secure vidgear receiver (StoneHouse) on a free port, ready.
fn vidgear_receiver(pattern: u8, certs: &Path, seconds: u32) -> (Peer, u16) {
    let port = free_port();
    let extra = [
        ("secure", "1".to_string()),
        ("certs", certs.to_string_lossy().into_owned()),
        ("address", "127.0.0.1".to_string()),
        ("seconds", seconds.to_string()),
    ];
    let peer = Peer::start(&peer_args("recv", port, pattern, &extra));
    peer.wait_ready(Duration::from_secs(20));
    (peer, port)
}

fn secure_sink(port: u16, pattern: &str, certs: &Path, (w, h): (usize, usize)) -> Sender {
    Sender::raw(
        VideoFormat::Bgr,
        w as u32,
        h as u32,
        &[
            ("port", &port.to_string()),
            ("address", "127.0.0.1"),
            ("pattern", pattern),
            ("jpeg-compression", "false"),
            ("secure-mode", "stonehouse"),
            ("cert-dir", certs.to_str().unwrap()),
            ("request-timeout", "1000"),
            ("max-retries", "1"),
        ],
    )
}

fn frames(n: usize, (w, h): (usize, usize)) -> Vec<Vec<u8>> {
    (0..n).map(|i| test_frame(i, w, h, 3, false)).collect()
}

/// Before the fix our sink connected at start: its heartbeat PING reached vidgear's secure
/// pair receiver before the first frame, and its receive thread died every time.
#[test]
fn secure_pair_sink_connects_only_when_its_first_frame_is_ready() {
    let certs = vidgear_keys("late-first");
    for round in 0..3 {
        let (mut peer, port) = vidgear_receiver(0, &certs, 15);
        let sender = secure_sink(port, "pair", &certs, (SMALL_W, SMALL_H));
        sender.play();
        // Long enough for several heartbeats on a connection made at start.
        std::thread::sleep(Duration::from_millis(1200));
        let report = sink_to_vidgear(
            &mut peer,
            &sender,
            &frames(5, (SMALL_W, SMALL_H)),
            |_| 10,
            Duration::from_secs(8),
        );
        assert_eq!(
            report["received"],
            serde_json::json!([0, 1, 2, 3, 4]),
            "round {round}"
        );
    }
}

/// vidgear's fault, unavoidable from the sender: with a first frame over 8 KB its secure
/// pair receiver dies about every other time. Each run either delivers every frame or
/// ends in an error that names that fault (before, it blamed a taken pair slot).
#[test]
fn secure_pair_sink_into_vidgear_with_a_large_first_frame_names_vidgear_s_fault() {
    let certs = vidgear_keys("large-pair");
    let (mut delivered, mut named) = (0, 0);
    for round in 0..6 {
        let (mut peer, port) = vidgear_receiver(0, &certs, 12);
        let sender = secure_sink(port, "pair", &certs, (W, H));
        sender.play();
        for (i, f) in frames(3, (W, H)).iter().enumerate() {
            if sender.push_packed(f, i as u64).is_err() {
                break;
            }
        }
        sender.finish();
        match wait_end(&sender.pipeline, Duration::from_secs(8)) {
            Outcome::Eos => {
                let report = peer.report(Duration::from_secs(15));
                assert_eq!(report["received"], serde_json::json!([0, 1, 2]), "{report}");
                delivered += 1;
            }
            Outcome::Error(text) => {
                assert!(text.contains(VIDGEAR_PAIR_FAULT), "round {round}: {text}");
                assert!(
                    text.starts_with("no receiver answered at tcp://127.0.0.1:"),
                    "{text}"
                );
                named += 1;
            }
            Outcome::TimedOut => panic!("round {round}: the sink neither ended nor failed"),
        }
    }
    eprintln!(
        "secure pair, 18 KB first frame: {delivered} delivered, {named} named vidgear's fault"
    );
}

/// Req-rep is the secure pattern that works with vidgear whatever the first frame.
#[test]
fn secure_req_rep_sink_into_vidgear_with_a_large_first_frame_delivers_every_frame() {
    let certs = vidgear_keys("large-reqrep");
    for round in 0..4 {
        let (mut peer, port) = vidgear_receiver(1, &certs, 15);
        let sender = secure_sink(port, "req-rep", &certs, (W, H));
        let report = sink_to_vidgear(
            &mut peer,
            &sender,
            &frames(5, (W, H)),
            |_| 5,
            Duration::from_secs(8),
        );
        assert_eq!(
            report["received"],
            serde_json::json!([0, 1, 2, 3, 4]),
            "round {round}"
        );
    }
}

/// vidgear's secure pub-sub receiver gets nothing, from vidgear's sender too: the sink
/// says so when it starts, and the receiver indeed gets nothing.
#[test]
fn secure_pub_sub_sink_warns_that_a_vidgear_receiver_gets_nothing() {
    let certs = vidgear_keys("pubsub");
    let (mut peer, port) = vidgear_receiver(2, &certs, 5);
    let sender = secure_sink(port, "pub-sub", &certs, (W, H));
    sender.play();
    std::thread::sleep(Duration::from_millis(500));
    for (i, f) in frames(30, (W, H)).iter().enumerate() {
        sender.push_packed(f, i as u64).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    sender.finish_expect_eos(Duration::from_secs(5));
    let warnings = sender.posted.warnings();
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.starts_with(VIDGEAR_PUBSUB_FAULT))
            .count(),
        1,
        "{warnings:?}"
    );
    let report = peer.report(Duration::from_secs(15));
    assert_eq!(report["received"], Value::Array(vec![]), "{report}");
}

/// vidgear senders into netgearsrc: our authenticator gives no user id, so libzmq queues
/// no credential and every pattern works with a large first frame.
#[test]
fn secure_vidgear_senders_with_a_large_first_frame_reach_netgearsrc_in_every_pattern() {
    let certs = vidgear_keys("into-src");
    for (pattern, name) in [(0u8, "pair"), (1, "req-rep"), (2, "pub-sub")] {
        for round in 0..2 {
            let port = free_port();
            let receiver = Receiver::new(&[
                ("port", &port.to_string()),
                ("address", "127.0.0.1"),
                ("pattern", name),
                ("secure-mode", "stonehouse"),
                ("cert-dir", certs.to_str().unwrap()),
                ("timeout", "3000"),
            ]);
            receiver.play();
            let mut extra = vec![
                ("secure", "1".to_string()),
                ("certs", certs.to_string_lossy().into_owned()),
                ("address", "127.0.0.1".to_string()),
                ("interval", "0.02".to_string()),
            ];
            extra.extend(sender_args(W, H, 3, 10, None));
            let mut peer = Peer::start(&peer_args("send", port, pattern, &extra));
            let (got, _) = receiver.collect(Duration::from_secs(15));
            peer.report(Duration::from_secs(15));
            let least = if pattern == 2 { 5 } else { 10 };
            assert!(
                got.len() >= least,
                "{name} round {round}: {} frames",
                got.len()
            );
            for f in &got {
                let p = f.packed();
                assert_eq!(p, test_frame(frame_index(&p), W, H, 3, false), "{name}");
            }
            assert_eq!(receiver.stats().get::<u64>("refused").unwrap(), 0);
        }
    }
}
