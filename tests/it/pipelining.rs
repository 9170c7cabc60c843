// SPDX-License-Identifier: MPL-2.0
//! The sink's pipelining: `render` returns once its frame is handed to the companion
//! thread (one frame on the wire, one waiting), errors of unanswered frames surface at the
//! next render or at EOS, EOS waits for the last reply, unlock wakes a blocked hand-off,
//! and `jpeg-threads` encodes in parallel with frames leaving in order.
//!
//! The sink is driven directly through its pad, so each `chain` returns what `render` did.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The tests count the sink's threads: one test at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// tests/python/slow_receiver.py, once bound: a bare ZeroMQ receiver that answers late.
fn slow_receiver(port: u16, pattern: u8, extra: &[(&str, String)]) -> Peer {
    let mut pairs = vec![("port", port.to_string()), ("pattern", pattern.to_string())];
    pairs.extend_from_slice(extra);
    let receiver = Peer::script("slow_receiver.py", &flag_args(&pairs));
    receiver.wait_ready(Duration::from_secs(20));
    receiver
}

/// A pipeline of one `netgearsink`, fed through its pad by the test.
struct Direct {
    pipeline: gst::Pipeline,
    sink: gst::Element,
    pad: gst::Pad,
    info: gst_video::VideoInfo,
}

impl Direct {
    fn new(info: gst_video::VideoInfo, port: u16, props: &[(&str, &str)]) -> Direct {
        init();
        let pipeline = gst::Pipeline::new();
        let sink = gst::ElementFactory::make("netgearsink")
            .property("sync", false)
            .property("async", false)
            .build()
            .expect("netgearsink");
        sink.set_property_from_str("address", "127.0.0.1");
        sink.set_property("port", u32::from(port));
        for (k, v) in props {
            sink.set_property_from_str(k, v);
        }
        pipeline.add(&sink).expect("add");
        let pad = sink.static_pad("sink").expect("pad");
        pipeline.set_state(gst::State::Playing).expect("playing");
        assert!(pad.send_event(gst::event::StreamStart::new("pipelining")));
        assert!(pad.send_event(gst::event::Caps::new(&info.to_caps().expect("caps"))));
        let segment = gst::FormattedSegment::<gst::ClockTime>::new();
        assert!(pad.send_event(gst::event::Segment::new(&segment)));
        Direct {
            pipeline,
            sink,
            pad,
            info,
        }
    }

    fn chain(&self, packed: &[u8], idx: u64) -> Result<gst::FlowSuccess, gst::FlowError> {
        let data = to_gst_layout(packed, &self.info);
        self.pad.chain(frame_buffer(data, idx))
    }

    fn eos(&self) -> bool {
        self.pad.send_event(gst::event::Eos::new())
    }

