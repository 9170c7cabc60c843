// SPDX-License-Identifier: MPL-2.0
//! Typed arrays with the real vidgear NetGear (0.3.6): every dtype in 2-D and 3-D shapes
//! with 1 to 5 channels, byte for byte, in both directions, through a relay, and as
//! returned frames. Arrays no video format carries come out as `other/tensors` with
//! their dtype and shape in the caps; the cases come from tests/python/netgear_tensors.py.

use crate::common::*;
use gst::prelude::*;
use serde_json::Value;
use std::time::Duration;

/// One array: numpy's dtype name, shape and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Case {
    dtype: String,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Case {
    fn from_json(v: &Value) -> Case {
        let hex = v["hex"].as_str().expect("hex");
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
            .collect();
        Case {
            dtype: v["dtype"].as_str().expect("dtype").to_owned(),
            shape: v["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize)
                .collect(),
            bytes,
        }
    }

    /// The video format today's caps give it, or None: a tensor.
    fn video_format(&self) -> Option<&'static str> {
        let channels = self.shape.get(2).copied().unwrap_or(1);
        match (self.dtype.as_str(), channels) {
            ("uint8", 1) => Some("GRAY8"),
            ("uint8", 3) => Some("BGR"),
            ("uint8", 4) => Some("BGRA"),
            ("uint16", 1) => Some("GRAY16_LE"),
            _ => None,
        }
    }

    /// The documented tensor caps: dimensions innermost first, rank as sent.
    fn tensor_caps(&self) -> String {
        let dims: Vec<String> = self.shape.iter().rev().map(|d| d.to_string()).collect();
        format!(
            "other/tensors, format=(string)static, num_tensors=(int)1, types=(string){}, dimensions=(string){}, framerate=(fraction)0/1",
            self.dtype,
            dims.join(":")
        )
    }

    /// What a receiver sees after the array went through GStreamer video caps: a
    /// one-channel video frame is sent 2-D, as OpenCV's gray frames are.
    fn after_video(&self) -> Case {
        let mut case = self.clone();
        if self.video_format().is_some() && self.shape.get(2) == Some(&1) {
            case.shape.truncate(2);
        }
        case
    }
}

/// tests/python/netgear_tensors.py in `mode`, with `--key value` options.
fn tensors_script(mode: &str, options: &[(&str, String)]) -> Peer {
    Peer::script("netgear_tensors.py", &script_args(mode, options))
}

/// A vidgear receiver on `port` (pattern 1), once it is bound.
fn vidgear_receiver(port: u16, return_case: Option<usize>) -> Peer {
    let mut options = vec![("port", port.to_string()), ("seconds", "60".to_string())];
    if let Some(k) = return_case {
        options.push(("return-case", k.to_string()));
    }
    let receiver = tensors_script("recv", &options);
    receiver.wait_ready(Duration::from_secs(20));
    receiver
}

