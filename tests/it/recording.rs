// SPDX-License-Identifier: MPL-2.0
//! Recordings from a real vidgear sender with `netgearsrc`'s defaults, read back with the
//! demuxers: `avimux` (which refuses a variable rate) gets a measured one, measured rates
//! are the sender's (30, 29.97, 25), a recording starts at 0 however long the source
//! waited for its sender, and live sinks stay in sync. Also: formats downstream can never
//! take are a not-negotiated error, the source waits for its first sender, and `stats`
//! counts the replies that carry return data.

use crate::common::*;
use gst::prelude::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The wait before the sender starts: it must not show in a recording.
const SENDER_LATE: Duration = Duration::from_millis(1500);
/// How long a paced sender may take to report once its frames are out.
const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// tests/python/netgear_paced.py: `frames` 64x48 frames at `fps` to `port`, JPEG or raw.
fn paced(port: u16, fps: f64, frames: usize, jpeg: bool) -> Peer {
    let mut pairs = vec![
        ("port", port.to_string()),
        ("fps", fps.to_string()),
        ("frames", frames.to_string()),
    ];
    if jpeg {
        pairs.push(("jpeg", String::new()));
    }
    Peer::script("netgear_paced.py", &flag_args(&pairs))
}

/// Records `netgearsrc {props} ! {chain} ! filesink` from a vidgear sender at `fps` that
/// starts `SENDER_LATE` after the pipeline plays; the file's path, once it ended with EOS.
fn record(chain: &str, props: &str, fps: f64, frames: usize, jpeg: bool) -> PathBuf {
    let port = free_port();
    let file = std::env::temp_dir().join(format!("netgear-recording-{port}"));
    let pipeline = launch(&format!(
        "netgearsrc address=127.0.0.1 port={port} {props} ! {chain} ! filesink location={}",
        file.display()
    ));
    pipeline.set_state(gst::State::Playing).expect("playing");
    std::thread::sleep(SENDER_LATE);
    let mut peer = paced(port, fps, frames, jpeg);
    let outcome = wait_end(&pipeline, Duration::from_secs(30));
    pipeline.set_state(gst::State::Null).expect("null");
    let _ = peer.report(REPORT_TIMEOUT);
    assert!(matches!(outcome, Outcome::Eos), "{chain}: {outcome:?}");
    file
}

/// The caps events and buffer timestamps a probe saw.
type Probed = Arc<Mutex<(Vec<gst::Caps>, Vec<Option<gst::ClockTime>>)>>;

/// What a demuxer finds in a recording.
#[derive(Debug)]
struct ReadBack {
    rate: gst::Fraction,
    first_pts: gst::ClockTime,
    samples: usize,
}

