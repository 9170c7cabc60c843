// SPDX-License-Identifier: MPL-2.0
//! Network behaviour of the transport: bounded staleness in pub-sub, a dead receiver in
//! multi-client, a restarted pair receiver, EOS with nobody listening, IPv6.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// tests/python/stale_sender.py, sending for `seconds`.
fn stale_sender(mode: &str, port: u16, seconds: f64) -> Peer {
    Peer::script(
        "stale_sender.py",
        &script_args(
            mode,
            &[("port", port.to_string()), ("seconds", seconds.to_string())],
        ),
    )
}

/// `netgearsrc ! identity sleep-time=40000 ! appsink`: a consumer that takes 40 ms a frame.
fn slow_pubsub_receiver(port: u16) -> Receiver {
    Receiver::launch(&format!(
        "netgearsrc name=src address=127.0.0.1 port={port} pattern=pub-sub timeout=1500 \
         ! identity sleep-time=40000 ! appsink name=out"
    ))
}

/// Pulls frames for `span` and returns each one's age (now minus the send time it carries).
fn ages(receiver: &Receiver, span: Duration) -> Vec<f64> {
    let mut ages = Vec::new();
    let end = Instant::now() + span;
    while Instant::now() < end {
        let Some(frame) = receiver.next_frame(Duration::from_millis(500)) else {
            continue;
        };
        let sent = frame
            .meta
            .and_then(|m| m.message)
            .and_then(|m| m.parse::<f64>().ok());
        if let Some(sent) = sent {
            ages.push(unix_now().as_secs_f64() - sent);
        }
    }
    ages
}

fn assert_fresh(who: &str, ages: &[f64]) {
    let worst = ages.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "{who}: {} frames, worst age {:.3} s, last {:.3} s",
        ages.len(),
        worst,
        ages.last().copied().unwrap_or(0.0)
    );
    assert!(ages.len() >= 20, "{who}: only {} frames", ages.len());
    // One consumer period (40 ms) plus one frame, with room for a loaded machine; the
    // buffering this guards against reached seconds.
    assert!(
        worst < 0.3,
        "{who}: frames up to {worst:.3} s old: {ages:?}"
    );
}

#[test]
fn pub_sub_into_a_slow_consumer_stays_fresh_with_vidgear_and_raw_pyzmq_senders() {
    for mode in ["vidgear", "pyzmq"] {
        let port = free_port();
        let receiver = slow_pubsub_receiver(port);
        receiver.play();
        let mut sender = stale_sender(mode, port, 6.0);
        // Wait for the sender (Python starts slowly on a loaded machine), then let the
        // buffers fill for a second.
        assert!(
            receiver.next_frame(Duration::from_secs(30)).is_some(),
            "{mode}: nothing arrived"
        );
        let _ = ages(&receiver, Duration::from_millis(1000));
        let steady = ages(&receiver, Duration::from_millis(2500));
        sender.wait_exit();
        assert_fresh(mode, &steady);
        let dropped = receiver.stats().get::<u64>("dropped").unwrap();
        assert!(dropped > 0, "{mode}: nothing was skipped");
    }
}

#[test]
fn pub_sub_from_our_sink_into_a_slow_consumer_stays_fresh() {
    let port = free_port();
    let receiver = slow_pubsub_receiver(port);
    receiver.play();
    let sender = Arc::new(Sender::raw(
        VideoFormat::Bgr,
        64,
        48,
        &[
            ("port", &port.to_string()),
            ("address", "127.0.0.1"),
            ("pattern", "pub-sub"),
            ("jpeg-compression", "false"),
        ],
    ));
    // At most one frame waits in appsrc, so the time set below is the frame's send time.
    sender.appsrc.set_max_bytes(64 * 48 * 3);
    sender.play();
    let running = Arc::new(AtomicBool::new(true));
    let feeder = {
        let (sender, running) = (sender.clone(), running.clone());
        std::thread::spawn(move || {
            let frame = vec![128u8; 64 * 48 * 3];
            let mut i = 0u64;
            while running.load(Ordering::Relaxed) {
                sender
                    .sink
                    .set_property("message", format!("{:.6}", unix_now().as_secs_f64()));
                if sender.push_packed(&frame, i).is_err() {
                    break;
                }
                i += 1;
            }
            i
        })
    };
    let _ = ages(&receiver, Duration::from_millis(1500));
    let steady = ages(&receiver, Duration::from_millis(2500));
    running.store(false, Ordering::Relaxed);
    let sent = feeder.join().unwrap();
    assert!(
        sent as usize > steady.len() * 3,
        "sender not faster: {sent}"
    );
    assert_fresh("netgearsink", &steady);
}