    fn stat(&self, name: &str) -> u64 {
        let stats = self.sink.property::<gst::Structure>("stats");
        stats.get::<u64>(name).expect("counter")
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn gray(idx: usize) -> Vec<u8> {
    test_frame(idx, 32, 8, 1, false)
}

fn gray_info() -> gst_video::VideoInfo {
    video_info(VideoFormat::Gray8, 32, 8)
}

const RAW: (&str, &str) = ("jpeg-compression", "false");

#[test]
fn render_returns_before_the_reply_and_a_slow_receiver_still_sets_the_pace() {
    let _serial = serial();
    for pattern in [0u8, 1] {
        let port = free_port();
        let mut receiver = slow_receiver(port, pattern, &[("first-delay", "3".into())]);
        let pattern_text = pattern.to_string();
        let sink = Arc::new(Direct::new(
            gray_info(),
            port,
            &[
                RAW,
                ("pattern", &pattern_text),
                ("request-timeout", "10000"),
            ],
        ));
        // Frame 0 goes on the wire and frame 1 waits: both renders return at once,
        // while the receiver has not answered frame 0.
        assert_eq!(sink.chain(&gray(0), 0), Ok(gst::FlowSuccess::Ok));
        assert_eq!(sink.chain(&gray(1), 1), Ok(gst::FlowSuccess::Ok));
        assert_eq!(sink.stat("frames"), 0, "pattern {pattern}: no reply yet");
        // Frame 2 finds the hand-off full: its render returns after frame 0's reply.
        assert_eq!(sink.chain(&gray(2), 2), Ok(gst::FlowSuccess::Ok));
        assert!(sink.stat("frames") >= 1, "pattern {pattern}");
        for idx in 3..10 {
            assert_eq!(sink.chain(&gray(idx), idx as u64), Ok(gst::FlowSuccess::Ok));
        }
        assert!(sink.eos(), "pattern {pattern}: EOS");
        // EOS came back only after the last reply: every frame was acknowledged.
        assert_eq!(sink.stat("frames"), 10, "pattern {pattern}");
        assert_eq!(sink.stat("terminations"), 1);
        let report = receiver.report(Duration::from_secs(40));
        assert_eq!(report["terminated"], true, "pattern {pattern}: {report}");
        let hashes = report["hashes"].as_array().expect("hashes");
        assert_eq!(hashes.len(), 10, "pattern {pattern}: {report}");
        let distinct: std::collections::BTreeSet<_> =
            hashes.iter().map(|h| h.to_string()).collect();
        assert_eq!(distinct.len(), 10, "pattern {pattern}: frames repeated");
    }
}

#[test]
fn eos_waits_for_the_last_reply_and_vidgear_gets_every_frame_byte_exact() {
    let _serial = serial();
    for pattern in [0u8, 1] {
        let port = free_port();
        let mut peer = Peer::start(&peer_args("recv", port, pattern, &[]));
        peer.wait_ready(Duration::from_secs(20));
        let pattern_text = pattern.to_string();
        let info = video_info(VideoFormat::Bgr, 64, 48);
        let sink = Direct::new(info, port, &[RAW, ("pattern", &pattern_text)]);
        for idx in 0..30 {
            let frame = test_frame(idx, 64, 48, 3, false);
            assert_eq!(sink.chain(&frame, idx as u64), Ok(gst::FlowSuccess::Ok));
        }
        assert!(sink.eos());
        assert_eq!(sink.stat("frames"), 30);
        let report = peer.report(Duration::from_secs(20));
        let expected: Vec<usize> = (0..30).collect();
        assert_eq!(report["received"], serde_json::json!(expected), "{report}");
        assert_eq!(report["bad"], serde_json::json!([]), "{report}");
        assert_eq!(report["terminated"], true, "{report}");
    }
}

/// A raw GRAY8 sink to `port`, where nobody listens, giving up after one 300 ms attempt.
fn unanswered_sink(port: u16) -> Direct {
    Direct::new(
        gray_info(),
        port,
        &[RAW, ("request-timeout", "300"), ("max-retries", "0")],
    )
}

#[test]
fn an_unanswered_frame_fails_the_next_render_with_the_element_error() {
    let _serial = serial();
    let port = free_port();
    let sink = unanswered_sink(port);
    assert_eq!(
        sink.chain(&gray(0), 0),
        Ok(gst::FlowSuccess::Ok),
        "handed over"
    );
    let Outcome::Error(text) = wait_end(&sink.pipeline, Duration::from_secs(5)) else {
        panic!("no element error")
    };
    let expected = format!("no receiver answered at tcp://127.0.0.1:{port} after 1 attempts");
    assert!(text.contains(&expected), "{text}");
    assert_eq!(sink.chain(&gray(1), 1), Err(gst::FlowError::Error));
    assert_eq!(sink.stat("frames"), 0);
}

#[test]
fn an_unanswered_last_frame_fails_eos_without_a_termination() {
    let _serial = serial();
    let port = free_port();
    let sink = unanswered_sink(port);
    assert_eq!(sink.chain(&gray(0), 0), Ok(gst::FlowSuccess::Ok));
    assert!(!sink.eos(), "EOS must not go on after a lost frame");
    let Outcome::Error(text) = wait_end(&sink.pipeline, Duration::from_secs(5)) else {
        panic!("no element error")
    };
    assert!(text.contains("no receiver answered"), "{text}");
    assert_eq!(sink.stat("terminations"), 0);
}

#[test]
fn unlock_wakes_a_render_blocked_on_a_full_hand_off() {
    let _serial = serial();
    let port = free_port();
    let _receiver = slow_receiver(port, 1, &[("first-delay", "20".into())]);
    let sink = Arc::new(Direct::new(
        gray_info(),
        port,
        &[RAW, ("pattern", "1"), ("request-timeout", "30000")],
    ));
    assert_eq!(sink.chain(&gray(0), 0), Ok(gst::FlowSuccess::Ok));
    assert_eq!(sink.chain(&gray(1), 1), Ok(gst::FlowSuccess::Ok));
    let blocked = std::thread::spawn({
        let sink = sink.clone();
        move || sink.chain(&gray(2), 2)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !blocked.is_finished(),
        "the third render must wait for room"
    );
    let started = Instant::now();
    assert!(sink.pad.send_event(gst::event::FlushStart::new()));
    assert_eq!(blocked.join().expect("join"), Err(gst::FlowError::Flushing));
    // The receiver holds its reply for 20 s: only the unlock can have ended the wait.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(sink.stat("dropped") >= 2, "frames 1 and 2 never left");
    let started = Instant::now();
    sink.pipeline.set_state(gst::State::Null).expect("null");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "NULL while frame 0 waits"
    );
}

/// The payloads a bare receiver saw, for 12 smooth BGR frames sent with `jpeg-threads`.
fn jpeg_hashes(threads: &str) -> Vec<serde_json::Value> {
    let port = free_port();
    let mut receiver = slow_receiver(port, 1, &[]);
    let info = video_info(VideoFormat::Bgr, 160, 120);
    let sink = Direct::new(info, port, &[("pattern", "1"), ("jpeg-threads", threads)]);
    for idx in 0..12 {
        let frame = smooth_frame(idx, 160, 120, 3);
        assert_eq!(sink.chain(&frame, idx as u64), Ok(gst::FlowSuccess::Ok));
    }
    assert!(sink.eos());
    let report = receiver.report(Duration::from_secs(40));
    assert_eq!(report["terminated"], true, "{report}");
    let compression = report["compression"].as_array().expect("compression");
    assert!(
        compression.iter().all(|c| c["colorspace"] == "BGR"),
        "{report}"
    );
    report["hashes"].as_array().expect("hashes").clone()
}

#[test]
fn jpeg_threads_one_and_two_send_the_same_bytes_in_the_same_order() {
    let _serial = serial();
    let series = jpeg_hashes("1");
    assert_eq!(series.len(), 12);
    let distinct: std::collections::BTreeSet<_> = series.iter().map(|h| h.to_string()).collect();
    assert_eq!(distinct.len(), 12, "every frame differs");
    assert_eq!(jpeg_hashes("2"), series);
    assert_eq!(jpeg_hashes("3"), series);
}

#[test]
fn parallel_jpeg_reaches_vidgear_in_order() {
    let _serial = serial();
    let port = free_port();
    let args = [("smooth", String::new()), ("jpeg", "BGR".to_owned())];
    let mut peer = Peer::start(&peer_args("recv", port, 0, &args));
    peer.wait_ready(Duration::from_secs(20));
    let info = video_info(VideoFormat::Bgr, 160, 120);
    let sink = Direct::new(info, port, &[("jpeg-threads", "2")]);
    for idx in 0..20 {
        let frame = smooth_frame(idx, 160, 120, 3);
        assert_eq!(sink.chain(&frame, idx as u64), Ok(gst::FlowSuccess::Ok));
    }
    assert!(sink.eos());
    let report = peer.report(Duration::from_secs(20));
    let expected: Vec<usize> = (0..20).collect();
    assert_eq!(report["received"], serde_json::json!(expected), "{report}");
    assert_eq!(report["bad"], serde_json::json!([]), "{report}");
    // Each frame compared with the one of its position: a frame out of order fails.
    let psnr_min = report["psnr_min"].as_f64().expect("psnr");
    assert!(psnr_min > 30.0, "{report}");
}

#[test]
fn fifty_start_stop_cycles_leave_no_thread_behind() {
    // The process's threads are counted: no other test may run.
    in_own_process(
        module_path!(),
        "fifty_start_stop_cycles_leave_no_thread_behind",
        fifty_start_stop_cycles,
    );
}

fn fifty_start_stop_cycles() {
    let _serial = serial();
    let cycle = |idx: usize| {
        let before = thread_count();
        // No receiver: frame 0 waits on the network when the sink stops.
        let sink = Direct::new(gray_info(), free_port(), &[("jpeg-threads", "2")]);
        assert!(
            thread_count() >= before + 3,
            "a companion and two encoders: {before} → {}",
            thread_count()
        );
        assert_eq!(sink.chain(&gray(idx), idx as u64), Ok(gst::FlowSuccess::Ok));
        sink.pipeline.set_state(gst::State::Null).expect("null");
    };
    (0..10).for_each(cycle);
    let after_ten = thread_count();
    (10..50).for_each(cycle);
    assert!(
        thread_count() <= after_ten + 2,
        "threads grew from {after_ten} to {}",
        thread_count()
    );
}
