// SPDX-License-Identifier: MPL-2.0
//! `netgeardemux` against real vidgear multi-server senders: one pad per server carrying
//! exactly that server's frames, per-server EOS, and vidgear's montage in `compositor`.

use crate::common::*;
use gst::prelude::*;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a sender may take to send its frames and exit.
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// tests/python/netgear_montage.py: a vidgear multi-server sender.
fn server(port: u16, args: &[(&str, String)]) -> Peer {
    let mut pairs = vec![("port", port.to_string())];
    pairs.extend_from_slice(args);
    Peer::script("netgear_montage.py", &flag_args(&pairs))
}

/// What happened on the demuxer's pads, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// A buffer on the pad of this port: frame index, tight bytes, caps, meta message.
    Frame {
        port: u16,
        idx: usize,
        exact: bool,
        size: (u32, u32),
        message: Option<String>,
    },
    Caps(u16),
    Eos(u16),
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn port_of(pad: &gst::Pad) -> u16 {
    pad.name()
        .strip_prefix("src_")
        .and_then(|p| p.parse().ok())
        .expect("pad named src_<port>")
}

/// Checks a buffer against the test frame its first byte names.
fn inspect(port: u16, buffer: &gst::BufferRef, caps: &gst::Caps) -> Seen {
    let info = gst_video::VideoInfo::from_caps(caps).expect("raw caps");
    let map = buffer.map_readable().expect("map");
    let packed = from_gst_layout(&map, &info);
    let idx = frame_index(&packed);
    let expected = test_frame(idx, info.width() as usize, info.height() as usize, 3, false);
    Seen::Frame {
        port,
        idx,
        exact: packed == expected,
        size: (info.width(), info.height()),
        message: gstnetgear::meta::read(buffer).and_then(|m| m.message),
    }
}

/// Drains a demuxer pad into its own appsink, logging every frame, caps event and EOS as
/// it passes (all in the one streaming thread, so the log holds the true order).
fn drain_pad(pipeline: &gst::Pipeline, pad: &gst::Pad, log: &Log) {
    let port = port_of(pad);
    let events = log.clone();
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        match info.event().map(|e| e.view()) {
            Some(gst::EventView::Caps(_)) => events.lock().unwrap().push(Seen::Caps(port)),
            Some(gst::EventView::Eos(_)) => events.lock().unwrap().push(Seen::Eos(port)),
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
    let frames = log.clone();
    let sink = gst_app::AppSink::builder()
        .name(format!("out_{port}"))
        .sync(false)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
                        return Err(gst::FlowError::Error);
                    };
                    frames
                        .lock()
                        .unwrap()
                        .push(inspect(port, buffer, &caps.to_owned()));
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    pipeline.add(&sink).expect("add appsink");
    sink.sync_state_with_parent().expect("appsink state");
    pad.link(&sink.static_pad("sink").expect("sink pad"))
        .expect("link appsink");
}

/// `netgearsrc multi-server=true ! netgeardemux`, an appsink per pad as pads appear.
fn demux_pipeline(ports: &[u16]) -> (gst::Pipeline, gst::Element, Log, Posted) {
    let pipeline = launch(&format!(
        "netgearsrc name=src multi-server=true pattern=req-rep address=127.0.0.1 ports={} \
         ! netgeardemux name=d",
        port_list(ports)
    ));
    let demux = pipeline.by_name("d").expect("demux");
    let log = Log::default();
    let weak = pipeline.downgrade();
    let pads_log = log.clone();
    demux.connect_pad_added(move |_, pad| {
        if let Some(pipeline) = weak.upgrade() {
            drain_pad(&pipeline, pad, &pads_log);
        }
    });
    let posted = Posted::record(&pipeline);
    (pipeline, demux, log, posted)
}

fn frames_of(log: &[Seen], port: u16) -> Vec<(usize, bool, (u32, u32))> {
    log.iter()
        .filter_map(|s| match s {
            Seen::Frame {
                port: p,
                idx,
                exact,
                size,
                ..
            } if *p == port => Some((*idx, *exact, *size)),
            _ => None,
        })
        .collect()
}

