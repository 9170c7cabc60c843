// SPDX-License-Identifier: MPL-2.0
//! Capture times end to end: `netgearsink` sends each frame's capture time under the header
//! key `capture_time_ns` (upstream's `timestamp/x-unix` reference timestamp, else the
//! pipeline clock's UNIX time at capture), `netgearsrc` attaches it as a
//! `GstReferenceTimestampMeta` with caps `timestamp/x-unix`, reports the delays' p50/p99 in
//! `stats` and drops frames later than `max-lateness`. The real vidgear 0.3.6 receives our
//! stamped frames as it does any, and its unstamped frames pass through untouched.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use netgear_protocol::{add_sequence, append_capture_time, encode_frame_header, Dtype, JsonText};
use netgear_protocol::{parse_header, Incoming, PayloadKind, RawLayout};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const W: usize = 64;
const H: usize = 48;
const UNIX: &str = "timestamp/x-unix";

/// The wall clock in nanoseconds, as `timestamp/x-unix` stamps count it.
fn unix_now_ns() -> u64 {
    unix_now().as_nanos() as u64
}

/// The buffer's `timestamp/x-unix` reference timestamps, in nanoseconds.
fn unix_stamps(buffer: &gst::BufferRef) -> Vec<u64> {
    buffer
        .iter_meta::<gst::ReferenceTimestampMeta>()
        .filter(|m| m.reference().structure(0).is_some_and(|s| s.has_name(UNIX)))
        .map(|m| m.timestamp().nseconds())
        .collect()
}

/// One frame out of the receiver: packed rows (raw frames), its stamps, when it was pulled.
struct Stamped {
    packed: Option<Vec<u8>>,
    stamps: Vec<u64>,
    pulled_ns: u64,
}

/// Pulls frames until EOS (panics without one) or until `timeout` passes with nothing new.
fn pull_stamped(receiver: &Receiver, timeout: Duration) -> Vec<Stamped> {
    let mut frames = Vec::new();
    let wait = gst::ClockTime::from_mseconds(timeout.as_millis() as u64);
    while let Some(sample) = receiver.appsink.try_pull_sample(wait) {
        let pulled_ns = unix_now_ns();
        let buffer = sample.buffer().expect("buffer");
        let caps = sample.caps().expect("caps");
        let raw = caps.structure(0).is_some_and(|s| s.has_name("video/x-raw"));
        let info = raw.then(|| gst_video::VideoInfo::from_caps(caps).expect("raw caps"));
        let map = buffer.map_readable().expect("map");
        frames.push(Stamped {
            packed: info.map(|info| from_gst_layout(&map, &info)),
            stamps: unix_stamps(buffer),
            pulled_ns,
        });
    }
    assert!(receiver.appsink.is_eos(), "no EOS");
    frames
}

/// A test frame laid out as GStreamer holds it, with these `timestamp/x-unix` stamps (and
/// a `timestamp/x-ntp` one first, which must not be taken for it).
fn stamped_buffer(sender: &Sender, idx: usize, unix_ns: Option<u64>) -> gst::Buffer {
    let info = sender.info.as_ref().expect("raw caps");
    let mut buffer = frame_buffer(
        to_gst_layout(&test_frame(idx, W, H, 3, false), info),
        idx as u64,
    );
    let b = buffer.get_mut().unwrap();
    let ntp = gst::Caps::new_empty_simple("timestamp/x-ntp");
    gst::ReferenceTimestampMeta::add(b, &ntp, gst::ClockTime::from_seconds(7), None);
    if let Some(ns) = unix_ns {
        let unix = gst::Caps::new_empty_simple(UNIX);
        gst::ReferenceTimestampMeta::add(b, &unix, gst::ClockTime::from_nseconds(ns), None);
    }
    buffer
}

fn raw_sender(port: u16, extra: &[(&str, &str)]) -> Sender {
    let port = port.to_string();
    let mut props = vec![
        ("port", port.as_str()),
        ("pattern", "1"),
        ("jpeg-compression", "false"),
    ];
    props.extend_from_slice(extra);
    let sender = Sender::raw(VideoFormat::Bgr, W as u32, H as u32, &props);
    sender.play();
    sender
}

fn receiver(port: u16, extra: &[(&str, &str)]) -> Receiver {
    let port = port.to_string();
    let mut props = vec![
        ("port", port.as_str()),
        ("pattern", "1"),
        ("address", "127.0.0.1"),
    ];
    props.extend_from_slice(extra);
    let receiver = Receiver::new(&props);
    receiver.play();
    receiver
}

