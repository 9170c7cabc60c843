// SPDX-License-Identifier: MPL-2.0
//! Network behaviour of the transport: bounded staleness (in age and in sends) for a slow
//! pub-sub consumer, a dead receiver in multi-client, IPv6.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
/// The timeout counts from the start: long enough for Python to start on a loaded machine.
fn slow_pubsub_receiver(port: u16) -> Receiver {
    Receiver::launch(&format!(
        "netgearsrc name=src address=127.0.0.1 port={port} pattern=pub-sub timeout=10000 \
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

/// A slow consumer behind our sink in pub-sub sees recent frames, not a growing queue:
/// bounded in age and in sends behind.
#[test]
fn a_slow_consumer_in_pub_sub_sees_recent_frames_not_a_growing_queue() {
    our_sink_into_a_slow_consumer_stays_fresh();
    our_sink_into_a_slow_consumer_lags_a_bounded_number_of_sends();
}

/// Our sink as fast as it goes: the frames the consumer takes are fresh.
fn our_sink_into_a_slow_consumer_stays_fresh() {
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

/// Our sink, frames numbered: the lag between sent and consumed stops growing.
fn our_sink_into_a_slow_consumer_lags_a_bounded_number_of_sends() {
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
    // Compared by mean: a stall of the loaded machine makes one short spike, a queue
    // without end raises the whole last third (by ~300 sends at this rate).
    let mean = |v: &[i64]| v.iter().sum::<i64>() / v.len().max(1) as i64;
    assert!(
        mean(last) <= mean(middle) + 100,
        "the lag grows: {steady:?}"
    );
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
    sender.finish_expect_eos(Duration::from_secs(10));
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
    sender.finish_expect_eos(Duration::from_secs(10));
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
