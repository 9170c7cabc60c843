// SPDX-License-Identifier: MPL-2.0
//! Live timing of `netgearsrc` with a real vidgear sender sending at a steady rate: the
//! `framerate` property (variable by default, measured, or fixed) in the caps and in the
//! buffers' durations, an mp4 recorded from it with the right rate and length, and the
//! latency query.

use crate::common::*;
use gst::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a paced sender may take to report once its frames are out.
const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// A vidgear sender of `frames` 64x48 frames at `fps` to `port`.
fn paced_sender(port: u16, fps: u32, frames: usize) -> Peer {
    let args = flag_args(&[
        ("port", port.to_string()),
        ("fps", fps.to_string()),
        ("frames", frames.to_string()),
    ]);
    Peer::script("netgear_paced.py", &args)
}

/// A buffer's PTS and duration.
type Times = (Option<gst::ClockTime>, Option<gst::ClockTime>);

/// What left netgearsrc's src pad: the caps events and every buffer's PTS and duration.
#[derive(Default, Clone)]
struct Seen {
    caps: Arc<Mutex<Vec<gst::Caps>>>,
    buffers: Arc<Mutex<Vec<Times>>>,
}

impl Seen {
    fn watch(src: &gst::Element) -> Seen {
        Seen::watch_pad(&src.static_pad("src").expect("src pad"))
    }

