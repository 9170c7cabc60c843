// SPDX-License-Identifier: MPL-2.0
//! Interoperability with the real vidgear NetGear (0.3.6, from the venv scripts/setup
//! makes): vidgear sends to `netgearsrc`, `netgearsink` sends to vidgear, in patterns
//! 0, 1 and 2, over tcp and ipc, with BGR, gray and odd widths.

use crate::common::*;
use gst_video::VideoFormat;
use std::time::Duration;

#[derive(Clone, Copy)]
struct Shape {
    width: usize,
    height: usize,
    channels: usize,
    wide: bool,
}

const BGR_ODD: Shape = Shape {
    width: 641,
    height: 23,
    channels: 3,
    wide: false,
};
const GRAY: Shape = Shape {
    width: 320,
    height: 40,
    channels: 1,
    wide: false,
};
const BGRA: Shape = Shape {
    width: 97,
    height: 15,
    channels: 4,
    wide: false,
};
const GRAY16: Shape = Shape {
    width: 51,
    height: 19,
    channels: 1,
    wide: true,
};

fn shape_args(shape: Shape, frames: usize) -> Vec<(&'static str, String)> {
    vec![
        ("width", shape.width.to_string()),
        ("height", shape.height.to_string()),
        ("channels", shape.channels.to_string()),
        ("dtype", if shape.wide { "uint16" } else { "uint8" }.into()),
        ("frames", frames.to_string()),
    ]
}

fn format_of(shape: Shape) -> VideoFormat {
    match (shape.channels, shape.wide) {
        (_, true) => VideoFormat::Gray16Le,
        (1, _) => VideoFormat::Gray8,
        (4, _) => VideoFormat::Bgra,
        _ => VideoFormat::Bgr,
    }
}

/// vidgear `NetGear().send()` → `netgearsrc`: every frame byte for byte, then EOS.
fn vidgear_to_src(pattern: u8, ipc: bool, shape: Shape, frames: usize) {
    let port = free_port();
    let port_text = port.to_string();
    let prefix = ipc_prefix(&port_text);
    let address = if ipc { prefix.as_str() } else { "127.0.0.1" };
    let pattern_text = pattern.to_string();
    let mut props = vec![
        ("port", port_text.as_str()),
        ("address", address),
        ("pattern", pattern_text.as_str()),
        ("protocol", if ipc { "ipc" } else { "tcp" }),
    ];
    if pattern == 2 {
        // vidgear's PUB sender often loses its termination (LINGER 0).
        props.push(("timeout", "2500"));
    }
    let receiver = Receiver::new(&props);
    receiver.play();

    let mut args = shape_args(shape, frames);
    if ipc {
        args.push(("protocol", "ipc".into()));
        args.push(("address", prefix.clone()));
    }
    if pattern == 2 {
        args.push(("interval", "0.01".into()));
    }
    let mut peer = Peer::start(&peer_args("send", port, pattern, &args));
    let (received, eos) = receiver.collect(Duration::from_secs(15));
    let report = peer.report(Duration::from_secs(15));
    assert_eq!(report["sent"], frames);
    assert!(eos, "no EOS at the end of vidgear's stream");
    if pattern == 2 {
        assert!(
            received.len() >= frames / 2,
            "only {} of {frames} frames arrived",
            received.len()
        );
    } else {
        assert_eq!(received.len(), frames, "every frame vidgear sent arrives");
    }
    for frame in &received {
        assert_eq!(frame.format(), format_of(shape));
    }
    let dims = (shape.width, shape.height, shape.channels);
    let indices = test_frame_indices(&received, dims, shape.wide, "from vidgear");
    if pattern < 2 {
        let expected: Vec<usize> = (0..received.len()).collect();
        assert_eq!(indices, expected, "frames arrive in order");
    }
    assert_eq!(receiver.stats().get::<u64>("malformed").unwrap(), 0);
}