fn index_of(frame: &Stamped) -> usize {
    let packed = frame.packed.as_ref().expect("a raw frame");
    let idx = frame_index(packed);
    assert_eq!(
        *packed,
        test_frame(idx, W, H, 3, false),
        "frame {idx} differs"
    );
    idx
}

/// Frames without upstream stamps: from a live source (stamped with the clock's UNIX time
/// when it captured them, though the sink renders them 200 ms later) and from a non-live
/// appsrc into `sync=false` (ahead of the clock: stamped when rendered). Every frame
/// carries one stamp, no earlier than the sender's start and no later than its arrival, in
/// the order of capture; a live frame's is no later than its reaching the sink.
#[test]
fn frames_carry_their_capture_time_in_order() {
    init();
    for live in [true, false] {
        let port = free_port();
        let receiver = receiver(port, &[]);
        let started_ns = unix_now_ns();
        let (live_source, reached_sink) = match live {
            true => {
                let (pipeline, reached) = live_source(port);
                (Some(pipeline), reached)
            }
            false => (None, Arc::default()),
        };
        let app_source = (!live).then(|| raw_sender(port, &[]));
        if let Some(sender) = &app_source {
            for i in 0..20 {
                sender
                    .push_packed(&test_frame(i, W, H, 3, false), i as u64)
                    .unwrap();
            }
            sender.finish();
        }
        let frames = pull_stamped(&receiver, Duration::from_secs(15));
        assert_eq!(frames.len(), 20, "live={live}");
        let stamps: Vec<u64> = frames
            .iter()
            .map(|f| {
                assert_eq!(f.stamps.len(), 1, "live={live}: one stamp per frame");
                let stamp = f.stamps[0];
                assert!(
                    (started_ns..=f.pulled_ns).contains(&stamp),
                    "live={live}: stamp {stamp} outside [{started_ns}, {}]",
                    f.pulled_ns
                );
                stamp
            })
            .collect();
        assert!(
            stamps.windows(2).all(|w| w[0] < w[1]),
            "live={live}: stamps out of order: {stamps:?}"
        );
        if live {
            let reached = reached_sink.lock().unwrap().clone();
            assert_eq!(reached.len(), 20);
            for (i, (stamp, reached)) in stamps.iter().zip(&reached).enumerate() {
                assert!(
                    stamp <= reached,
                    "frame {i} stamped {stamp}, after it reached the sink at {reached}"
                );
            }
        }
        let stats = receiver.stats();
        assert_eq!(stats.get::<u64>("late").unwrap(), 0);
        assert!(stats.get::<f64>("delay-p50-ms").unwrap() >= 0.0);
        if let Some(pipeline) = live_source {
            pipeline.set_state(gst::State::Null).unwrap();
        }
    }
}

/// 20 frames of a live `videotestsrc` into a `netgearsink` that renders each 200 ms after
/// its running time (`ts-offset`), playing; and the UNIX times at which they reached it.
fn live_source(port: u16) -> (gst::Element, Arc<Mutex<Vec<u64>>>) {
    let line = format!(
        "videotestsrc is-live=true num-buffers=20 ! video/x-raw,format=BGR,width={W},height={H},framerate=30/1 ! netgearsink name=sink port={port} pattern=1 jpeg-compression=false ts-offset=200000000"
    );
    let pipeline = gst::parse::launch(&line).unwrap();
    let sink = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("sink")
        .unwrap();
    let reached = Arc::new(Mutex::new(Vec::new()));
    let record = reached.clone();
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            record.lock().unwrap().push(unix_now_ns());
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    (pipeline, reached)
}

