// SPDX-License-Identifier: MPL-2.0
//! Our sink into our source over loopback: every pattern, tcp and ipc, the raw formats,
//! odd widths, and EOS from the termination message.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use std::time::Duration;

struct Case {
    pattern: &'static str,
    ipc: bool,
    format: VideoFormat,
    width: u32,
    height: u32,
    frames: usize,
}

/// What arrives: wire format, channels and sample width for an input format.
fn expected_output(format: VideoFormat) -> (VideoFormat, usize, bool) {
    match format {
        VideoFormat::Gray8 => (VideoFormat::Gray8, 1, false),
        VideoFormat::Gray16Le => (VideoFormat::Gray16Le, 1, true),
        VideoFormat::Bgra | VideoFormat::Rgba | VideoFormat::Argb | VideoFormat::Abgr => {
            (VideoFormat::Bgra, 4, false)
        }
        _ => (VideoFormat::Bgr, 3, false),
    }
}

fn run(case: Case) {
    let pubsub = matches!(case.pattern, "pub-sub" | "2");
    let port = free_port().to_string();
    let address = if case.ipc {
        ipc_prefix(&port)
    } else {
        "127.0.0.1".into()
    };
    let protocol = if case.ipc { "ipc" } else { "tcp" };
    let props = [
        ("port", port.as_str()),
        ("pattern", case.pattern),
        ("protocol", protocol),
        ("request-timeout", "2000"),
    ];
    let mut src_props = props.to_vec();
    src_props.push((
        "address",
        if case.ipc {
            address.as_str()
        } else {
            "127.0.0.1"
        },
    ));
    if pubsub {
        src_props.push(("timeout", "3000"));
    }
    let receiver = Receiver::new(&src_props);
    receiver.play();

    let mut sink_props = props.to_vec();
    sink_props.push(("address", address.as_str()));
    sink_props.push(("jpeg-compression", "false"));
    let sender = Sender::raw(case.format, case.width, case.height, &sink_props);
    sender.play();
    let (out_format, channels, wide) = expected_output(case.format);
    let (w, h) = (case.width as usize, case.height as usize);
    for idx in 0..case.frames {
        if pubsub {
            // PUB/SUB keeps one frame in flight; pace it so most arrive.
            std::thread::sleep(Duration::from_millis(if idx == 0 { 300 } else { 5 }));
        }
        sender
            .push_packed(&input_frame(case.format, idx, w, h), idx as u64)
            .expect("push");
    }
    sender.finish_expect_eos(Duration::from_secs(15));

    let (frames, eos) = receiver.collect(Duration::from_secs(5));
    assert!(eos, "no EOS after the termination message");
    if pubsub {
        assert!(!frames.is_empty(), "no frame arrived");
    } else {
        assert_eq!(
            frames.len(),
            case.frames,
            "every acknowledged frame arrives"
        );
    }
    for frame in &frames {
        assert_eq!(frame.format(), out_format);
        assert_eq!(
            (frame.info().width(), frame.info().height()),
            (case.width, case.height)
        );
    }
    let what = format!("{:?} {w}x{h}", case.format);
    test_frame_indices(&frames, (w, h, channels), wide, &what);
    let stats = receiver.stats();
    assert_eq!(stats.get::<u64>("frames").unwrap(), frames.len() as u64);
    assert_eq!(stats.get::<u64>("malformed").unwrap(), 0);
    let sent = sender.stats();
    assert_eq!(sent.get::<u64>("frames").unwrap(), case.frames as u64);
    assert_eq!(sent.get::<u64>("terminations").unwrap(), 1);
}

/// The input buffer for a test frame: OpenCV's BGR frame reordered to `format`.
fn input_frame(format: VideoFormat, idx: usize, w: usize, h: usize) -> Vec<u8> {
    match format {
        VideoFormat::Gray8 => test_frame(idx, w, h, 1, false),
        VideoFormat::Gray16Le => test_frame(idx, w, h, 1, true),
        VideoFormat::Bgra => test_frame(idx, w, h, 4, false),
        VideoFormat::Bgr => test_frame(idx, w, h, 3, false),
        VideoFormat::Rgb => test_frame(idx, w, h, 3, false)
            .chunks(3)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect(),
        VideoFormat::Xrgb => test_frame(idx, w, h, 3, false)
            .chunks(3)
            .flat_map(|p| [0xAA, p[2], p[1], p[0]])
            .collect(),
        VideoFormat::Rgba => test_frame(idx, w, h, 4, false)
            .chunks(4)
            .flat_map(|p| [p[2], p[1], p[0], p[3]])
            .collect(),
        other => panic!("no input for {other:?}"),
    }
}

#[test]
fn pair_tcp_bgr_odd_width() {
    run(Case {
        pattern: "pair",
        ipc: false,
        format: VideoFormat::Bgr,
        width: 641,
        height: 37,
        frames: 30,
    });
}

#[test]
fn pair_ipc_gray8_odd_width() {
    run(Case {
        pattern: "pair",
        ipc: true,
        format: VideoFormat::Gray8,
        width: 323,
        height: 41,
        frames: 20,
    });
}

#[test]
fn reqrep_tcp_bgra() {
    run(Case {
        pattern: "req-rep",
        ipc: false,
        format: VideoFormat::Bgra,
        width: 160,
        height: 90,
        frames: 25,
    });
}

#[test]
fn reqrep_ipc_bgr() {
    run(Case {
        pattern: "1",
        ipc: true,
        format: VideoFormat::Bgr,
        width: 321,
        height: 17,
        frames: 20,
    });
}