fn position(log: &[Seen], wanted: &Seen) -> usize {
    log.iter()
        .position(|s| s == wanted)
        .unwrap_or_else(|| panic!("{wanted:?} never happened"))
}

/// Three vidgear servers (two sizes, one resizing, one with messages): each pad carries
/// exactly its server's frames, byte for byte and in order; a termination ends only its
/// server's pad while the others go on; the pipeline ends after the last one.
#[test]
fn each_server_gets_its_own_pad() {
    let ports = free_ports(3);
    let (a, b, c) = (ports[0], ports[1], ports[2]);
    let (pipeline, demux, log, posted) = demux_pipeline(&ports);
    pipeline.set_state(gst::State::Playing).expect("playing");
    let at = start_at(4.0);
    let common = |frames: u32| {
        vec![
            ("frames", frames.to_string()),
            ("interval", "0.04".to_string()),
            ("start-at", at.clone()),
        ]
    };
    // a: 64x48, stops early. b: 96x72 with messages. c: 64x48, then 80x60 from frame 20.
    let mut servers = vec![
        server(a, &common(15)),
        server(
            b,
            &[
                common(50),
                vec![
                    ("width", "96".into()),
                    ("height", "72".into()),
                    ("message", "b".into()),
                ],
            ]
            .concat(),
        ),
        server(c, &[common(50), vec![("resize-at", "20".into())]].concat()),
    ];
    let end = wait_end(&pipeline, Duration::from_secs(20));
    assert!(matches!(end, Outcome::Eos), "pipeline did not end: {end:?}");
    for s in &mut servers {
        assert!(s.report(REPORT_TIMEOUT)["sent"].as_u64().is_some());
    }
    let log = log.lock().unwrap().clone();

    let exact = |n: usize, size: (u32, u32)| (0..n).map(|i| (i, true, size)).collect::<Vec<_>>();
    assert_eq!(frames_of(&log, a), exact(15, (64, 48)), "server a's pad");
    assert_eq!(frames_of(&log, b), exact(50, (96, 72)), "server b's pad");
    let mut c_expected = exact(20, (64, 48));
    c_expected.extend((20..50).map(|i| (i, true, (80, 60))));
    assert_eq!(frames_of(&log, c), c_expected, "server c's pad");

    // Upstream renegotiates at every switch between sizes; each pad only when its own
    // server changes size.
    let caps_events = |p| log.iter().filter(|s| **s == Seen::Caps(p)).count();
    assert_eq!((caps_events(a), caps_events(b), caps_events(c)), (1, 1, 2));

    // a's termination ends only a's pad, with b and c flowing on both sides of it.
    let a_eos = position(&log, &Seen::Eos(a));
    for p in [b, c] {
        let before = frames_of(&log[..a_eos], p).len();
        assert!(before > 0, "server {p} sent nothing before a ended");
        assert!(before < 50, "server {p} sent nothing after a ended");
        assert!(position(&log, &Seen::Eos(p)) > a_eos);
    }
    for p in &ports {
        let sink = pipeline
            .by_name(&format!("out_{p}"))
            .and_downcast::<gst_app::AppSink>()
            .expect("appsink per pad");
        assert!(sink.is_eos(), "pad of {p} not EOS");
    }
    let eos_count = log.iter().filter(|s| matches!(s, Seen::Eos(_))).count();
    assert_eq!(eos_count, 3, "one EOS per pad: {log:?}");

    check_messages(&log, &posted, b);
    let stats = demux.property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("frames").unwrap(), 115);
    assert_eq!(stats.get::<u64>("servers").unwrap(), 3);
    assert_eq!(stats.get::<u64>("dropped").unwrap(), 0);
    pipeline.set_state(gst::State::Null).expect("null");
}

