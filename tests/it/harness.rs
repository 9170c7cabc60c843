// SPDX-License-Identifier: MPL-2.0
//! The elements under `gst_check::Harness`: the events a source pushes and their order,
//! flushing a sink mid-stream, and the flow result of a wait that `unlock()` interrupts.

use crate::common::*;
use gst::prelude::*;
use gst_check::Harness;
use std::time::{Duration, Instant};

const W: u32 = 32;
const H: u32 = 24;

fn bgr_caps() -> gst::Caps {
    video_info(gst_video::VideoFormat::Bgr, W, H)
        .to_caps()
        .expect("caps")
}

fn bgr_buffer(idx: usize) -> gst::Buffer {
    let info = video_info(gst_video::VideoFormat::Bgr, W, H);
    let packed = test_frame(idx, W as usize, H as usize, 3, false);
    gst::Buffer::from_mut_slice(to_gst_layout(&packed, &info))
}

/// A `netgearsink` harness sending raw BGR to `port`.
fn sink_harness(port: u16, extra: &[(&str, &str)]) -> Harness {
    init();
    let sink = gst::ElementFactory::make("netgearsink")
        .property("sync", false)
        .property_from_str("address", "127.0.0.1")
        .property("port", u32::from(port))
        .property("jpeg-compression", false)
        .build()
        .expect("netgearsink");
    for (k, v) in extra {
        sink.set_property_from_str(k, v);
    }
    let mut h = Harness::with_element(&sink, Some("sink"), None);
    h.play();
    h.set_src_caps(bgr_caps());
    h
}

/// A `netgearsrc` harness bound on `port`.
fn src_harness(port: u16) -> Harness {
    init();
    let src = gst::ElementFactory::make("netgearsrc")
        .property_from_str("address", "127.0.0.1")
        .property("port", u32::from(port))
        .build()
        .expect("netgearsrc");
    let mut h = Harness::with_element(&src, None, Some("src"));
    h.play();
    h
}

#[test]
fn source_pushes_stream_start_caps_segment_before_the_first_buffer() {
    let port = free_port();
    let mut src = src_harness(port);
    let sender = Sender::raw(
        gst_video::VideoFormat::Bgr,
        W,
        H,
        &[
            ("address", "127.0.0.1"),
            ("port", &port.to_string()),
            ("jpeg-compression", "false"),
        ],
    );
    sender.play();
    let packed = test_frame(3, W as usize, H as usize, 3, false);
    sender.push_packed(&packed, 0).expect("push");
    let buffer = src.pull().expect("a frame");
    let info = video_info(gst_video::VideoFormat::Bgr, W, H);
    let map = buffer.map_readable().expect("map");
    assert_eq!(from_gst_layout(&map, &info), packed);
    let kinds: Vec<gst::EventType> = std::iter::from_fn(|| src.try_pull_event())
        .map(|e| e.type_())
        .collect();
    assert_eq!(
        kinds,
        [
            gst::EventType::StreamStart,
            gst::EventType::Caps,
            gst::EventType::Segment
        ],
        "events before the first buffer"
    );
    let caps = src.sinkpad().expect("harness sink pad").current_caps();
    assert_eq!(caps.as_ref(), Some(&bgr_caps_at_variable_rate()));
    assert!(buffer.pts().is_some(), "a live source stamps its buffers");
}

fn bgr_caps_at_variable_rate() -> gst::Caps {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::Bgr, W, H)
        .fps(gst::Fraction::new(0, 1))
        .build()
        .expect("info")
        .to_caps()
        .expect("caps")
}

#[test]
fn sink_keeps_sending_after_a_flush() {
    let port = free_port();
    let receiver = Receiver::new(&[("address", "127.0.0.1"), ("port", &port.to_string())]);
    receiver.play();
    let mut sink = sink_harness(port, &[]);
    assert_eq!(sink.push(bgr_buffer(0)), Ok(gst::FlowSuccess::Ok));
    // render returns once frame 0 is handed over; a flush drops what has not arrived.
    let first = receiver
        .next_frame(Duration::from_secs(5))
        .expect("frame 0");
    assert_eq!(frame_index(&first.packed()), 0);
    assert!(sink.push_event(gst::event::FlushStart::new()));
    assert!(sink.push_event(gst::event::FlushStop::new(true)));
    // A flush resets the segment; the harness sends a new one with the next buffer.
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(sink.push_event(gst::event::Segment::new(&segment)));
    assert_eq!(sink.push(bgr_buffer(1)), Ok(gst::FlowSuccess::Ok));
    let next = receiver
        .next_frame(Duration::from_secs(5))
        .expect("frame 1");
    assert_eq!(frame_index(&next.packed()), 1);
}

#[test]
fn unlock_ends_a_wait_for_a_reply_with_flushing() {
    // Nobody listens: frame 0 waits for a reply that never comes, frame 1 waits for
    // room, and the render of frame 2 waits for the hand-off.
    let port = free_port();
    let mut sink = sink_harness(port, &[("request-timeout", "20000")]);
    assert_eq!(sink.push(bgr_buffer(0)), Ok(gst::FlowSuccess::Ok));
    assert_eq!(sink.push(bgr_buffer(1)), Ok(gst::FlowSuccess::Ok));
    let srcpad = sink.srcpad().expect("harness src pad").clone();
    let flusher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        // FlushStart makes the base class call unlock().
        assert!(srcpad.push_event(gst::event::FlushStart::new()));
        started
    });
    let result = sink.push(bgr_buffer(2));
    let flushed_at = flusher.join().expect("flusher");
    assert_eq!(result, Err(gst::FlowError::Flushing));
    assert!(
        flushed_at.elapsed() < Duration::from_secs(2),
        "render returned {:?} after the flush, not at once",
        flushed_at.elapsed()
    );
    let stats = sink
        .element()
        .expect("element")
        .property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("frames").unwrap(), 0);
    // Frames 1 and 2 at once; frame 0 when the companion has seen the wake-up.
    assert!(stats.get::<u64>("dropped").unwrap() >= 2);
}

#[test]
fn unlock_ends_a_source_wait_and_null_returns_at_once() {
    let port = free_port();
    let src = src_harness(port);
    let element = src.element().expect("element");
    // create() is now blocked on the network; nothing will arrive.
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    element
        .set_state(gst::State::Null)
        .expect("state change to NULL");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "NULL took {:?}",
        started.elapsed()
    );
}
