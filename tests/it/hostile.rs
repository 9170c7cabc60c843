// SPDX-License-Identifier: MPL-2.0
//! Hostile and broken peers: malformed messages, oversized frames, JPEG bombs, a peer that
//! never answers, a receiver that vanishes before EOS, and slow consumers.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use netgear_protocol::{encode_frame_header, Compression, PayloadKind};

use std::sync::{Arc, Mutex};
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

#[test]
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

#[test]
fn a_slow_consumer_in_pub_sub_sees_recent_frames_not_a_growing_queue() {
    let port = free_port().to_string();
    let receiver = Receiver::new(&[
        ("port", &port),
        ("address", "127.0.0.1"),
        ("pattern", "pub-sub"),
        ("timeout", "2000"),
    ]);
    let lags: Arc<Mutex<Vec<i64>>> = Arc::default();
    let (w, h) = (640usize, 480usize);
    let sender = Sender::raw(
        VideoFormat::Bgr,
        w as u32,
        h as u32,
        &[
            ("port", &port),
            ("pattern", "pub-sub"),
            ("jpeg-compression", "false"),
        ],
    );
    // Frames the sink has put on the wire (not what waits in the test's appsrc).
    sender.appsrc.set_max_bytes(2 * (w * h * 3) as u64);
    let sink = sender.sink.clone();
    {
        let lags = lags.clone();
        receiver.appsink.static_pad("sink").unwrap().add_probe(
            gst::PadProbeType::BUFFER,
            move |_, info| {
                if let Some(buffer) = info.buffer() {
                    let map = buffer.map_readable().unwrap();
                    let idx = i64::from(u32::from_le_bytes([map[0], map[1], map[2], map[3]]));
                    let on_wire = sink
                        .property::<gst::Structure>("stats")
                        .get::<u64>("frames")
                        .unwrap_or(0) as i64;
                    lags.lock().unwrap().push(on_wire - 1 - idx);
                }
                std::thread::sleep(Duration::from_millis(40));
                gst::PadProbeReturn::Ok
            },
        );
    }
    // One base frame; its first four bytes carry the frame's number.
    let base = vec![128u8; w * h * 3];
    receiver.play();
    sender.play();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut i = 0u32;
    while started.elapsed() < Duration::from_secs(4) {
        let mut frame = base.clone();
        frame[..4].copy_from_slice(&i.to_le_bytes());
        sender.push_packed(&frame, u64::from(i)).unwrap();
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let steady: Vec<i64> = lags.lock().unwrap().clone();
    sender.finish();
    let _ = receiver.collect(Duration::from_secs(4));
    assert!(
        steady.len() >= 40,
        "{} frames reached the consumer",
        steady.len()
    );
    assert!(
        i as usize > steady.len() * 3,
        "the sender was not slowed down: {i} sent, {} consumed",
        steady.len()
    );
    // Frames are dropped, not queued without end: after the buffers between sender and
    // consumer have filled (ZeroMQ's and the kernel's TCP buffers: a few frames, each many
    // sends old), the lag stops growing.
    let third = steady.len() / 3;
    let worst = |v: &[i64]| v.iter().copied().max().unwrap_or(0);
    let (middle, last) = (&steady[third..2 * third], &steady[2 * third..]);
    let per_send = started.elapsed().as_secs_f64() * 1000.0 / f64::from(i);
    eprintln!(
        "pub-sub lag, last third: up to {} sends ({:.0} ms)",
        worst(last),
        worst(last) as f64 * per_send
    );
    assert!(
        worst(&steady) <= 800,
        "lag up to {} sends: {steady:?}",
        worst(&steady)
    );
    assert!(
        worst(last) <= worst(middle) + worst(middle) / 5 + 20,
        "the lag grows: {steady:?}"
    );
}