/// b's messages reach the bus with b's port, and ride on b's buffers only.
fn check_messages(log: &[Seen], posted: &Posted, b: u16) {
    let on_bus: Vec<(u32, Value)> = posted
        .named("netgear-message")
        .iter()
        .map(|s| {
            let text = s.get::<String>("message").expect("message");
            let value: Value = serde_json::from_str(&text).expect("JSON message");
            (s.get::<u32>("port").expect("port"), value)
        })
        .collect();
    let expected: Vec<(u32, Value)> = (0..50)
        .map(|n| (u32::from(b), serde_json::json!({"server": "b", "n": n})))
        .collect();
    assert_eq!(on_bus, expected);
    for seen in log {
        if let Seen::Frame {
            port, idx, message, ..
        } = seen
        {
            let want = (*port == b).then(|| format!("{{\"server\":\"b\",\"n\":{idx}}}"));
            let got = message.as_ref().map(|m| m.replace(' ', ""));
            assert_eq!(got, want, "message on frame {idx} of {port}");
        }
    }
}

/// A mean BGR colour over a rectangle of a packed BGR frame.
fn mean_colour(frame: &[u8], width: usize, rect: (usize, usize, usize, usize)) -> [f64; 3] {
    let (x0, y0, w, h) = rect;
    let mut sum = [0f64; 3];
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            for (c, s) in sum.iter_mut().enumerate() {
                *s += f64::from(frame[(y * width + x) * 3 + c]);
            }
        }
    }
    sum.map(|s| s / (w * h) as f64)
}

/// vidgear's montage as one gst-launch line: three servers of two sizes, each placed by
/// compositor at its own position; the composed picture holds each server's colour there.
#[test]
fn montage_in_compositor() {
    let ports = free_ports(3);
    // (colour B,G,R, size, xpos, ypos)
    let layout = [
        ([0u8, 0, 255], (64usize, 48usize), 0usize, 0usize),
        ([0, 255, 0], (96, 72), 64, 0),
        ([255, 0, 0], (64, 48), 0, 72),
    ];
    let mut line = format!(
        "netgearsrc name=src multi-server=true pattern=req-rep address=127.0.0.1 ports={} \
         ! netgeardemux name=d compositor name=mix background=black",
        port_list(&ports)
    );
    for (i, (_, _, x, y)) in layout.iter().enumerate() {
        line.push_str(&format!(" sink_{i}::xpos={x} sink_{i}::ypos={y}"));
    }
    line.push_str(
        " ! videoconvert ! video/x-raw,format=BGR,width=160,height=120 ! appsink name=out",
    );
    for (i, port) in ports.iter().enumerate() {
        line.push_str(&format!(" d.src_{port} ! queue ! mix.sink_{i}"));
    }
    let receiver = Receiver::launch(&line);
    receiver.play();
    let at = start_at(4.0);
    let mut servers: Vec<Peer> = ports
        .iter()
        .zip(&layout)
        .map(|(port, (colour, (w, h), _, _))| {
            let flat = format!("{},{},{}", colour[0], colour[1], colour[2]);
            server(
                *port,
                &[
                    ("frames", "60".into()),
                    ("interval", "0.04".into()),
                    ("width", w.to_string()),
                    ("height", h.to_string()),
                    ("flat", flat),
                    ("start-at", at.clone()),
                ],
            )
        })
        .collect();
    let (frames, eos) = receiver.collect(Duration::from_secs(15));
    for s in &mut servers {
        s.report(REPORT_TIMEOUT);
    }
    assert!(eos, "the montage did not end after every server terminated");
    let close = |got: [f64; 3], want: [u8; 3]| {
        got.iter()
            .zip(want)
            .all(|(g, w)| (g - f64::from(w)).abs() <= 8.0)
    };
    let full = frames.iter().filter(|f| {
        let packed = f.packed();
        layout.iter().all(|(colour, (w, h), x, y)| {
            close(mean_colour(&packed, 160, (*x, *y, *w, *h)), *colour)
        }) && close(mean_colour(&packed, 160, (96, 72, 64, 48)), [0, 0, 0])
    });
    let count = full.count();
    assert!(
        count >= 10,
        "only {count} of {} composed frames show every server at its place",
        frames.len()
    );
}