fn read_back(path: &Path, demux: &str) -> ReadBack {
    let pipeline = launch(&format!(
        "filesrc location={} ! {demux} ! fakesink name=out sync=false",
        path.display()
    ));
    let seen: Probed = Arc::default();
    let store = seen.clone();
    let pad = pipeline.by_name("out").unwrap().static_pad("sink").unwrap();
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let mut seen = store.lock().unwrap();
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => seen.1.push(b.pts()),
                Some(gst::PadProbeData::Event(e)) => {
                    if let gst::EventView::Caps(c) = e.view() {
                        seen.0.push(c.caps_owned());
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
    pipeline.set_state(gst::State::Playing).expect("playing");
    let outcome = wait_end(&pipeline, Duration::from_secs(10));
    pipeline.set_state(gst::State::Null).expect("null");
    let _ = std::fs::remove_file(path);
    assert!(matches!(outcome, Outcome::Eos), "{demux}: {outcome:?}");
    let (caps, pts) = seen.lock().unwrap().clone();
    let caps = caps.first().cloned().expect("caps");
    let rate = caps.structure(0).unwrap().get::<gst::Fraction>("framerate");
    ReadBack {
        rate: rate.unwrap_or(gst::Fraction::new(0, 1)),
        first_pts: pts.iter().flatten().min().copied().expect("a timestamp"),
        samples: pts.len(),
    }
}

/// At most this far from 0: the first frame's arrival starts the recording.
fn assert_starts_at_zero(back: &ReadBack, what: &str) {
    assert!(
        back.first_pts < gst::ClockTime::from_mseconds(40),
        "{what}: the recording starts at {} ({back:?})",
        back.first_pts
    );
}

/// `netgearsrc ! avimux ! filesink` with defaults: avimux refuses a variable rate, so the
/// source measures one; every frame is in the file, at 30/1. (It used to stop at once
/// with not-negotiated.)
#[test]
fn avimux_records_a_vidgear_sender_with_the_defaults() {
    for jpeg in [true, false] {
        let file = record("avimux", "", 30.0, 60, jpeg);
        let back = read_back(&file, "avidemux");
        assert_eq!(
            back.rate,
            gst::Fraction::new(30, 1),
            "jpeg {jpeg}: {back:?}"
        );
        assert_eq!(back.samples, 60, "jpeg {jpeg}");
        assert_starts_at_zero(&back, "avi");
    }
}

/// matroskamux with defaults (variable rate) and with `framerate=0/1`: the recording
/// starts at 0 though the sender came 1.5 s after the pipeline played (it used to start
/// at the running time the first frame arrived at), with all frames and the measured rate.
#[test]
fn a_matroska_recording_starts_with_the_first_frame() {
    let file = record("matroskamux", "", 30.0, 45, true);
    let back = read_back(&file, "matroskademux");
    assert_eq!(back.samples, 45);
    assert_eq!(back.rate, gst::Fraction::new(0, 1), "variable by default");
    assert_starts_at_zero(&back, "mkv");

    let file = record("matroskamux", "framerate=0/1", 30.0, 60, true);
    let back = read_back(&file, "matroskademux");
    assert_eq!(back.samples, 60);
    assert_eq!(back.rate, gst::Fraction::new(30, 1), "{back:?}");
    assert_starts_at_zero(&back, "mkv, measured");
}

/// An mp4 of a raw 29.97 fps vidgear sender, measured: 30000/1001, not 30/1.
#[test]
fn an_mp4_of_a_29_97_sender_has_its_rate() {
    let chain = "videoconvert ! openh264enc ! h264parse ! mp4mux";
    let file = record(chain, "framerate=0/1", 30000.0 / 1001.0, 100, false);
    let back = read_back(&file, "qtdemux");
    assert_eq!(back.samples, 100);
    assert_eq!(back.rate, gst::Fraction::new(30000, 1001), "{back:?}");
    assert_starts_at_zero(&back, "mp4");
}

/// The framerate a measurement announces for senders at common rates.
#[test]
fn measured_rates_are_what_the_sender_runs_at() {
    for (fps, rate) in [
        (30.0, gst::Fraction::new(30, 1)),
        (30000.0 / 1001.0, gst::Fraction::new(30000, 1001)),
        (25.0, gst::Fraction::new(25, 1)),
    ] {
        let port = free_port();
        let receiver = Receiver::new(&[
            ("address", "127.0.0.1"),
            ("port", &port.to_string()),
            ("framerate", "0/1"),
        ]);
        receiver.play();
        let mut peer = paced(port, fps, 100, true);
        let (frames, eos) = receiver.collect(Duration::from_secs(10));
        let _ = peer.report(REPORT_TIMEOUT);
        assert!(eos && frames.len() == 100, "{fps}: {} frames", frames.len());
        let caps = receiver
            .src
            .static_pad("src")
            .unwrap()
            .current_caps()
            .unwrap();
        let got = caps.structure(0).unwrap().get::<gst::Fraction>("framerate");
        assert_eq!(got, Ok(rate), "{fps} fps");
    }
}

/// Live semantics on the held clock: the source answers live, a syncing sink renders every
/// frame (none late), and the first frame's running time is its arrival on a clock that
/// started with the sender.
#[test]
fn a_syncing_sink_renders_every_frame_on_time() {
    let port = free_port();
    let pipeline = launch(&format!(
        "netgearsrc name=src address=127.0.0.1 port={port} ! fakesink name=out sync=true"
    ));
    let first: Arc<Mutex<Option<gst::ClockTime>>> = Arc::default();
    let store = first.clone();
    let src_pad = pipeline.by_name("src").unwrap().static_pad("src").unwrap();
    src_pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
            store.lock().unwrap().get_or_insert(b.pts().unwrap());
        }
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).expect("playing");
    let mut latency = gst::query::Latency::new();
    assert!(src_pad.query(&mut latency));
    assert!(latency.result().0, "a live source");
    std::thread::sleep(SENDER_LATE);
    let mut peer = paced(port, 30.0, 45, true);
    let outcome = wait_end(&pipeline, Duration::from_secs(20));
    let _ = peer.report(REPORT_TIMEOUT);
    let stats = pipeline
        .by_name("out")
        .unwrap()
        .property::<gst::Structure>("stats");
    pipeline.set_state(gst::State::Null).expect("null");
    assert!(matches!(outcome, Outcome::Eos), "{outcome:?}");
    assert_eq!(stats.get::<u64>("rendered").unwrap(), 45, "{stats}");
    assert_eq!(stats.get::<u64>("dropped").unwrap(), 0, "{stats}");
    let first = first.lock().unwrap().expect("a frame");
    assert!(
        first < gst::ClockTime::from_mseconds(40),
        "first PTS {first}"
    );
}