/// The frames a receiver reported, after the sender's termination.
fn received(receiver: &Peer) -> Vec<Case> {
    let report = receiver.json(Duration::from_secs(60));
    assert_eq!(report["terminated"], true, "receiver timed out");
    report["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(Case::from_json)
        .collect()
}

fn cases() -> Vec<Case> {
    let script = tensors_script("cases", &[]);
    let list = script.json(Duration::from_secs(30));
    list.as_array()
        .expect("list")
        .iter()
        .map(Case::from_json)
        .collect()
}

fn tensor_caps(case: &Case) -> gst::Caps {
    init();
    case.tensor_caps().parse().expect("caps")
}

/// `appsrc ! netgearsink`, playing, for arrays starting with `first`.
fn tensor_sender(first: &Case, props: &[(&str, &str)]) -> Sender {
    let sender = Sender::new(&tensor_caps(first), props);
    sender.play();
    sender
}

/// Pushes one array with its own caps (the sink renegotiates when they change).
fn push_case(sender: &Sender, case: &Case, idx: u64) {
    let buffer = frame_buffer(case.bytes.clone(), idx);
    let sample = gst::Sample::builder()
        .buffer(&buffer)
        .caps(&tensor_caps(case))
        .build();
    sender.appsrc.push_sample(&sample).expect("push");
}

fn assert_same(received: &[Case], expected: &[Case]) {
    assert_eq!(received.len(), expected.len(), "frame count");
    for (got, want) in received.iter().zip(expected) {
        assert_eq!(got, want, "{} {:?}", want.dtype, want.shape);
    }
}

/// Asserts a frame out of `netgearsrc` is the array: video caps and packed rows for
/// video layouts, the documented tensor caps and the exact bytes for the rest.
fn assert_frame(frame: &Frame, case: &Case) {
    let what = format!("{} {:?}", case.dtype, case.shape);
    match case.video_format() {
        Some(format) => {
            let s = frame.caps.structure(0).unwrap();
            assert_eq!(s.name(), "video/x-raw", "{what}: {}", frame.caps);
            assert_eq!(s.get::<&str>("format").unwrap(), format, "{what}");
            assert_eq!(
                (
                    s.get::<i32>("width").unwrap(),
                    s.get::<i32>("height").unwrap()
                ),
                (5, 3)
            );
            assert_eq!(frame.packed(), case.bytes, "{what}");
        }
        None => {
            assert_eq!(frame.caps.to_string(), case.tensor_caps(), "{what}");
            assert_eq!(frame.data, case.bytes, "{what}");
        }
    }
}

/// vidgear sends every dtype and shape raw to `netgearsrc ! appsink`: each arrives with
/// the documented caps, byte for byte; a big-endian array is dropped and counted.
#[test]
fn vidgear_sends_every_dtype_to_netgearsrc() {
    let expected = cases();
    assert_eq!(expected.len(), 66);
    let port = free_port().to_string();
    let receiver = Receiver::new(&[("port", &port), ("address", "127.0.0.1"), ("pattern", "1")]);
    receiver.play();
    let sender = tensors_script(
        "send",
        &[("port", port.clone()), ("big-endian-first", String::new())],
    );
    let (frames, eos) = receiver.collect(Duration::from_secs(15));
    assert_eq!(sender.json(Duration::from_secs(30))["sent"], 66);
    assert!(eos, "no EOS after the sender's termination");
    assert_eq!(frames.len(), expected.len(), "frames lost");
    for (frame, case) in frames.iter().zip(&expected) {
        assert_frame(frame, case);
    }
    let stats = receiver.stats();
    assert_eq!(stats.get::<u64>("malformed").unwrap(), 1, "{stats}");
    assert_eq!(stats.get::<u64>("frames").unwrap(), 66, "{stats}");
}

/// `appsrc caps=other/tensors,… ! netgearsink jpeg-compression=false` sends every case
/// (uint8 ones too) to a vidgear receiver: the same dtype, shape and bytes come out.
#[test]
fn netgearsink_sends_every_dtype_to_vidgear() {
    let expected = cases();
    let port = free_port();
    let receiver = vidgear_receiver(port, None);
    let port = port.to_string();
    let props = [
        ("port", port.as_str()),
        ("pattern", "1"),
        ("jpeg-compression", "false"),
    ];
    let sender = tensor_sender(&expected[0], &props);
    for (i, case) in expected.iter().enumerate() {
        push_case(&sender, case, i as u64);
    }
    sender.finish_expect_eos(Duration::from_secs(30));
    assert_same(&received(&receiver), &expected);
    assert!(sender.posted.warning_debugs().is_empty());
}

/// JPEG does not apply to tensors: with jpeg-compression on, the sink says so once and
/// sends them raw.
#[test]
fn tensors_go_raw_with_a_warning_when_jpeg_is_on() {
    let all = cases();
    let float32: Vec<Case> = all
        .iter()
        .filter(|c| c.dtype == "float32" && c.shape == [3, 5, 2])
        .cloned()
        .collect();
    let expected: Vec<Case> = [&float32[..], &float32[..], &float32[..]].concat();
    let port = free_port();
    let receiver = vidgear_receiver(port, None);
    let port = port.to_string();
    let sender = tensor_sender(&expected[0], &[("port", &port), ("pattern", "1")]);
    for (i, case) in expected.iter().enumerate() {
        push_case(&sender, case, i as u64);
    }
    sender.finish_expect_eos(Duration::from_secs(30));
    assert_same(&received(&receiver), &expected);
    let warnings = sender.posted.warning_debugs();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let text = "\nother/tensors (float32) cannot be JPEG-compressed: sending raw frames";
    assert!(warnings[0].ends_with(text), "{warnings:?}");
}

/// vidgear → `netgearsrc ! netgearsink` → vidgear: every case comes out as it went in
/// (one-channel video arrays as 2-D, as OpenCV's gray frames travel).
#[test]
fn relay_carries_every_dtype_between_vidgears() {
    let expected: Vec<Case> = cases().iter().map(Case::after_video).collect();
    let (in_port, out_port) = (free_port(), free_port());
    let receiver = vidgear_receiver(out_port, None);
    let relay = launch(&format!(
        "netgearsrc address=127.0.0.1 port={in_port} pattern=1 ! \
         netgearsink port={out_port} pattern=1 jpeg-compression=false sync=false"
    ));
    relay.set_state(gst::State::Playing).expect("playing");
    let sender = tensors_script("send", &[("port", in_port.to_string())]);
    assert_eq!(sender.json(Duration::from_secs(60))["sent"], 66);
    match wait_end(&relay, Duration::from_secs(30)) {
        Outcome::Eos => {}
        other => panic!("relay ended with {other:?}"),
    }
    assert_same(&received(&receiver), &expected);
    relay.set_state(gst::State::Null).unwrap();
}

/// A vidgear receiver returning a float32 array: the sink's netgear-return-frame sample
/// has the tensor caps and the exact bytes.
#[test]
fn returned_arrays_come_back_as_tensors() {
    let all = cases();
    // float32, [3, 5, 2]: the 44th case (dtype 9 of 11, shape 2 of 6).
    let k = all
        .iter()
        .position(|c| c.dtype == "float32" && c.shape == [3, 5, 2])
        .unwrap();
    let returned = all[k].clone();
    let port = free_port();
    let receiver = vidgear_receiver(port, Some(k));
    let port = port.to_string();
    let props = [
        ("port", port.as_str()),
        ("pattern", "1"),
        ("bidirectional", "true"),
        ("jpeg-compression", "false"),
    ];
    let sent: Vec<Case> = all.iter().filter(|c| c.dtype == "int16").cloned().collect();
    let sender = tensor_sender(&sent[0], &props);
    for (i, case) in sent.iter().enumerate() {
        push_case(&sender, case, i as u64);
        // vidgear answers from its own thread with whatever its main loop last passed to
        // recv(return_data=…): unpaced, a loaded machine answers every frame before that.
        std::thread::sleep(Duration::from_millis(40));
    }
    sender.finish_expect_eos(Duration::from_secs(30));
    assert_same(&received(&receiver), &sent);
    let samples: Vec<gst::Sample> = sender
        .posted
        .named("netgear-return-frame")
        .iter()
        .map(|s| s.get::<gst::Sample>("sample").unwrap())
        .collect();
    // vidgear's receiver answers the first frame before its first recv() names the data.
    assert!(samples.len() >= sent.len() - 1, "{} returns", samples.len());
    for sample in samples {
        assert_eq!(sample.caps().unwrap().to_string(), returned.tensor_caps());
        let data = sample.buffer().unwrap().map_readable().unwrap().to_vec();
        assert_eq!(data, returned.bytes);
    }
    let stats = sender.sink.property::<gst::Structure>("stats");
    assert!(stats.get::<u64>("returns").unwrap() >= 5, "{stats}");
}

/// A video-only pipeline (`netgearsrc ! appsink caps=video/x-raw`) drops the tensors it
/// cannot take, counts and warns, and keeps receiving the video frames in between.
#[test]
fn video_only_downstream_drops_tensors_and_goes_on() {
    let expected: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.video_format().is_some())
        .collect();
    assert_eq!(expected.len(), 6);
    let port = free_port().to_string();
    let receiver = Receiver::with_caps(
        &[("port", &port), ("address", "127.0.0.1"), ("pattern", "1")],
        Some(&gst::Caps::builder("video/x-raw").build()),
    );
    receiver.play();
    let sender = tensors_script("send", &[("port", port.clone())]);
    let (frames, eos) = receiver.collect(Duration::from_secs(15));
    assert_eq!(sender.json(Duration::from_secs(30))["sent"], 66);
    assert!(eos, "no EOS after the sender's termination");
    assert_eq!(frames.len(), expected.len());
    for (frame, case) in frames.iter().zip(&expected) {
        assert_frame(frame, case);
    }
    let stats = receiver.stats();
    assert_eq!(stats.get::<u64>("dropped").unwrap(), 60, "{stats}");
    assert_eq!(stats.get::<u64>("malformed").unwrap(), 0, "{stats}");
    let warnings: Vec<String> = receiver
        .pipeline
        .bus()
        .unwrap()
        .iter_filtered(&[gst::MessageType::Warning])
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => w.debug().map(|d| d.to_string()),
            _ => None,
        })
        .collect();
    assert!(
        warnings
            .first()
            .is_some_and(|w| w.contains("downstream does not accept other/tensors")),
        "{warnings:?}"
    );
}
