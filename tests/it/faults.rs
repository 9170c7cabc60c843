// SPDX-License-Identifier: MPL-2.0
//! Faults: no receiver, a receiver (ours or vidgear's) restarted mid-stream, a state
//! change to NULL while blocked, a port already in use, and invalid mode combinations.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn sink_without_receiver_fails_with_the_endpoint_in_bounded_time() {
    for pattern in ["pair", "req-rep"] {
        let port = free_port();
        let extra = [
            ("pattern", pattern),
            ("request-timeout", "300"),
            ("max-retries", "2"),
        ];
        let sender = gray_sender(&port.to_string(), &extra);
        let started = Instant::now();
        // With nobody listening each frame is dropped after one timeout (so EOS is never
        // held longer) and the timeouts count across frames: keep frames coming.
        let running = Arc::new(AtomicBool::new(true));
        let feeder = feed(sender.clone(), running.clone());
        let outcome = wait_end(&sender.pipeline, Duration::from_secs(5));
        let elapsed = started.elapsed();
        running.store(false, Ordering::Relaxed);
        let _ = feeder.join();
        let Outcome::Error(text) = outcome else {
            panic!("{pattern}: expected an error, got {outcome:?}")
        };
        assert!(
            text.contains(&format!(
                "no receiver answered at tcp://127.0.0.1:{port} after 3 attempts"
            )),
            "{pattern}: {text}"
        );
        // (max-retries + 1) × request-timeout, plus a margin.
        assert!(
            elapsed < Duration::from_millis(3 * 300 + 700),
            "{pattern}: took {elapsed:?}"
        );
        assert!(
            elapsed >= Duration::from_millis(3 * 300 - 50),
            "{pattern}: gave up early, {elapsed:?}"
        );
        assert_eq!(sender.stats().get::<u64>("retries").unwrap(), 3);
        // REQ sockets are re-created (lazy pirate); a PAIR socket keeps reconnecting by
        // itself, because a fresh one races with the receiver's single slot.
        let reconnects = if pattern == "pair" { 0 } else { 2 };
        assert_eq!(
            sender.stats().get::<u64>("reconnects").unwrap(),
            reconnects,
            "{pattern}"
        );
    }
}

/// A playing raw 32x8 GRAY8 sink for `feed`, sending to 127.0.0.1:`port`, with the `extra`
/// properties too.
fn gray_sender(port: &str, extra: &[(&str, &str)]) -> Arc<Sender> {
    let mut props = vec![
        ("port", port),
        ("address", "127.0.0.1"),
        ("jpeg-compression", "false"),
    ];
    props.extend_from_slice(extra);
    let sender = Arc::new(Sender::raw(VideoFormat::Gray8, 32, 8, &props));
    sender.play();
    sender
}

/// Pushes frames from a thread until told to stop; returns how many were accepted.
fn feed(sender: Arc<Sender>, running: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut idx = 0u64;
        while running.load(Ordering::Relaxed) {
            if sender
                .push_packed(&test_frame(idx as usize, 32, 8, 1, false), idx)
                .is_err()
            {
                break;
            }
            idx += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        idx
    })
}

/// Our source dies without a word and a new one takes its port: the sink times out,
/// reconnects and resends, in the acknowledged patterns, without restarting.
#[test]
fn sink_resumes_when_our_receiver_is_restarted() {
    for pattern in ["pair", "req-rep"] {
        let port = free_port().to_string();
        let props = [
            ("port", port.as_str()),
            ("address", "127.0.0.1"),
            ("pattern", pattern),
        ];
        let first = Receiver::new(&props);
        first.play();
        let extra = [
            ("pattern", pattern),
            ("request-timeout", "400"),
            ("max-retries", "20"),
        ];
        let sender = gray_sender(&port, &extra);
        let running = Arc::new(AtomicBool::new(true));
        let feeder = feed(sender.clone(), running.clone());
        assert!(
            first.next_frame(Duration::from_secs(5)).is_some(),
            "{pattern}: first receiver got nothing"
        );
        // The receiver dies without a word and stays away longer than request-timeout,
        // so the sink must time out, reconnect and resend; then a new one takes its port.
        first.stop();
        drop(first);
        std::thread::sleep(Duration::from_millis(1000));
        let second = Receiver::new(&props);
        second.play();
        let frame = second.next_frame(Duration::from_secs(8));
        // The sink counts the new connection when it next looks (at most one reply later).
        let deadline = Instant::now() + Duration::from_secs(3);
        while sender.stats().get::<u64>("connects").unwrap() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        running.store(false, Ordering::Relaxed);
        let _ = feeder.join();
        let frame =
            frame.unwrap_or_else(|| panic!("{pattern}: the sink never reached the new receiver"));
        let packed = frame.packed();
        assert_eq!(packed, test_frame(frame_index(&packed), 32, 8, 1, false));
        let stats = sender.stats();
        assert!(
            stats.get::<u64>("retries").unwrap() >= 1,
            "{pattern}: {stats}"
        );
        // PAIR reconnects on the same socket (see above); both patterns connected twice.
        if pattern != "pair" {
            assert!(
                stats.get::<u64>("reconnects").unwrap() >= 1,
                "{pattern}: {stats}"
            );
        }
        assert!(
            stats.get::<u64>("connects").unwrap() >= 2,
            "{pattern}: {stats}"
        );
        sender.stop();
    }
}