/// Raw frames from vidgear into what takes only JPEG: a not-negotiated error that says
/// what the sender sends and what to do (it used to drop every frame and end with EOS).
#[test]
fn raw_frames_into_a_jpeg_only_downstream_are_an_error() {
    for chain in ["jpegdec ! fakesink", "image/jpeg ! fakesink"] {
        let port = free_port();
        let pipeline = launch(&format!(
            "netgearsrc address=127.0.0.1 port={port} ! {chain}"
        ));
        pipeline.set_state(gst::State::Playing).expect("playing");
        let mut peer = paced(port, 30.0, 30, false);
        let outcome = wait_end(&pipeline, Duration::from_secs(15));
        pipeline.set_state(gst::State::Null).expect("null");
        peer.kill();
        let expected = format!(
            "Downstream cannot take the frames from tcp://127.0.0.1:{port}: the sender sends \
             raw BGR frames; downstream accepts only image/jpeg: remove jpegdec"
        );
        match outcome {
            Outcome::Error(text) => assert!(text.contains(&expected), "{chain}: {text}"),
            other => panic!("{chain}: {other:?}"),
        }
    }
}

/// With `wait-for-sender` (the default) nobody sending is no reason to give up: after
/// three times the give-up the source still waits, takes the sender that comes, and gives
/// up only once that sender has gone silent for max-retries periods. With false it gives
/// up from the start, as vidgear does.
#[test]
fn a_source_waits_for_its_first_sender() {
    init();
    let src = gst::ElementFactory::make("netgearsrc").build().unwrap();
    assert!(src.property::<bool>("wait-for-sender"));
    let port = free_port();
    let receiver = Receiver::new(&[
        ("address", "127.0.0.1"),
        ("port", &port.to_string()),
        ("request-timeout", "300"),
        ("max-retries", "2"),
    ]);
    receiver.play();
    // The give-up would come after 2 × 900 ms.
    let watched = watch(
        &receiver.pipeline,
        Instant::now(),
        Duration::from_millis(5400),
    );
    assert!(
        matches!(watched.outcome, Outcome::TimedOut) && watched.warnings.is_empty(),
        "{:?} {:?}",
        watched.outcome,
        watched.warnings
    );
    let args = [
        ("frames", "1000".to_string()),
        ("interval", "0.02".into()),
        ("width", "64".into()),
        ("height", "48".into()),
        ("channels", "3".into()),
    ];
    let mut sender = Peer::start(&peer_args("send", port, 0, &args));
    assert!(receiver.next_frame(Duration::from_secs(15)).is_some());
    sender.kill();
    let start = Instant::now();
    let watched = watch(&receiver.pipeline, start, Duration::from_secs(10));
    assert!(
        matches!(watched.outcome, Outcome::Eos),
        "{:?}",
        watched.outcome
    );
    assert!(
        watched.after >= Duration::from_millis(1700) && watched.after < Duration::from_millis(3500),
        "gave up after {:?}",
        watched.after
    );
    let expected = format!("No sender for 2 × 900 ms on tcp://127.0.0.1:{port}: end of stream");
    assert!(
        watched.warnings.iter().any(|w| w.contains(&expected)),
        "{:?}",
        watched.warnings
    );
}

/// A bidirectional source replying with `return-data` counts each such reply in `returns`
/// (it used to say 0).
#[test]
fn returns_counts_the_replies_that_carry_data() {
    let port = free_port();
    let receiver = Receiver::new(&[
        ("address", "127.0.0.1"),
        ("port", &port.to_string()),
        ("bidirectional", "true"),
        ("return-data", "{\"ok\": 1}"),
    ]);
    receiver.play();
    let messages = json!(["a", "b", "c", "d", "e"]).to_string();
    let mut peer = Peer::modes(&script_args(
        "bi-send",
        &[
            ("port", port.to_string()),
            ("pattern", "0".into()),
            ("messages", messages),
        ],
    ));
    let (frames, eos) = receiver.collect(Duration::from_secs(15));
    let report = peer.report(Duration::from_secs(15));
    assert!(eos && frames.len() == 5, "{} frames", frames.len());
    assert_eq!(
        report["returns"].as_array().map(Vec::len),
        Some(5),
        "{report}"
    );
    assert_eq!(receiver.stats().get::<u64>("returns").unwrap(), 5);
}

/// The source's `request-timeout` says what the source does with it: it waits for no
/// reply.
#[test]
fn the_sources_request_timeout_says_what_it_does() {
    init();
    let src = gst::ElementFactory::make("netgearsrc").build().unwrap();
    let pspec = src.find_property("request-timeout").unwrap();
    let blurb = pspec.blurb().unwrap();
    assert!(
        blurb.contains("the source waits for no reply") && blurb.contains("rebind"),
        "{blurb}"
    );
}