/// Buffers without a server port (not from a multi-server source) are dropped and counted;
/// ones with a port still get their pad.
#[test]
fn buffers_without_a_port_are_dropped() {
    let pipeline = launch(
        "appsrc name=in format=time caps=video/x-raw,format=GRAY8,width=4,height=2,framerate=0/1 \
         ! netgeardemux name=d",
    );
    let demux = pipeline.by_name("d").expect("demux");
    let weak = pipeline.downgrade();
    demux.connect_pad_added(move |_, pad| {
        if let Some(pipeline) = weak.upgrade() {
            let sink = gst_app::AppSink::builder()
                .sync(false)
                .wait_on_eos(false)
                .build();
            pipeline.add(&sink).unwrap();
            sink.sync_state_with_parent().unwrap();
            pad.link(&sink.static_pad("sink").unwrap()).unwrap();
        }
    });
    let appsrc = pipeline
        .by_name("in")
        .and_downcast::<gst_app::AppSrc>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for i in 0..6u8 {
        let mut buffer = gst::Buffer::from_mut_slice(vec![i; 8]);
        if i % 2 == 0 {
            let info = gstnetgear::meta::NetGearInfo {
                message: None,
                port: Some(6000 + u16::from(i % 4)),
            };
            gstnetgear::meta::attach(buffer.get_mut().unwrap(), &info);
        }
        appsrc.push_buffer(buffer).unwrap();
    }
    appsrc.end_of_stream().unwrap();
    assert!(matches!(
        wait_end(&pipeline, Duration::from_secs(5)),
        Outcome::Eos
    ));
    let stats = demux.property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("dropped").unwrap(), 3);
    assert_eq!(stats.get::<u64>("frames").unwrap(), 3);
    let mut pads: Vec<String> = demux
        .src_pads()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    pads.sort();
    assert_eq!(pads, ["src_6000", "src_6002"]);
    pipeline.set_state(gst::State::Null).unwrap();
}

/// A server that terminates and comes back at another size gets a new stream on its own
/// pad (stream-start, its new caps), while the other server's pad is left alone.
#[test]
fn a_restarted_server_renegotiates_only_its_pad() {
    let ports = free_ports(2);
    let (a, b) = (ports[0], ports[1]);
    let (pipeline, _demux, log, _posted) = demux_pipeline(&ports);
    pipeline.set_state(gst::State::Playing).expect("playing");
    let at = start_at(4.0);
    let paced = |frames: &str| {
        vec![
            ("frames", frames.to_string()),
            ("interval", "0.04".to_string()),
            ("start-at", at.clone()),
        ]
    };
    let mut long = server(b, &paced("100"));
    let mut first = server(a, &paced("10"));
    first.report(REPORT_TIMEOUT);
    let mut again = server(
        a,
        &[
            ("frames", "10".into()),
            ("interval", "0.04".into()),
            ("width", "96".into()),
            ("height", "72".into()),
        ],
    );
    let end = wait_end(&pipeline, Duration::from_secs(20));
    assert!(matches!(end, Outcome::Eos), "pipeline did not end: {end:?}");
    again.report(REPORT_TIMEOUT);
    long.report(REPORT_TIMEOUT);
    let log = log.lock().unwrap().clone();
    let mut expected: Vec<_> = (0..10).map(|i| (i, true, (64, 48))).collect();
    expected.extend((0..10).map(|i| (i, true, (96, 72))));
    assert_eq!(frames_of(&log, a), expected, "server a's pad, both runs");
    let b_frames: Vec<_> = (0..100).map(|i| (i, true, (64, 48))).collect();
    assert_eq!(frames_of(&log, b), b_frames, "server b's pad");
    let count = |seen: Seen| log.iter().filter(|s| **s == seen).count();
    assert_eq!((count(Seen::Caps(a)), count(Seen::Caps(b))), (2, 1));
    assert_eq!((count(Seen::Eos(a)), count(Seen::Eos(b))), (2, 1));
    let first_eos = position(&log, &Seen::Eos(a));
    assert!(frames_of(&log[first_eos..], b).len() > 10, "b went on");
    pipeline.set_state(gst::State::Null).expect("null");
}

/// Events each output pad's peer received, as (port, event type).
type EventLog = Arc<Mutex<Vec<(u16, gst::EventType)>>>;