/// The frame size of interop_vidgear's gray shape.
const GRAY_WIDTH: usize = 320;
const GRAY_HEIGHT: usize = 40;

/// A vidgear receiver killed mid-stream and a new one started on the same port: the sink
/// resumes without a restart, in every pattern.
#[test]
fn sink_resumes_when_a_vidgear_receiver_is_restarted() {
    for pattern in [0u8, 1, 2] {
        let port = free_port();
        let mut first = Peer::start(&peer_args(
            "recv",
            port,
            pattern,
            &[("seconds", "20".into())],
        ));
        first.wait_ready(Duration::from_secs(20));
        let sender = Arc::new(Sender::raw(
            VideoFormat::Gray8,
            GRAY_WIDTH as u32,
            GRAY_HEIGHT as u32,
            &[
                ("port", &port.to_string()),
                ("pattern", &pattern.to_string()),
                ("request-timeout", "500"),
                ("max-retries", "30"),
                ("jpeg-compression", "false"),
            ],
        ));
        sender.play();
        let running = Arc::new(AtomicBool::new(true));
        let feeder = {
            let (sender, running) = (sender.clone(), running.clone());
            std::thread::spawn(move || {
                let mut i = 0usize;
                while running.load(Ordering::Relaxed) {
                    if sender
                        .push_packed(
                            &test_frame(i % 256, GRAY_WIDTH, GRAY_HEIGHT, 1, false),
                            i as u64,
                        )
                        .is_err()
                    {
                        break;
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(1000));
        first.kill();
        std::thread::sleep(Duration::from_millis(1200));
        let mut second = Peer::start(&peer_args(
            "recv",
            port,
            pattern,
            &[("seconds", "20".into())],
        ));
        second.wait_ready(Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(1500));
        running.store(false, Ordering::Relaxed);
        let _ = feeder.join();
        sender.finish();
        assert!(
            matches!(
                wait_end(&sender.pipeline, Duration::from_secs(15)),
                Outcome::Eos
            ),
            "pattern {pattern}: the sink gave up"
        );
        let report = second.report(Duration::from_secs(20));
        let received = report["received"].as_array().unwrap().len();
        assert!(
            received >= 20,
            "pattern {pattern}: the new receiver got {received} frames: {report}"
        );
        assert_eq!(report["bad"], Value::Array(vec![]), "pattern {pattern}");
        assert_eq!(
            report["terminated"],
            Value::Bool(true),
            "pattern {pattern}: {report}"
        );
    }
}

/// tests/python/first_frame.py: a vidgear receiver that reports its first frame.
fn first_frame_receiver(port: u16, pattern: u8) -> Peer {
    Peer::script(
        "first_frame.py",
        &flag_args(&[("port", port.to_string()), ("pattern", pattern.to_string())]),
    )
}

/// Seconds from a first_frame.py receiver being bound to its first frame.
fn first_frame_after_ready(receiver: &Peer) -> f64 {
    receiver.wait_ready(Duration::from_secs(30));
    let first = receiver
        .line(Duration::from_secs(10))
        .expect("no first frame in 10 s");
    first
        .strip_prefix("FIRST ")
        .and_then(|t| t.parse().ok())
        .expect("FIRST line")
}

/// A vidgear pair receiver killed and restarted five times: each new one gets frames within
/// one request timeout of being bound.
#[test]
fn sink_resumes_when_a_vidgear_pair_receiver_is_restarted_five_times() {
    let port = free_port();
    let sender = Arc::new(Sender::raw(
        VideoFormat::Gray8,
        32,
        8,
        &[
            ("port", &port.to_string()),
            ("address", "127.0.0.1"),
            ("pattern", "pair"),
            ("request-timeout", "1000"),
            ("max-retries", "30"),
            ("jpeg-compression", "false"),
        ],
    ));
    sender.play();
    let running = Arc::new(AtomicBool::new(true));
    let feeder = {
        let (sender, running) = (sender.clone(), running.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while running.load(Ordering::Relaxed) {
                if sender
                    .push_packed(&test_frame(i as usize, 32, 8, 1, false), i)
                    .is_err()
                {
                    return false;
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            true
        })
    };
    let mut delays = Vec::new();
    let mut receiver = first_frame_receiver(port, 0);
    first_frame_after_ready(&receiver);
    for _ in 0..5 {
        receiver.kill();
        std::thread::sleep(Duration::from_millis(300));
        receiver = first_frame_receiver(port, 0);
        delays.push(first_frame_after_ready(&receiver));
    }
    running.store(false, Ordering::Relaxed);
    assert!(feeder.join().unwrap(), "the sink failed");
    eprintln!("first frame after a restart: {delays:?} s");
    assert!(delays.iter().all(|d| *d < 1.0 + 0.5), "{delays:?}");
}

#[test]
fn null_while_blocked_returns_fast() {
    // A source waiting for a sender that never comes.
    let port = free_port().to_string();
    let receiver = Receiver::new(&[("port", &port), ("address", "127.0.0.1")]);
    receiver.play();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    receiver.stop();
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "source took {:?}",
        started.elapsed()
    );

    // A sink waiting for a reply that never comes (10 s timeout).
    let port = free_port().to_string();
    let sender = gray_sender(&port, &[("request-timeout", "10000")]);
    let running = Arc::new(AtomicBool::new(true));
    let feeder = feed(sender.clone(), running.clone());
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    sender.stop();
    let elapsed = started.elapsed();
    running.store(false, Ordering::Relaxed);
    let _ = feeder.join();
    assert!(
        elapsed < Duration::from_millis(200),
        "sink took {elapsed:?}"
    );
}

#[test]
fn a_port_in_use_fails_start_with_the_endpoint_and_os_error() {
    let port = free_port().to_string();
    let first = Receiver::new(&[("port", &port), ("address", "127.0.0.1")]);
    first.play();
    let second = Receiver::new(&[("port", &port), ("address", "127.0.0.1")]);
    assert!(second.pipeline.set_state(gst::State::Playing).is_err());
    let Outcome::Error(text) = wait_end(&second.pipeline, Duration::from_secs(2)) else {
        panic!("no error message")
    };
    assert!(
        text.contains(&format!(
            "could not bind tcp://127.0.0.1:{port}: Address already in use"
        )),
        "{text}"
    );
}

#[test]
fn invalid_combinations_fail_start_with_what_clashes() {
    init();
    type Props = &'static [(&'static str, &'static str)];
    let cases: &[(&str, Props, &str)] = &[
        (
            "netgearsrc",
            &[("multi-server", "true"), ("ports", "5566,5567")],
            "multi-server=true needs pattern=req-rep (1) or pattern=pub-sub (2)",
        ),
        (
            "netgearsink",
            &[("multi-client", "true"), ("ports", "5566")],
            "multi-client=true needs pattern=req-rep (1) or pattern=pub-sub (2)",
        ),
        (
            "netgearsink",
            &[("bidirectional", "true"), ("pattern", "pub-sub")],
            "bidirectional=true needs pattern=pair (0) or pattern=req-rep (1)",
        ),
        (
            "netgearsrc",
            &[
                ("multi-server", "true"),
                ("multi-client", "true"),
                ("pattern", "1"),
            ],
            "cannot be combined",
        ),
        (
            "netgearsrc",
            &[("multi-server", "true"), ("pattern", "1")],
            "multi-server=true needs ports=",
        ),
        (
            "netgearsink",
            &[("multi-client", "true"), ("pattern", "2")],
            "multi-client=true needs ports=",
        ),
        (
            "netgearsink",
            &[
                ("ports", "5566,abc"),
                ("multi-client", "true"),
                ("pattern", "2"),
            ],
            "'abc'",
        ),
    ];
    for (factory, props, expected) in cases {
        let pipeline = gst::Pipeline::new();
        let element = gst::ElementFactory::make(factory).build().unwrap();
        for (k, v) in *props {
            element.set_property_from_str(k, v);
        }
        let other = if *factory == "netgearsrc" {
            "fakesink"
        } else {
            "fakesrc"
        };
        let other = gst::ElementFactory::make(other).build().unwrap();
        pipeline.add_many([&element, &other]).unwrap();
        if *factory == "netgearsrc" {
            element.link(&other).unwrap();
        } else {
            other.link(&element).unwrap();
        }
        assert!(
            pipeline.set_state(gst::State::Paused).is_err(),
            "{factory} {props:?} started"
        );
        let Outcome::Error(text) = wait_end(&pipeline, Duration::from_secs(2)) else {
            panic!("{factory} {props:?}: no error message")
        };
        assert!(text.contains(expected), "{factory} {props:?}: {text}");
        let _ = pipeline.set_state(gst::State::Null);
    }
}