/// Upstream's `timestamp/x-unix` stamps cross byte-equal, raw and JPEG; the `x-ntp` one
/// beside them is not sent for it.
#[test]
fn upstream_unix_timestamps_cross_exactly() {
    for jpeg in ["false", "true"] {
        let port = free_port();
        let receiver = receiver(port, &[]);
        let sender = raw_sender(port, &[("jpeg-compression", jpeg)]);
        let started_ns = unix_now_ns();
        let sent: Vec<u64> = (0..12)
            .map(|i| 1_234_567_890_123_456_789 + i * 33_333_333 + i % 7)
            .collect();
        for (i, ns) in sent.iter().enumerate() {
            sender
                .appsrc
                .push_buffer(stamped_buffer(&sender, i, Some(*ns)))
                .unwrap();
        }
        sender.finish_expect_eos(Duration::from_secs(15));
        let frames = pull_stamped(&receiver, Duration::from_secs(15));
        let got: Vec<Vec<u64>> = frames.iter().map(|f| f.stamps.clone()).collect();
        let expected: Vec<Vec<u64>> = sent.iter().map(|ns| vec![*ns]).collect();
        assert_eq!(got, expected, "jpeg={jpeg}");
        if jpeg == "false" {
            let order: Vec<usize> = frames.iter().map(index_of).collect();
            assert_eq!(order, (0..12).collect::<Vec<_>>());
        }
        // Stamped in 2009: each delay is between the start less the last stamp and now
        // less the first.
        let lowest = (started_ns - sent[11]) as f64 / 1e6;
        let highest = (unix_now_ns() - sent[0]) as f64 / 1e6;
        let stats = receiver.stats();
        let p50 = stats.get::<f64>("delay-p50-ms").unwrap();
        let p99 = stats.get::<f64>("delay-p99-ms").unwrap();
        assert!(
            lowest <= p50 && p50 <= p99 && p99 <= highest,
            "p50 {p50} ms, p99 {p99} ms, not within [{lowest}, {highest}]"
        );
    }
}

/// netgearsrc ! netgearsink relays the first sender's capture time, not its own.
#[test]
fn a_relay_keeps_the_first_capture_time() {
    let (first, second) = (free_port(), free_port());
    let receiver = receiver(second, &[]);
    let relay = gst::parse::launch(&format!(
        "netgearsrc port={first} pattern=1 address=127.0.0.1 ! netgearsink port={second} pattern=1 jpeg-compression=false sync=false"
    ))
    .unwrap();
    relay.set_state(gst::State::Playing).unwrap();
    let sender = raw_sender(first, &[]);
    let sent: Vec<u64> = (0..8)
        .map(|i| 1_500_000_000_000_000_000 + i * 1_000)
        .collect();
    for (i, ns) in sent.iter().enumerate() {
        sender
            .appsrc
            .push_buffer(stamped_buffer(&sender, i, Some(*ns)))
            .unwrap();
    }
    sender.finish_expect_eos(Duration::from_secs(15));
    let frames = pull_stamped(&receiver, Duration::from_secs(15));
    relay.set_state(gst::State::Null).unwrap();
    let got: Vec<(usize, Vec<u64>)> = frames
        .iter()
        .map(|f| (index_of(f), f.stamps.clone()))
        .collect();
    let expected: Vec<(usize, Vec<u64>)> = sent
        .iter()
        .enumerate()
        .map(|(i, ns)| (i, vec![*ns]))
        .collect();
    assert_eq!(got, expected);
}

/// On the wire: vidgear's header, byte for byte, then `"capture_time_ns": N`, then our frame
/// number (`netgear_sequence`, the last key).
#[test]
fn the_header_carries_the_capture_time_after_vidgears_keys() {
    init();
    let port = free_port();
    let ctx = zmq::Context::new();
    let pair = ctx.socket(zmq::PAIR).unwrap();
    pair.bind(&format!("tcp://127.0.0.1:{port}")).unwrap();
    pair.set_rcvtimeo(10_000).unwrap();
    let sender = Sender::raw(
        VideoFormat::Bgr,
        W as u32,
        H as u32,
        &[("port", &port.to_string()), ("jpeg-compression", "false")],
    );
    sender.play();
    let stamp = 1_732_300_000_123_456_789;
    sender
        .appsrc
        .push_buffer(stamped_buffer(&sender, 3, Some(stamp)))
        .unwrap();
    let parts = pair.recv_multipart(0).expect("a frame from the sink");
    pair.send("Data received on device: TESTTEST !", 0).unwrap();
    let layout = PayloadKind::Raw(RawLayout::new(Dtype::U8, H, W, 3));
    let Ok(Incoming::Frame(header)) = parse_header(&parts[0]) else {
        panic!("not a frame header: {}", String::from_utf8_lossy(&parts[0]));
    };
    let sequence = header.sequence.expect("our sink numbers its frames");
    assert_eq!(sequence.number, 0, "the first frame of the stream");
    let mut expected = encode_frame_header(None, &layout, &JsonText::null(), 0);
    append_capture_time(&mut expected, stamp);
    add_sequence(&mut expected, sequence);
    assert_eq!(
        String::from_utf8_lossy(&parts[0]),
        String::from_utf8_lossy(&expected)
    );
    assert!(String::from_utf8_lossy(&parts[0]).contains(
        r#""shape": [48, 64, 3], "capture_time_ns": 1732300000123456789, "netgear_sequence": [""#
    ));
    assert_eq!(parts[1], test_frame(3, W, H, 3, false));
    sender.stop();
}