#[test]
fn reqrep_tcp_gray16() {
    run(Case {
        pattern: "req-rep",
        ipc: false,
        format: VideoFormat::Gray16Le,
        width: 99,
        height: 31,
        frames: 15,
    });
}

#[test]
fn pubsub_tcp_bgr() {
    run(Case {
        pattern: "pub-sub",
        ipc: false,
        format: VideoFormat::Bgr,
        width: 641,
        height: 21,
        frames: 30,
    });
}

#[test]
fn pubsub_ipc_gray8() {
    run(Case {
        pattern: "2",
        ipc: true,
        format: VideoFormat::Gray8,
        width: 77,
        height: 13,
        frames: 20,
    });
}

#[test]
fn rgb_inputs_arrive_as_opencv_bgr() {
    run(Case {
        pattern: "pair",
        ipc: false,
        format: VideoFormat::Rgb,
        width: 65,
        height: 9,
        frames: 5,
    });
    run(Case {
        pattern: "pair",
        ipc: false,
        format: VideoFormat::Xrgb,
        width: 33,
        height: 7,
        frames: 5,
    });
    run(Case {
        pattern: "pair",
        ipc: false,
        format: VideoFormat::Rgba,
        width: 31,
        height: 5,
        frames: 5,
    });
}

#[test]
fn caps_follow_the_stream_and_timestamps_are_running_time() {
    let port = free_port().to_string();
    let receiver = Receiver::new(&[("port", &port), ("address", "127.0.0.1")]);
    receiver.play();
    let mut sender = Sender::raw(
        VideoFormat::Bgr,
        64,
        48,
        &[("port", &port), ("jpeg-compression", "false")],
    );
    sender.play();
    sender
        .push_packed(&test_frame(1, 64, 48, 3, false), 0)
        .unwrap();
    let a = receiver
        .next_frame(Duration::from_secs(5))
        .expect("first frame");
    // The same sender switches size and format mid-stream: the source renegotiates.
    let gray = video_info(VideoFormat::Gray8, 33, 20);
    sender.appsrc.set_caps(Some(&gray.to_caps().unwrap()));
    sender.info = Some(gray);
    sender
        .push_packed(&test_frame(2, 33, 20, 1, false), 1)
        .unwrap();
    let b = receiver
        .next_frame(Duration::from_secs(5))
        .expect("second frame");
    assert_eq!((a.format(), a.info().width()), (VideoFormat::Bgr, 64));
    assert_eq!(a.packed(), test_frame(1, 64, 48, 3, false));
    assert_eq!(
        (b.format(), b.info().width(), b.info().height()),
        (VideoFormat::Gray8, 33, 20)
    );
    assert_eq!(b.packed(), test_frame(2, 33, 20, 1, false));
    let (ta, tb) = (a.pts.expect("pts"), b.pts.expect("pts"));
    assert!(tb > ta, "timestamps grow with arrival: {ta} then {tb}");
}

#[test]
fn stopping_a_sender_without_eos_still_terminates_the_receiver() {
    // vidgear's close() sends the termination too; a receiver must not wait forever.
    let port = free_port().to_string();
    let receiver = Receiver::new(&[
        ("port", &port),
        ("address", "127.0.0.1"),
        ("pattern", "req-rep"),
    ]);
    receiver.play();
    let sender = Sender::raw(
        VideoFormat::Gray8,
        8,
        8,
        &[
            ("port", &port),
            ("jpeg-compression", "false"),
            ("pattern", "req-rep"),
        ],
    );
    sender.play();
    sender
        .push_packed(&test_frame(0, 8, 8, 1, false), 0)
        .unwrap();
    assert!(receiver.next_frame(Duration::from_secs(5)).is_some());
    sender.stop();
    let (frames, eos) = receiver.collect(Duration::from_secs(3));
    assert!(frames.is_empty());
    assert!(eos, "receiver did not end after the sender stopped");
}

/// `netgearsrc ! videoflip ! netgearsink` relays each frame's message untouched: the
/// NetGearMeta survives a transform and the relaying sink sends it instead of its property.
#[test]
fn messages_are_relayed_through_a_pipeline() {
    init();
    let (first, second) = (free_port(), free_port());
    let receiver = Receiver::new(&[
        ("port", &second.to_string()),
        ("address", "127.0.0.1"),
        ("bidirectional", "true"),
    ]);
    receiver.play();
    let relay = launch(&format!(
        "netgearsrc port={first} address=127.0.0.1 bidirectional=true ! videoflip method=horizontal-flip \
         ! netgearsink port={second} bidirectional=true jpeg-compression=false message=\"not this one\""
    ));
    relay.set_state(gst::State::Playing).unwrap();
    let sender = Sender::raw(
        VideoFormat::Bgr,
        32,
        8,
        &[
            ("port", &first.to_string()),
            ("bidirectional", "true"),
            ("jpeg-compression", "false"),
        ],
    );
    sender.play();
    let messages = [r#"{"n": 1, "s": "ü"}"#, "[1, 2.5]", "\"text\""];
    for (i, m) in messages.iter().enumerate() {
        sender.sink.set_property("message", *m);
        sender
            .push_packed(&test_frame(i, 32, 8, 3, false), i as u64)
            .unwrap();
        // The property is read when the frame is sent.
        assert!(receiver
            .next_frame(Duration::from_secs(5))
            .is_some_and(|f| {
                let got: serde_json::Value =
                    serde_json::from_str(f.meta.unwrap().message.unwrap().as_str()).unwrap();
                got == serde_json::from_str::<serde_json::Value>(m).unwrap()
            }));
    }
    sender.finish();
    let _ = wait_end(&sender.pipeline, Duration::from_secs(5));
    let _ = relay.set_state(gst::State::Null);
}