    fn watch_pad(pad: &gst::Pad) -> Seen {
        let seen = Seen::default();
        let store = seen.clone();
        pad.add_probe(
            gst::PadProbeType::BUFFER
                | gst::PadProbeType::BUFFER_LIST
                | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                let record = |b: &gst::BufferRef| {
                    store.buffers.lock().unwrap().push((b.pts(), b.duration()));
                };
                match &info.data {
                    Some(gst::PadProbeData::Buffer(b)) => record(b),
                    Some(gst::PadProbeData::BufferList(list)) => list.iter().for_each(record),
                    Some(gst::PadProbeData::Event(e)) => {
                        if let gst::EventView::Caps(c) = e.view() {
                            store.caps.lock().unwrap().push(c.caps_owned());
                        }
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
        seen
    }

    fn framerates(&self) -> Vec<gst::Fraction> {
        self.caps
            .lock()
            .unwrap()
            .iter()
            .map(|c| {
                c.structure(0)
                    .unwrap()
                    .get::<gst::Fraction>("framerate")
                    .unwrap()
            })
            .collect()
    }

    fn durations(&self) -> Vec<Option<gst::ClockTime>> {
        self.buffers.lock().unwrap().iter().map(|b| b.1).collect()
    }
}

/// What qtdemux finds in an mp4: the framerate it derives (if any), the duration, and
/// the number of video samples.
fn probe_mp4(path: &std::path::Path) -> (Option<gst::Fraction>, gst::ClockTime, usize) {
    let pipeline = launch(&format!(
        "filesrc location={} ! qtdemux ! fakesink name=out sync=false",
        path.display()
    ));
    let seen = Seen::watch_pad(&pipeline.by_name("out").unwrap().static_pad("sink").unwrap());
    pipeline.set_state(gst::State::Paused).expect("paused");
    let (res, ..) = pipeline.state(gst::ClockTime::from_seconds(10));
    res.expect("the mp4 prerolls");
    let duration = pipeline
        .query_duration::<gst::ClockTime>()
        .expect("a duration");
    pipeline.set_state(gst::State::Playing).expect("playing");
    assert!(matches!(
        wait_end(&pipeline, std::time::Duration::from_secs(10)),
        Outcome::Eos
    ));
    pipeline.set_state(gst::State::Null).expect("null");
    let caps = seen.caps.lock().unwrap().first().cloned().expect("caps");
    let rate = caps
        .structure(0)
        .unwrap()
        .get::<gst::Fraction>("framerate")
        .ok();
    let samples = seen.buffers.lock().unwrap().len();
    (rate, duration, samples)
}

/// `netgearsrc ! videoconvert ! openh264enc ! mp4mux` from vidgear at a steady 30 fps: the
/// measured 30/1 is in the first caps, every buffer lasts 1/30 s, and the mp4 has 30 fps
/// and lasts 60 frames' worth.
#[test]
fn an_mp4_recorded_from_vidgear_has_the_measured_rate() {
    let port = free_port();
    let file = std::env::temp_dir().join(format!("netgear-timing-{port}.mp4"));
    let pipeline = launch(&format!(
        "netgearsrc name=src address=127.0.0.1 port={port} framerate=0/1 ! videoconvert ! openh264enc ! \
         h264parse ! mp4mux ! filesink location={}",
        file.display()
    ));
    let seen = Seen::watch(&pipeline.by_name("src").unwrap());
    pipeline.set_state(gst::State::Playing).expect("playing");
    let mut peer = paced_sender(port, 30, 60);
    let outcome = wait_end(&pipeline, Duration::from_secs(30));
    pipeline.set_state(gst::State::Null).expect("null");
    let _ = peer.report(REPORT_TIMEOUT);
    assert!(matches!(outcome, Outcome::Eos), "{outcome:?}");
    assert_eq!(seen.framerates(), vec![gst::Fraction::new(30, 1)]);
    let durations = seen.durations();
    assert_eq!(durations.len(), 60);
    let frame = gst::ClockTime::from_nseconds(33_333_333);
    assert!(durations.iter().all(|d| *d == Some(frame)), "{durations:?}");

    let (rate, duration, samples) = probe_mp4(&file);
    let _ = std::fs::remove_file(&file);
    assert_eq!(samples, 60, "video samples in the mp4");
    let seconds = duration.nseconds() as f64 / 1e9;
    assert!((seconds - 2.0).abs() < 0.25, "mp4 lasts {seconds:.3} s");
    // qtdemux derives a rate from the sample durations when they are regular enough.
    if let Some(rate) = rate {
        let fps = f64::from(rate.numer()) / f64::from(rate.denom());
        assert!((fps - 30.0).abs() < 1.5, "mp4 frame rate {rate:?}");
    }
}

fn receive_paced(framerate: &str, fps: u32, frames: usize) -> (Seen, Vec<Frame>) {
    let port = free_port().to_string();
    let receiver = Receiver::new(&[
        ("address", "127.0.0.1"),
        ("port", &port),
        ("framerate", framerate),
    ]);
    let seen = Seen::watch(&receiver.src);
    receiver.play();
    let mut peer = paced_sender(port.parse().unwrap(), fps, frames);
    let (received, eos) = receiver.collect(Duration::from_secs(10));
    let _ = peer.report(REPORT_TIMEOUT);
    assert!(eos);
    assert_eq!(received.len(), frames);
    (seen, received)
}

#[test]
fn an_explicit_framerate_is_used_as_it_is() {
    let (seen, frames) = receive_paced("25/1", 50, 20);
    assert_eq!(seen.framerates(), vec![gst::Fraction::new(25, 1)]);
    let frame = Some(gst::ClockTime::from_mseconds(40));
    assert!(seen.durations().iter().all(|d| *d == frame));
    // Timestamps still say when each frame arrived: 20 ms apart, not 40.
    let pts: Vec<_> = frames.iter().map(|f| f.pts.expect("pts")).collect();
    let span = pts[pts.len() - 1] - pts[0];
    assert!(span < gst::ClockTime::from_mseconds(19 * 35), "{span}");
}

#[test]
fn a_negative_framerate_announces_a_variable_rate() {
    let (seen, frames) = receive_paced("-1/1", 50, 10);
    assert_eq!(seen.framerates(), vec![gst::Fraction::new(0, 1)]);
    assert!(seen.durations().iter().all(|d| d.is_none()));
    assert!(frames.iter().all(|f| f.pts.is_some()));
}

/// Frames held while the rate is measured keep the time they arrived at.
#[test]
fn held_frames_keep_their_arrival_times() {
    let (seen, _) = receive_paced("0/1", 30, 15);
    assert_eq!(seen.framerates(), vec![gst::Fraction::new(30, 1)]);
    let buffers = seen.buffers.lock().unwrap().clone();
    let pts: Vec<gst::ClockTime> = buffers.iter().map(|b| b.0.expect("pts")).collect();
    let gaps: Vec<u64> = pts.windows(2).map(|w| (w[1] - w[0]).mseconds()).collect();
    let mean = gaps.iter().sum::<u64>() as f64 / gaps.len() as f64;
    assert!((mean - 33.3).abs() < 5.0, "gaps {gaps:?}");
}

/// Live, and at least one frame interval once the rate is known.
#[test]
fn the_latency_query_reports_one_frame_interval() {
    init();
    let port = free_port();
    let receiver = Receiver::new(&[
        ("address", "127.0.0.1"),
        ("port", &port.to_string()),
        ("framerate", "0/1"),
    ]);
    receiver.play();
    let mut before = gst::query::Latency::new();
    assert!(receiver.src.query(&mut before));
    assert_eq!(before.result(), (true, gst::ClockTime::ZERO, None));
    let mut peer = paced_sender(port, 30, 20);
    for _ in 0..12 {
        receiver
            .next_frame(Duration::from_secs(10))
            .expect("a frame");
    }
    let mut query = gst::query::Latency::new();
    assert!(receiver.src.query(&mut query));
    let frame = gst::ClockTime::from_nseconds(33_333_333);
    assert_eq!(query.result(), (true, frame, Some(frame)));
    let _ = receiver.collect(Duration::from_secs(10));
    let _ = peer.report(REPORT_TIMEOUT);
}

/// With a known rate the source says so in its latency from the start.
#[test]
fn a_fixed_framerate_sets_the_latency_before_any_frame() {
    init();
    let port = free_port().to_string();
    let receiver = Receiver::new(&[("port", &port), ("framerate", "10/1")]);
    receiver.play();
    let mut query = gst::query::Latency::new();
    assert!(receiver.src.query(&mut query));
    let frame = gst::ClockTime::from_mseconds(100);
    assert_eq!(query.result(), (true, frame, Some(frame)));
}

/// A lone frame is not held past the measurement window: it goes out with a variable rate.
#[test]
fn a_lone_frame_goes_out_after_the_measurement_window() {
    init();
    let port = free_port().to_string();
    let receiver = Receiver::new(&[
        ("address", "127.0.0.1"),
        ("port", &port),
        ("framerate", "0/1"),
    ]);
    let seen = Seen::watch(&receiver.src);
    receiver.play();
    let sender = Sender::raw(
        gst_video::VideoFormat::Bgr,
        8,
        4,
        &[("port", &port), ("jpeg-compression", "false")],
    );
    sender.play();
    sender
        .push_packed(&test_frame(0, 8, 4, 3, false), 0)
        .expect("push");
    // The measurement window is 3.1 s.
    let frame = receiver.next_frame(Duration::from_secs(5));
    assert!(frame.is_some(), "the frame was held");
    assert_eq!(seen.framerates(), vec![gst::Fraction::new(0, 1)]);
    assert_eq!(seen.durations(), vec![None]);
}