/// A demuxer driven directly from a test pad, each output drained into a test pad that
/// records the events it receives as (port, event type).
fn bare_demux() -> (gst::Element, gst::Pad, EventLog) {
    init();
    let demux = gst::ElementFactory::make("netgeardemux")
        .build()
        .expect("netgeardemux");
    let feed = gst::Pad::builder(gst::PadDirection::Src)
        .name("feed")
        .build();
    feed.link(&demux.static_pad("sink").unwrap()).unwrap();
    feed.set_active(true).unwrap();
    demux.set_state(gst::State::Playing).unwrap();
    let events = EventLog::default();
    let seen = events.clone();
    let keep: Arc<Mutex<Vec<gst::Pad>>> = Arc::default();
    demux.connect_pad_added(move |_, pad| {
        let port = port_of(pad);
        let seen = seen.clone();
        let sink = gst::Pad::builder(gst::PadDirection::Sink)
            .chain_function(|_, _, _| Ok(gst::FlowSuccess::Ok))
            .event_function(move |_, _, event| {
                seen.lock().unwrap().push((port, event.type_()));
                true
            })
            .build();
        sink.set_active(true).unwrap();
        pad.link(&sink).unwrap();
        // Keep the test pad alive as long as the link.
        keep.lock().unwrap().push(sink);
    });
    feed.push_event(gst::event::StreamStart::new("feed"));
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "GRAY8")
        .field("width", 4)
        .field("height", 2)
        .build();
    feed.push_event(gst::event::Caps::new(&caps));
    feed.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    (demux, feed, events)
}

fn push_from(feed: &gst::Pad, port: u16) {
    let mut buffer = gst::Buffer::from_mut_slice(vec![0u8; 8]);
    let info = gstnetgear::meta::NetGearInfo {
        message: None,
        port: Some(port),
    };
    gstnetgear::meta::attach(buffer.get_mut().unwrap(), &info);
    feed.push(buffer).expect("pushed");
}

/// Flushes reach every pad; a netgear-server-eos event ends one pad; EOS ends the rest.
#[test]
fn flushes_reach_every_pad_and_server_eos_only_its_own() {
    let (demux, feed, events) = bare_demux();
    push_from(&feed, 7001);
    push_from(&feed, 7002);
    feed.push_event(gst::event::FlushStart::new());
    feed.push_event(gst::event::FlushStop::new(false));
    // A flush clears the segment; upstream sends a new one, as a source does.
    feed.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    let server_eos = gst::Structure::builder("netgear-server-eos")
        .field("port", 7001u32)
        .build();
    feed.push_event(gst::event::CustomDownstream::new(server_eos));
    push_from(&feed, 7002);
    feed.push_event(gst::event::Eos::new());
    let got: Vec<(u16, gst::EventType)> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| !t.is_sticky() || *t == gst::EventType::Eos)
        .cloned()
        .collect();
    use gst::EventType::*;
    let mut sorted = got.clone();
    sorted.sort_by_key(|(p, _)| *p);
    assert_eq!(
        sorted,
        vec![
            (7001, FlushStart),
            (7001, FlushStop),
            (7001, Eos),
            (7002, FlushStart),
            (7002, FlushStop),
            (7002, Eos),
        ],
        "{got:?}"
    );
    let first_eos = got.iter().position(|e| *e == (7001, Eos)).unwrap();
    let last_eos = got.iter().position(|e| *e == (7002, Eos)).unwrap();
    assert!(first_eos < last_eos, "7001 ended first: {got:?}");
    demux.set_state(gst::State::Null).unwrap();
}

/// With no server ever heard from, EOS cannot end anything downstream: an error says so.
#[test]
fn eos_before_any_frame_is_an_error() {
    let (demux, feed, _events) = bare_demux();
    let bus = gst::Bus::new();
    demux.set_bus(Some(&bus));
    feed.push_event(gst::event::Eos::new());
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(2), &[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!()
    };
    let text = format!("{} {:?}", e.error(), e.debug());
    assert!(text.contains("before any server sent a frame"), "{text}");
    demux.set_state(gst::State::Null).unwrap();
}