#[test]
fn ipv6_endpoints_carry_frames_between_our_elements() {
    // The source names the address bare (as vidgear users write it), the sink bracketed.
    let port = free_port().to_string();
    let receiver = Receiver::new(&[("port", &port), ("address", "::1"), ("pattern", "req-rep")]);
    receiver.play();
    let sender = Sender::raw(
        VideoFormat::Gray8,
        32,
        8,
        &[
            ("port", &port),
            ("address", "[::1]"),
            ("pattern", "req-rep"),
            ("jpeg-compression", "false"),
        ],
    );
    sender.play();
    for i in 0..5 {
        sender
            .push_packed(&test_frame(i, 32, 8, 1, false), i as u64)
            .unwrap();
    }
    sender.finish();
    assert!(matches!(
        wait_end(&sender.pipeline, Duration::from_secs(10)),
        Outcome::Eos
    ));
    let (frames, eos) = receiver.collect(Duration::from_secs(5));
    assert!(eos);
    let indices: Vec<usize> = frames.iter().map(|f| frame_index(&f.packed())).collect();
    assert_eq!(indices, [0, 1, 2, 3, 4]);
    assert_eq!(sender.stats().get::<u64>("connects").unwrap(), 1);
}

#[test]
fn a_dead_receiver_in_multi_client_does_not_stall_the_live_one() {
    let (live, dead) = (free_port(), free_port());
    let receiver = Receiver::new(&[
        ("port", &live.to_string()),
        ("address", "127.0.0.1"),
        ("pattern", "req-rep"),
        ("multi-client", "true"),
    ]);
    receiver.play();
    let sender = Arc::new(Sender::raw(
        VideoFormat::Gray8,
        32,
        8,
        &[
            ("ports", &format!("{live},{dead}")),
            ("address", "127.0.0.1"),
            ("multi-client", "true"),
            ("pattern", "req-rep"),
            ("request-timeout", "500"),
            ("jpeg-compression", "false"),
        ],
    ));
    sender.play();
    // 25 fps for 4 s.
    let mut pushed = 0;
    for i in 0..100usize {
        let due = Duration::from_millis(40 * i as u64);
        let started = Instant::now();
        sender
            .push_packed(&test_frame(i, 32, 8, 1, false), i as u64)
            .unwrap();
        pushed += 1;
        let _ = due;
        std::thread::sleep(Duration::from_millis(40).saturating_sub(started.elapsed()));
    }
    sender.finish();
    assert!(matches!(
        wait_end(&sender.pipeline, Duration::from_secs(10)),
        Outcome::Eos
    ));
    let (frames, eos) = receiver.collect(Duration::from_secs(3));
    assert!(eos, "the live receiver was terminated");
    assert!(
        frames.len() >= pushed * 95 / 100,
        "live receiver got {} of {pushed}",
        frames.len()
    );
    let stats = sender.stats();
    assert_eq!(stats.get::<u64>("receivers-down").unwrap(), 1, "{stats}");
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

#[test]
fn a_pair_receiver_killed_and_restarted_gets_frames_within_one_request_timeout() {
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
fn eos_with_nobody_listening_ends_within_one_request_timeout_and_exits_0() {
    let port = free_port();
    let plugin_path = std::env::var("GST_PLUGIN_PATH").unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/release")
            .to_string_lossy()
            .into_owned()
    });
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