/// Our stamped frames into the real vidgear receiver, plain (patterns 0 and 1): every frame
/// intact, in order, the termination honoured, no warning on our side.
#[test]
fn vidgear_plain_receiver_takes_stamped_frames() {
    for pattern in [0u8, 1] {
        let port = free_port();
        let mut peer = Peer::start(&peer_args(
            "recv",
            port,
            pattern,
            &[("seconds", "30".into())],
        ));
        peer.wait_ready(Duration::from_secs(20));
        let sender = raw_sender(port, &[("pattern", &pattern.to_string())]);
        for i in 0..15 {
            // Paced: vidgear drops frames still queued when the termination arrives.
            std::thread::sleep(Duration::from_millis(5));
            sender
                .push_packed(&test_frame(i, W, H, 3, false), i as u64)
                .unwrap();
        }
        sender.finish_expect_eos(Duration::from_secs(20));
        let report = peer.report(Duration::from_secs(30));
        assert_eq!(
            report["received"],
            json!((0..15).collect::<Vec<_>>()),
            "pattern {pattern}: {report}"
        );
        assert_eq!(report["bad"], json!([]), "pattern {pattern}");
        assert_eq!(report["terminated"], true, "pattern {pattern}");
        assert_eq!(sender.posted.warnings(), Vec::<String>::new());
    }
}

