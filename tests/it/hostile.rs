// SPDX-License-Identifier: MPL-2.0
//! Hostile and broken peers: malformed messages, oversized frames, JPEG bombs, a peer that
//! never answers, a receiver that vanishes before EOS, and slow consumers.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use netgear_protocol::{encode_frame_header, Compression, PayloadKind};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn jpeg_header() -> Vec<u8> {
    let c = Compression {
        dct: false,
        ups: false,
        colorspace: "BGR".into(),
    };
    encode_frame_header(
        None,
        &PayloadKind::Jpeg(c),
        &netgear_protocol::JsonText::null(),
        1,
    )
}

/// A valid JPEG whose header claims 30000×30000 pixels.
fn jpeg_bomb() -> Vec<u8> {
    let mut jpeg = encode_jpeg(&[90u8; 16 * 16 * 3], 16, 16);
    claim_jpeg_size(&mut jpeg, 30000, 30000);
    jpeg
}

#[test]
fn malformed_messages_are_dropped_counted_and_answered() {
    init();
    let port = free_port();
    let receiver = Receiver::with_caps(
        &[
            ("port", &port.to_string()),
            ("address", "127.0.0.1"),
            ("pattern", "1"),
            ("max-frame-bytes", "1000000"),
        ],
        Some(&gst::Caps::builder("video/x-raw").build()),
    );
    receiver.play();
    let ctx = zmq::Context::new();
    let req = ctx.socket(zmq::REQ).unwrap();
    req.set_linger(0).unwrap();
    req.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();

    let valid = raw_header(2, 3, 3, 1);
    let hostile: Vec<Vec<Vec<u8>>> = vec![
        vec![b"not json".to_vec(), b"x".to_vec()],
        vec![br#"{"terminate_flag": false, "compression": fal"#.to_vec(), b"x".to_vec()],
        vec![b"{}".to_vec(), b"x".to_vec()],
        vec![b"[1, 2]".to_vec(), b"x".to_vec()],
        vec![br#"{"terminate_flag": "no"}"#.to_vec()],
        vec![br#"{"terminate_flag": false, "compression": false, "message": null, "pattern": "1", "dtype": "uint8", "shape": [-2, 3, 3]}"#.to_vec(), vec![0; 18]],
        vec![br#"{"terminate_flag": false, "compression": false, "message": null, "pattern": "1", "dtype": "uint8", "shape": [0, 3, 3]}"#.to_vec(), vec![]],
        vec![br#"{"terminate_flag": false, "compression": false, "message": null, "pattern": "1", "dtype": "uint8", "shape": [4000000000, 4000000000, 3]}"#.to_vec(), vec![0; 18]],
        vec![br#"{"terminate_flag": false, "compression": false, "message": null, "pattern": "1", "dtype": ">f8", "shape": [2, 3]}"#.to_vec(), vec![0; 48]],
        vec![br#"{"terminate_flag": false, "compression": false, "message": null, "pattern": "1", "dtype": "complex64", "shape": [2, 3, 2]}"#.to_vec(), vec![0; 96]],
        vec![br#"{"terminate_flag": false, "compression": false, "message": null, "pattern": "1", "dtype": "float32", "shape": [2, 3, 2, 1]}"#.to_vec(), vec![0; 48]],
        vec![br#"{"terminate_flag": false, "compression": false, "message": null, "pattern": "1", "dtype": "float32", "shape": [2, 3, 2]}"#.to_vec(), vec![0; 47]],
        vec![valid.clone(), vec![0; 5]],
        vec![valid.clone()],
        vec![valid.clone(), vec![0; 18], b"extra".to_vec()],
        vec![jpeg_header(), b"\xFF\xD8 garbage".to_vec()],
        vec![jpeg_header(), jpeg_bomb()],
    ];
    for (i, parts) in hostile.iter().enumerate() {
        req.send_multipart(parts, 0).unwrap();
        assert!(
            req.poll(zmq::POLLIN, 3000).unwrap() > 0,
            "message {i}: no reply, the REP socket jammed"
        );
        req.recv_bytes(0).unwrap();
    }
    // The stream goes on.
    let frame: Vec<u8> = (0..18).collect();
    req.send_multipart([valid.clone(), frame.clone()], 0)
        .unwrap();
    assert!(req.poll(zmq::POLLIN, 3000).unwrap() > 0);
    req.recv_bytes(0).unwrap();
    let got = receiver
        .next_frame(Duration::from_secs(5))
        .expect("the valid frame after the hostile ones");
    assert_eq!(got.packed(), frame);
    let stats = receiver.stats();
    assert_eq!(
        stats.get::<u64>("malformed").unwrap(),
        hostile.len() as u64,
        "{stats}"
    );
    assert_eq!(stats.get::<u64>("frames").unwrap(), 1);
    // Warnings are rate-limited: a flood does not flood the bus.
    let warnings = queued_warnings(&receiver.pipeline).len();
    assert!(
        (1..=2).contains(&warnings),
        "{warnings} warnings for {} bad messages",
        hostile.len()
    );
}

#[test]
fn an_oversized_message_drops_that_peer_only() {
    let port = free_port();
    let receiver = Receiver::new(&[
        ("port", &port.to_string()),
        ("address", "127.0.0.1"),
        ("pattern", "2"),
        ("max-frame-bytes", "100000"),
    ]);
    receiver.play();
    let ctx = zmq::Context::new();
    let publisher = |payload: usize, shape: [usize; 3]| {
        let s = ctx.socket(zmq::PUB).unwrap();
        s.set_linger(500).unwrap();
        s.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        s.send_multipart(
            [
                raw_header(shape[0], shape[1], shape[2], 1),
                vec![7u8; payload],
            ],
            0,
        )
        .unwrap();
        s
    };
    // 300 kB against a 100 kB limit: libzmq drops the connection before allocating it.
    let _big = publisher(300 * 1000, [100, 1000, 3]);
    let _small = publisher(60, [4, 5, 3]);
    let frame = receiver
        .next_frame(Duration::from_secs(5))
        .expect("the small sender's frame");
    assert_eq!(frame.packed(), vec![7u8; 60]);
    assert!(
        receiver.next_frame(Duration::from_millis(500)).is_none(),
        "the oversized frame got through"
    );
}

#[test]
fn a_peer_that_never_answers_costs_request_timeout_per_attempt() {
    let port = free_port();
    let ctx = zmq::Context::new();
    let silent = ctx.socket(zmq::PAIR).unwrap();
    silent.set_linger(0).unwrap();
    silent.bind(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let sender = Sender::raw(
        VideoFormat::Gray8,
        8,
        8,
        &[
            ("port", &port.to_string()),
            ("request-timeout", "300"),
            ("max-retries", "1"),
            ("jpeg-compression", "false"),
        ],
    );
    sender.play();
    let started = Instant::now();
    sender
        .push_packed(&test_frame(0, 8, 8, 1, false), 0)
        .unwrap();
    let Outcome::Error(text) = wait_end(&sender.pipeline, Duration::from_secs(5)) else {
        panic!("no error")
    };
    let elapsed = started.elapsed();
    assert!(text.contains("after 2 attempts (300 ms each)"), "{text}");
    assert!(
        elapsed >= Duration::from_millis(550) && elapsed < Duration::from_millis(1200),
        "{elapsed:?}"
    );
    // It did get the frame: the silence is its own.
    assert!(silent.poll(zmq::POLLIN, 0).unwrap() > 0);
}

/// EOS with no receiver to answer ends in bounded time: the receiver gone after a frame,
/// or nobody ever listening (gst-launch-1.0 -e, interrupted, exits 0).
#[test]
fn eos_with_no_receiver_ends_in_bounded_time() {
    eos_with_the_receiver_gone_ends_within_request_timeout_over_five();
    eos_with_nobody_listening_ends_within_one_request_timeout_and_exits_0();
}

/// The receiver stops after one frame: EOS within request-timeout / 5.
fn eos_with_the_receiver_gone_ends_within_request_timeout_over_five() {
    for pattern in ["pair", "req-rep"] {
        let port = free_port().to_string();
        let receiver = Receiver::new(&[
            ("port", &port),
            ("address", "127.0.0.1"),
            ("pattern", pattern),
        ]);
        receiver.play();
        let sender = Sender::raw(
            VideoFormat::Gray8,
            8,
            8,
            &[
                ("port", &port),
                ("pattern", pattern),
                ("request-timeout", "1000"),
                ("jpeg-compression", "false"),
            ],
        );
        sender.play();
        sender
            .push_packed(&test_frame(0, 8, 8, 1, false), 0)
            .unwrap();
        assert!(receiver.next_frame(Duration::from_secs(5)).is_some());
        // The frame's reply reaches the sink before the receiver goes: only the termination
        // is left unanswered (a lost reply would rightly cost one request-timeout).
        std::thread::sleep(Duration::from_millis(200));
        receiver.stop();
        let started = Instant::now();
        sender.finish_expect_eos(Duration::from_secs(5));
        let to_eos = started.elapsed();
        let started = Instant::now();
        sender.stop();
        let to_null = started.elapsed();
        // 1000 ms / 5, plus scheduling margin.
        assert!(
            to_eos < Duration::from_millis(350),
            "{pattern}: EOS took {to_eos:?}"
        );
        assert!(
            to_eos + to_null < Duration::from_millis(450),
            "{pattern}: EOS + NULL took {:?}",
            to_eos + to_null
        );
    }
}

/// gst-launch-1.0 -e with nobody ever listening, interrupted: it ends within one request
/// timeout and exits 0.
fn eos_with_nobody_listening_ends_within_one_request_timeout_and_exits_0() {
    let port = free_port();
    let plugin_path = plugin_dir();
    let mut child = Command::new("gst-launch-1.0")
        .args([
            "-e",
            "videotestsrc",
            "!",
            "video/x-raw,width=64,height=48",
            "!",
            "netgearsink",
        ])
        .arg(format!("port={port}"))
        .args(["address=127.0.0.1", "request-timeout=1000"])
        .env("GST_PLUGIN_PATH", plugin_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0");
    std::thread::sleep(Duration::from_millis(1500));
    let interrupted = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let end = interrupted + Duration::from_secs(20);
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(Instant::now() < end, "gst-launch-1.0 did not end");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = interrupted.elapsed();
    assert!(code.success(), "exit status {code}");
    assert!(took < Duration::from_millis(1000 + 700), "took {took:?}");
}

/// Delays every buffer reaching the appsink, like a slow consumer.
fn slow_down(receiver: &Receiver, per_frame: Duration) {
    let pad = receiver.appsink.static_pad("sink").unwrap();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        std::thread::sleep(per_frame);
        gst::PadProbeReturn::Ok
    });
}

#[test]
fn a_slow_consumer_throttles_acknowledged_patterns_without_losing_frames() {
    for pattern in ["pair", "req-rep"] {
        let port = free_port().to_string();
        // A variable rate (the default, said here): measuring the rate (0/1) would hold
        // the first frames and let the sender run that many frames ahead of the consumer.
        let receiver = Receiver::new(&[
            ("port", &port),
            ("address", "127.0.0.1"),
            ("pattern", pattern),
            ("framerate", "-1/1"),
        ]);
        slow_down(&receiver, Duration::from_millis(30));
        receiver.play();
        let sender = Sender::raw(
            VideoFormat::Gray8,
            64,
            48,
            &[
                ("port", &port),
                ("pattern", pattern),
                ("jpeg-compression", "false"),
            ],
        );
        sender.play();
        let started = Instant::now();
        for i in 0..40 {
            sender
                .push_packed(&test_frame(i, 64, 48, 1, false), i as u64)
                .unwrap();
        }
        sender.finish_expect_eos(Duration::from_secs(20));
        let sending = started.elapsed();
        let (frames, eos) = receiver.collect(Duration::from_secs(5));
        // The sender went at the consumer's pace (no queue of stale frames in between)...
        assert!(
            sending >= Duration::from_millis(38 * 30),
            "{pattern}: sent 40 frames in {sending:?}"
        );
        // ...and every acknowledged frame reached the consumer before EOS.
        assert!(eos);
        assert_eq!(frames.len(), 40, "{pattern}");
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.packed(), test_frame(i, 64, 48, 1, false));
        }
    }
}