/// `netgearsink` → vidgear `NetGear(receive_mode=True).recv()`: arrays compared in
/// Python (shape, dtype, bytes), and vidgear ends on our termination message.
fn send_to_vidgear(pattern: u8, ipc: bool, shape: Shape, input: VideoFormat, frames: usize) {
    let port = free_port();
    let port_text = port.to_string();
    let prefix = ipc_prefix(&port_text);
    let mut args = vec![("seconds", "20".to_string())];
    if ipc {
        args.push(("protocol", "ipc".into()));
        args.push(("address", prefix.clone()));
    }
    let mut peer = Peer::start(&peer_args("recv", port, pattern, &args));
    peer.wait_ready(Duration::from_secs(20));

    let address = if ipc { prefix.as_str() } else { "127.0.0.1" };
    let pattern_text = pattern.to_string();
    let sender = Sender::raw(
        input,
        shape.width as u32,
        shape.height as u32,
        &[
            ("port", &port_text),
            ("address", address),
            ("pattern", &pattern_text),
            ("protocol", if ipc { "ipc" } else { "tcp" }),
            ("jpeg-compression", "false"),
        ],
    );
    let data: Vec<Vec<u8>> = (0..frames)
        .map(|idx| {
            let bgr = test_frame(idx, shape.width, shape.height, shape.channels, shape.wide);
            if input == VideoFormat::Rgb {
                bgr.chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect()
            } else {
                bgr
            }
        })
        .collect();
    // Paced like a live camera. PUB/SUB also needs a moment for the subscription to
    // reach our publisher; vidgear's receiver drops frames still queued in its
    // 96-frame deque when the termination arrives, so unpaced frames could vanish
    // on its side after we got their acknowledgement.
    let pause = |idx| match (pattern, idx) {
        (2, 0) => 500,
        (2, _) => 10,
        _ => 5,
    };
    let report = sink_to_vidgear(&mut peer, &sender, &data, pause, Duration::from_secs(20));
    let received: Vec<usize> = report["received"]
        .as_array()
        .expect("received")
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let dims = if shape.channels == 1 {
        format!("[{}, {}]", shape.height, shape.width)
    } else {
        format!("[{}, {}, {}]", shape.height, shape.width, shape.channels)
    };
    let dtype = if shape.wide { "uint16" } else { "uint8" };
    assert_eq!(
        report["shapes"],
        serde_json::json!([format!("({dims}, '{dtype}')")])
    );
    if pattern == 2 {
        assert!(
            received.len() >= frames / 2,
            "only {received:?} of {frames} arrived"
        );
        assert!(
            received.windows(2).all(|w| w[0] < w[1]),
            "out of order: {received:?}"
        );
    } else {
        assert_eq!(
            received,
            (0..frames).collect::<Vec<_>>(),
            "every frame, in order"
        );
    }
    assert_eq!(sender.stats().get::<u64>("frames").unwrap(), frames as u64);
}

#[test]
fn vidgear_sends_pair_bgr_odd_width() {
    vidgear_to_src(0, false, BGR_ODD, 30);
}

#[test]
fn vidgear_sends_reqrep_gray() {
    vidgear_to_src(1, false, GRAY, 30);
}

#[test]
fn vidgear_sends_pubsub_bgr_odd_width() {
    vidgear_to_src(2, false, BGR_ODD, 40);
}

#[test]
fn vidgear_sends_ipc_pair_bgra() {
    vidgear_to_src(0, true, BGRA, 20);
}

#[test]
fn vidgear_sends_ipc_reqrep_gray16() {
    vidgear_to_src(1, true, GRAY16, 20);
}

#[test]
fn sink_sends_to_vidgear_pair_bgr_odd_width() {
    send_to_vidgear(0, false, BGR_ODD, VideoFormat::Bgr, 30);
}

#[test]
fn sink_sends_to_vidgear_reqrep_gray() {
    send_to_vidgear(1, false, GRAY, VideoFormat::Gray8, 30);
}