/// Bidirectional vidgear receivers (patterns 0 and 1) read the message and the frame of
/// each stamped frame and answer every one.
#[test]
fn vidgear_bidirectional_receiver_takes_stamped_frames() {
    for pattern in ["0", "1"] {
        let port = free_port();
        let mut peer = Peer::modes(&script_args(
            "bi-recv",
            &[
                ("port", port.to_string()),
                ("pattern", pattern.into()),
                ("return", r#"{"seen": true}"#.into()),
            ],
        ));
        peer.wait_ready(Duration::from_secs(20));
        let sender = raw_sender(
            port,
            &[
                ("pattern", pattern),
                ("bidirectional", "true"),
                ("message", r#"{"n": 1}"#),
            ],
        );
        for i in 0..10 {
            sender
                .push_packed(&test_frame(i, W, H, 3, false), i as u64)
                .unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        sender.finish_expect_eos(Duration::from_secs(20));
        let report = peer.report(Duration::from_secs(30));
        assert_eq!(
            report["frames"],
            json!((0..10).collect::<Vec<_>>()),
            "pattern {pattern}: {report}"
        );
        assert_eq!(report["messages"], json!(vec![json!({"n": 1}); 10]));
        assert_eq!(report["terminated"], true);
        assert_eq!(sender.posted.warnings(), Vec::<String>::new());
        let returns = sender.posted.named("netgear-return");
        assert!(
            !returns.is_empty(),
            "pattern {pattern}: vidgear answered no data"
        );
        assert!(returns
            .iter()
            .all(|s| s.get::<String>("data").unwrap() == r#"{"seen": true}"#));
    }
}

/// Two of our stamped sinks into a multi-server vidgear receiver: every frame of each.
#[test]
fn vidgear_multi_server_receiver_takes_stamped_frames() {
    let servers = [free_port(), free_port()];
    let ports = format!("{},{}", servers[0], servers[1]);
    let mut peer = Peer::modes(&script_args(
        "ms-recv",
        &[("ports", ports), ("pattern", "1".into())],
    ));
    peer.wait_ready(Duration::from_secs(20));
    let senders: Vec<Sender> = servers
        .iter()
        .map(|p| raw_sender(*p, &[("multi-server", "true")]))
        .collect();
    for i in 0..10 {
        for s in &senders {
            s.push_packed(&test_frame(i, W, H, 3, false), i as u64)
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for s in &senders {
        s.finish_expect_eos(Duration::from_secs(20));
        assert_eq!(s.posted.warnings(), Vec::<String>::new());
    }
    let report = peer.report(Duration::from_secs(30));
    assert_eq!(report["terminated"], true, "{report}");
    let (pairs, expected) = (
        server_frame_pairs(&report),
        frames_of_every_server(&servers, 10),
    );
    assert_eq!(pairs, expected);
}

/// A vidgear sender stamps nothing: no meta, no delay statistics, nothing late, every frame
/// delivered with `max-lateness` on.
#[test]
fn vidgear_frames_have_no_capture_time_and_are_never_late() {
    let port = free_port();
    let receiver = receiver(port, &[("max-lateness", "1")]);
    let mut peer = Peer::start(&peer_args("send", port, 1, &sender_args(W, H, 3, 15, None)));
    let frames = pull_stamped(&receiver, Duration::from_secs(20));
    peer.report(Duration::from_secs(20));
    let order: Vec<usize> = frames.iter().map(index_of).collect();
    assert_eq!(order, (0..15).collect::<Vec<_>>());
    assert!(
        frames.iter().all(|f| f.stamps.is_empty()),
        "a vidgear frame got a stamp"
    );
    let stats = receiver.stats();
    assert_eq!(stats.get::<u64>("late").unwrap(), 0);
    assert_eq!(stats.get::<u64>("frames").unwrap(), 15);
    assert!(
        !stats.has_field("delay-p50-ms") && !stats.has_field("delay-p99-ms"),
        "{stats}"
    );
}

/// Frames whose stamps jump 3 s into the past arrive 3 s later than the others by their
/// sender's clock: with max-lateness=1000 exactly those are dropped and counted; with 0
/// (off) all arrive.
#[test]
fn max_lateness_drops_frames_stamped_in_the_past() {
    const JUMPED: [usize; 4] = [10, 11, 12, 20];
    const BACK_NS: u64 = 3_000_000_000;
    for max_lateness in ["1000", "0"] {
        let port = free_port();
        let receiver = receiver(port, &[("max-lateness", max_lateness)]);
        assert_eq!(
            receiver.src.property::<u32>("max-lateness").to_string(),
            max_lateness
        );
        let sender = raw_sender(port, &[]);
        for i in 0..30 {
            let back = if JUMPED.contains(&i) { BACK_NS } else { 0 };
            let stamp = unix_now_ns() - back;
            sender
                .appsrc
                .push_buffer(stamped_buffer(&sender, i, Some(stamp)))
                .unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        sender.finish_expect_eos(Duration::from_secs(20));
        let frames = pull_stamped(&receiver, Duration::from_secs(15));
        let order: Vec<usize> = frames.iter().map(index_of).collect();
        let stats = receiver.stats();
        let (expected, late): (Vec<usize>, u64) = match max_lateness {
            "0" => ((0..30).collect(), 0),
            _ => ((0..30).filter(|i| !JUMPED.contains(i)).collect(), 4),
        };
        assert_eq!(order, expected, "max-lateness={max_lateness}");
        assert_eq!(stats.get::<u64>("late").unwrap(), late, "{stats}");
        assert_eq!(stats.get::<u64>("frames").unwrap(), expected.len() as u64);
        assert_eq!(stats.get::<u64>("dropped").unwrap(), 0);
        // Every delay counts, the dropped ones too: 4 of 30 are over 3 s.
        let p50 = stats.get::<f64>("delay-p50-ms").unwrap();
        let p99 = stats.get::<f64>("delay-p99-ms").unwrap();
        assert!(p99 >= 3000.0 && p50 < 3000.0, "p50 {p50} ms, p99 {p99} ms");
    }
}

/// Multi-server: a sender whose clock is 5 s behind is judged against its own lowest
/// delay, not the other sender's, so nothing is late.
#[test]
fn each_sender_is_judged_against_its_own_lowest_delay() {
    let servers = [free_port(), free_port()];
    let ports = format!("{},{}", servers[0], servers[1]);
    let receiver = Receiver::new(&[
        ("ports", &ports),
        ("multi-server", "true"),
        ("pattern", "1"),
        ("address", "127.0.0.1"),
        ("max-lateness", "1000"),
    ]);
    receiver.play();
    let senders: Vec<Sender> = servers
        .iter()
        .map(|p| raw_sender(*p, &[("multi-server", "true")]))
        .collect();
    for i in 0..10 {
        for (s, behind_ns) in senders.iter().zip([0, 5_000_000_000]) {
            let stamp = unix_now_ns() - behind_ns;
            s.appsrc
                .push_buffer(stamped_buffer(s, i, Some(stamp)))
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for s in &senders {
        s.finish_expect_eos(Duration::from_secs(20));
    }
    let frames = pull_stamped(&receiver, Duration::from_secs(15));
    assert_eq!(frames.len(), 20);
    let stats = receiver.stats();
    assert_eq!(stats.get::<u64>("late").unwrap(), 0, "{stats}");
    assert_eq!(stats.get::<u64>("frames").unwrap(), 20);
}