#[test]
fn sink_sends_to_vidgear_pubsub_bgr() {
    send_to_vidgear(2, false, BGR_ODD, VideoFormat::Bgr, 40);
}

#[test]
fn sink_sends_to_vidgear_ipc_reqrep_rgb_as_bgr() {
    send_to_vidgear(
        1,
        true,
        Shape {
            width: 67,
            height: 11,
            channels: 3,
            wide: false,
        },
        VideoFormat::Rgb,
        20,
    );
}

#[test]
fn sink_sends_to_vidgear_ipc_pair_gray16() {
    send_to_vidgear(0, true, GRAY16, VideoFormat::Gray16Le, 20);
}

/// Python's json.loads reads our headers with the keys and values vidgear expects.
#[test]
fn python_reads_our_headers() {
    use netgear_protocol::*;
    let raw = PayloadKind::Raw(RawLayout::new(Dtype::U8, 2, 3, 3));
    let jpeg = PayloadKind::Jpeg(Compression {
        dct: true,
        ups: false,
        colorspace: "BGR".into(),
    });
    let headers = [
        encode_frame_header(None, &raw, &JsonText::string("h\u{e9}llo"), 0),
        encode_frame_header(
            Some(5602),
            &jpeg,
            &JsonText::parse(r#"{"k": [1, 2.5, null]}"#).unwrap(),
            1,
        ),
        encode_termination(Some(5602)),
    ];
    let script = r#"
import json, sys
lines = sys.stdin.read().split("\n")
a, b, c = (json.loads(l) for l in lines[:3])
assert list(a) == ["terminate_flag", "compression", "message", "pattern", "dtype", "shape"], a
assert a["message"] == "h\u00e9llo" and a["shape"] == [2, 3, 3] and a["dtype"] == "uint8" and a["compression"] is False
assert list(b)[0] == "port" and b["port"] == "5602" and b["compression"] == {"dct": True, "ups": False, "colorspace": "BGR"}
assert b["message"] == {"k": [1, 2.5, None]} and b["dtype"] == "" and b["shape"] == "" and b["pattern"] == "1"
assert c == {"terminate_flag": True, "port": "5602"}
print("OK")
"#;
    let mut input = Vec::new();
    for h in &headers {
        input.extend_from_slice(h);
        input.push(b'\n');
    }
    use std::io::Write;
    let mut child = std::process::Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python rejected our headers");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
}

/// A vidgear sender killed mid-stream, then a new one: the source takes it without a
/// restart (it rebinds after 3 × request-timeout of silence).
#[test]
fn source_takes_a_new_vidgear_sender_after_one_dies() {
    for pattern in [0u8, 1] {
        let port = free_port();
        let port_text = port.to_string();
        let pattern_text = pattern.to_string();
        let receiver = Receiver::new(&[
            ("port", port_text.as_str()),
            ("address", "127.0.0.1"),
            ("pattern", pattern_text.as_str()),
            ("request-timeout", "300"),
        ]);
        receiver.play();
        let mut args = shape_args(GRAY, 1000);
        args.push(("interval", "0.02".into()));
        let mut first = Peer::start(&peer_args("send", port, pattern, &args));
        assert!(
            receiver.next_frame(Duration::from_secs(15)).is_some(),
            "no frame from the first sender"
        );
        first.kill();
        while receiver.next_frame(Duration::from_millis(100)).is_some() {}
        let mut second = Peer::start(&peer_args("send", port, pattern, &shape_args(GRAY, 5)));
        let frame = receiver
            .next_frame(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("pattern {pattern}: nothing from the second sender"));
        let packed = frame.packed();
        assert_eq!(
            packed,
            test_frame(frame_index(&packed), GRAY.width, GRAY.height, 1, false)
        );
        let _ = second.report(Duration::from_secs(15));
        let (_, eos) = receiver.collect(Duration::from_secs(5));
        assert!(
            eos,
            "pattern {pattern}: no EOS from the second sender's termination"
        );
    }
}
