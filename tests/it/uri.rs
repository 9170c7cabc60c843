// SPDX-License-Identifier: MPL-2.0
//! The `netgear://` URI handler: `playbin` and `uridecodebin` play a real vidgear sender by
//! URI, a sink made from a URI sends to a real vidgear receiver, the `uri` property reads
//! back what the element will use, and a bad URI fails at start naming the bad part, in
//! gst-launch-1.0 and playbin too.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use std::time::Duration;

const W: usize = 64;
const H: usize = 48;
const FRAMES: usize = 12;

/// A vidgear sender of `FRAMES` 64x48 BGR frames to `port` (smooth ones with JPEG).
fn vidgear_sender(port: u16, jpeg: bool) -> Peer {
    let mut extra = vec![
        ("frames", FRAMES.to_string()),
        ("width", W.to_string()),
        ("height", H.to_string()),
        ("address", "127.0.0.1".to_string()),
    ];
    if jpeg {
        extra.push(("jpeg", String::new()));
        extra.push(("smooth", String::new()));
    }
    Peer::start(&peer_args("send", port, 0, &extra))
}

/// An appsink that takes BGR, so `playbin` converts nothing for raw BGR frames.
fn bgr_appsink() -> gst_app::AppSink {
    let caps = gst_video::VideoCapsBuilder::new()
        .format(VideoFormat::Bgr)
        .build();
    gst_app::AppSink::builder().caps(&caps).sync(false).build()
}

/// Every frame of a vidgear sender arrived in order: exact bytes raw, PSNR with JPEG.
fn assert_frames(frames: &[Frame], eos: bool, jpeg: bool) {
    assert_eq!(frames.len(), FRAMES, "frames received");
    assert!(eos, "the sender's termination ended the stream");
    for (idx, frame) in frames.iter().enumerate() {
        assert_eq!(frame.format(), VideoFormat::Bgr);
        let packed = frame.packed();
        if jpeg {
            let p = psnr(&packed, &smooth_frame(idx, W, H, 3));
            assert!(p > 30.0, "frame {idx}: PSNR {p:.1} dB");
        } else {
            assert_eq!(packed, test_frame(idx, W, H, 3, false), "frame {idx}");
        }
    }
}

fn playbin_plays_vidgear(jpeg: bool) {
    init();
    let port = free_port();
    let playbin = gst::ElementFactory::make("playbin")
        .property("uri", format!("netgear://127.0.0.1:{port}"))
        .build()
        .expect("playbin");
    let appsink = bgr_appsink();
    playbin.set_property("video-sink", &appsink);
    playbin.set_property_from_str("flags", "video");
    let pipeline = playbin.downcast::<gst::Pipeline>().expect("a pipeline");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let mut peer = vidgear_sender(port, jpeg);
    let (frames, eos) = collect_frames(&appsink, Duration::from_secs(10));
    let _ = peer.report(Duration::from_secs(20));
    let source = pipeline
        .property::<Option<gst::Element>>("source")
        .expect("playbin made a source");
    assert_eq!(
        source.factory().expect("factory").name(),
        "netgearsrc",
        "playbin picked netgearsrc for netgear://"
    );
    pipeline.set_state(gst::State::Null).expect("null");
    assert_frames(&frames, eos, jpeg);
}

#[test]
fn playbin_plays_a_vidgear_jpeg_sender() {
    playbin_plays_vidgear(true);
}

#[test]
fn playbin_plays_a_vidgear_raw_sender() {
    playbin_plays_vidgear(false);
}

#[test]
fn uridecodebin_decodes_a_vidgear_sender() {
    init();
    let port = free_port();
    let description = format!(
        "uridecodebin uri=netgear://127.0.0.1:{port} ! videoconvert ! \
         video/x-raw,format=BGR ! appsink name=out sync=false"
    );
    let pipeline = launch(&description);
    let appsink = pipeline
        .by_name("out")
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("an appsink");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let mut peer = vidgear_sender(port, true);
    let (frames, eos) = collect_frames(&appsink, Duration::from_secs(10));
    let _ = peer.report(Duration::from_secs(20));
    pipeline.set_state(gst::State::Null).expect("null");
    assert_frames(&frames, eos, true);
}

/// A sink made from `netgear://127.0.0.1:P?pattern=req-rep&jpeg-compression=false`
/// sends to a vidgear receiver in pattern 1, every frame byte for byte.
#[test]
fn sink_from_uri_sends_to_vidgear_req_rep() {
    init();
    let port = free_port();
    let mut peer = Peer::start(&peer_args("recv", port, 1, &[]));
    peer.wait_ready(Duration::from_secs(20));
    let uri = format!("netgear://127.0.0.1:{port}?pattern=req-rep&jpeg-compression=false");
    let sink = gst::Element::make_from_uri(gst::URIType::Sink, &uri, None).expect("a sink");
    assert_eq!(sink.factory().expect("factory").name(), "netgearsink");
    assert_eq!(
        sink.property_value("pattern").serialize().unwrap(),
        "req-rep"
    );
    let info = video_info(VideoFormat::Bgr, W as u32, H as u32);
    let sender = Sender::with_sink(&info.to_caps().expect("caps"), sink);
    sender.play();
    for idx in 0..FRAMES {
        let frame = test_frame(idx, W, H, 3, false);
        sender.push_packed(&frame, idx as u64).expect("push");
    }
    sender.finish_expect_eos(Duration::from_secs(20));
    sender.stop();
    let report = peer.report(Duration::from_secs(20));
    let received: Vec<u64> = report["received"]
        .as_array()
        .expect("received")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    assert_eq!(received, (0..FRAMES as u64).collect::<Vec<_>>());
    assert_eq!(report["bad"], serde_json::json!([]));
    assert_eq!(report["terminated"], true);
}

fn uri_of(element: &gst::Element) -> String {
    element
        .dynamic_cast_ref::<gst::URIHandler>()
        .expect("a URI handler")
        .uri()
        .expect("a URI")
        .to_string()
}

#[test]
fn uri_sets_properties_and_reads_back_what_is_used() {
    init();
    let src = gst::ElementFactory::make("netgearsrc").build().unwrap();
    assert_eq!(uri_of(&src), "netgear://*:5555");
    let handler = src.dynamic_cast_ref::<gst::URIHandler>().unwrap();
    handler
        .set_uri("netgear://[::1]:6000?pattern=1&max-retries=5&return-data=%7B%22ok%22:true%7D")
        .expect("a good URI");
    assert_eq!(src.property::<String>("address"), "::1");
    assert_eq!(src.property::<u32>("port"), 6000);
    assert_eq!(src.property::<u32>("max-retries"), 5);
    assert_eq!(src.property::<String>("return-data"), "{\"ok\":true}");
    assert_eq!(
        src.property::<String>("uri"),
        "netgear://[::1]:6000?pattern=req-rep&max-retries=5&return-data=%7B%22ok%22:true%7D"
    );
    // Properties set any other way show up too.
    src.set_property_from_str("secure-mode", "stonehouse");
    src.set_property("cert-dir", "/keys dir");
    assert!(uri_of(&src).ends_with("&secure-mode=stonehouse&cert-dir=/keys%20dir&max-retries=5&return-data=%7B%22ok%22:true%7D"),
        "{}", uri_of(&src));

    let sink = gst::ElementFactory::make("netgearsink").build().unwrap();
    sink.set_property(
        "uri",
        "netgear+ipc:///tmp/feed:5577?jpeg-compression=false&jpeg-colorspace=RGB",
    );
    assert_eq!(sink.property::<String>("address"), "/tmp/feed");
    assert_eq!(sink.property_value("protocol").serialize().unwrap(), "ipc");
    assert!(!sink.property::<bool>("jpeg-compression"));
    assert_eq!(
        uri_of(&sink),
        "netgear+ipc:///tmp/feed:5577?jpeg-compression=false&jpeg-colorspace=RGB"
    );
    // An empty host is the element's default address; properties the URI does not name
    // keep their values.
    sink.set_property("uri", "netgear://:7000");
    assert_eq!(sink.property::<String>("address"), "localhost");
    assert_eq!(
        uri_of(&sink),
        "netgear://localhost:7000?jpeg-compression=false&jpeg-colorspace=RGB"
    );
}

/// The error starting `element`, alone in a pipeline, posts; starting must fail.
pub fn start_error_of(element: &gst::Element) -> String {
    let pipeline = gst::Pipeline::new();
    pipeline.add(element).expect("add");
    let started = pipeline.set_state(gst::State::Paused);
    let outcome = wait_end(&pipeline, Duration::from_secs(5));
    let _ = pipeline.set_state(gst::State::Null);
    assert!(started.is_err(), "{} started", element.name());
    match outcome {
        Outcome::Error(text) => text,
        other => panic!("no error message from {}: {other:?}", element.name()),
    }
}

/// A URI that is not ours is refused at once; a netgear URI with a bad part changes
/// nothing and makes the change to PAUSED fail with an element error naming the URI and
/// the bad part (gst-launch-1.0 drops set_uri's error; every tool shows element errors).
#[test]
fn bad_uris_fail_at_start_naming_the_bad_part() {
    init();
    let src = gst::ElementFactory::make("netgearsrc").build().unwrap();
    let handler = src.dynamic_cast_ref::<gst::URIHandler>().unwrap();
    let not_ours = handler.set_uri("netgear:host:5555").unwrap_err();
    assert!(not_ours.matches(gst::URIError::UnsupportedProtocol));
    assert!(
        not_ours
            .to_string()
            .contains("must start with netgear:// or netgear+ipc://"),
        "{not_ours}"
    );
    let cases = [
        (
            "netgear://host:99999",
            "the port '99999' is not a number from 1 to 65535",
        ),
        (
            "netgear://::1:5555",
            "the host '::1' is not valid (an IPv6 address goes in brackets",
        ),
        (
            "netgear://host:5555?pattern=7",
            "'7' is not a valid value for pattern: one of pair (0), req-rep (1), pub-sub (2)",
        ),
        (
            "netgear://host:5555?pattern=foo",
            "'foo' is not a valid value for pattern: one of pair (0), req-rep (1), pub-sub (2)",
        ),
        (
            "netgear://host:5555?secure-mode=strong",
            "'strong' is not a valid value for secure-mode: one of none (0), stonehouse (1), ironhouse (2)",
        ),
        (
            "netgear://host:5555?max-retries=many",
            "'many' is not a valid value for max-retries: a whole number from 0 to 4294967295",
        ),
        (
            "netgear://host:5555?bidirectional=maybe",
            "'maybe' is not a valid value for bidirectional: true or false",
        ),
        (
            "netgear://host:5555?jpeg-quality=50",
            "netgearsrc has no settable property 'jpeg-quality'",
        ),
        (
            "netgear://host:5555?stats=x",
            "netgearsrc has no settable property 'stats'",
        ),
        (
            "netgear://host:5555?port=6000",
            "the query key 'port' is set by the URI itself",
        ),
        (
            "netgear://host:5555/feed",
            "the path '/feed' is not allowed",
        ),
        (
            "netgear://host:5555?cert-dir=%G0",
            "'%G0' has a bad percent-escape",
        ),
    ];
    for (uri, why) in cases {
        let src = gst::ElementFactory::make("netgearsrc").build().unwrap();
        let handler = src.dynamic_cast_ref::<gst::URIHandler>().unwrap();
        handler.set_uri(uri).expect(uri);
        // A refused URI changed nothing, not even the parts before the bad one.
        assert_eq!(uri_of(&src), "netgear://*:5555", "{uri}");
        let message = start_error_of(&src);
        assert!(
            message.contains(&format!("Invalid URI '{uri}': {why}")),
            "{uri}: {message}"
        );
    }
    let sink = gst::ElementFactory::make("netgearsink").build().unwrap();
    sink.dynamic_cast_ref::<gst::URIHandler>()
        .unwrap()
        .set_uri("netgear://h:1?return-data=x")
        .expect("kept for start");
    let message = start_error_of(&sink);
    assert!(
        message.contains("netgearsink has no settable property 'return-data'"),
        "{message}"
    );
}

/// The `uri` property: a bad URI used to be logged and the element started with its
/// defaults; now starting fails, and a good URI given after it clears the failure.
#[test]
fn a_bad_uri_property_fails_at_start_until_a_good_one_is_set() {
    init();
    let port = free_port();
    let sink = gst::ElementFactory::make("netgearsink").build().unwrap();
    sink.set_property("uri", format!("netgear://127.0.0.1:{port}?jpeg-quality=5"));
    let message = start_error_of(&sink);
    assert!(
        message
            .contains("'5' is not a valid value for jpeg-quality: a whole number from 10 to 100"),
        "{message}"
    );
    let src = gst::ElementFactory::make("netgearsrc").build().unwrap();
    src.set_property("uri", format!("netgear://127.0.0.1:{port}?pattern=pubsub"));
    assert!(start_error_of(&src).contains("'pubsub' is not a valid value for pattern"));
    src.set_property("uri", format!("netgear://127.0.0.1:{port}?pattern=pub-sub"));
    let pipeline = gst::Pipeline::new();
    pipeline.add(&src).unwrap();
    assert!(pipeline.set_state(gst::State::Paused).is_ok());
    pipeline.set_state(gst::State::Null).unwrap();
}

/// `gst-launch-1.0 … ! netgear://…` used to print only "no sink element for URI".
#[test]
fn gst_launch_says_what_is_wrong_with_a_uri() {
    let port = free_port();
    let cases = [
        (
            format!("videotestsrc num-buffers=1 ! netgear://127.0.0.1:{port}?pattern=foo"),
            format!("Invalid URI 'netgear://127.0.0.1:{port}?pattern=foo': 'foo' is not a valid value for pattern: one of pair (0), req-rep (1), pub-sub (2)"),
        ),
        (
            format!("netgear://:{port}?secure_mode=3 ! fakesink"),
            format!("Invalid URI 'netgear://:{port}?secure_mode=3': '3' is not a valid value for secure_mode (secure-mode): one of none (0), stonehouse (1), ironhouse (2)"),
        ),
    ];
    for (description, expected) in cases {
        let out = crate::units::gst_launch(
            &crate::units::launch_args(&description),
            Duration::from_secs(20),
        );
        assert_ne!(out.code, Some(0), "{}", out.text);
        assert!(out.text.contains(&expected), "{}", out.text);
        assert!(!out.text.contains("element for URI"), "{}", out.text);
    }
}

/// playbin (and so gst-play-1.0) shows the same text, from the source it made.
#[test]
fn playbin_says_what_is_wrong_with_a_uri() {
    init();
    let uri = "netgear://127.0.0.1:5555?pattern=foo&max-retries=1";
    let playbin = gst::ElementFactory::make("playbin")
        .property("uri", uri)
        .build()
        .expect("playbin");
    let playbin = playbin.downcast::<gst::Pipeline>().unwrap();
    assert!(playbin.set_state(gst::State::Paused).is_err());
    let outcome = wait_end(&playbin, Duration::from_secs(5));
    playbin.set_state(gst::State::Null).unwrap();
    let Outcome::Error(text) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        text.contains(&format!("Invalid URI '{uri}': 'foo' is not a valid value for pattern: one of pair (0), req-rep (1), pub-sub (2)")),
        "{text}"
    );
}

/// `gst-play-1.0 netgear://…` — the user's own player, as a separate process — plays a
/// vidgear sender to its end; every frame reaches the video sink byte for byte.
#[test]
fn gst_play_plays_a_vidgear_sender_to_its_end() {
    init();
    let port = free_port();
    let dir = temp_dir("gst-play");
    let videosink = format!(
        "videoconvert ! video/x-raw,format=BGR ! multifilesink location={}/%03d.bgr",
        dir.display()
    );
    let player = std::process::Command::new("gst-play-1.0")
        .args([
            "--no-interactive",
            "--flags=video",
            "--videosink",
            &videosink,
        ])
        .arg(format!("netgear://127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gst-play-1.0 (gstreamer1.0-plugins-base-apps, installed by scripts/setup)");
    // The player binds; vidgear's sender retries until it does.
    let mut peer = vidgear_sender(port, false);
    let report = peer.report(Duration::from_secs(30));
    assert_eq!(report["sent"], FRAMES);
    let out = wait_with_timeout(player, Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Reached end of play list"), "{stdout}");
    for idx in 0..FRAMES {
        let file = dir.join(format!("{idx:03}.bgr"));
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(bytes, test_frame(idx, W, H, 3, false), "frame {idx}");
    }
    assert!(
        !dir.join(format!("{FRAMES:03}.bgr")).exists(),
        "more frames than sent"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The process's output once it exits; killed (and the test failed) after `timeout`.
fn wait_with_timeout(mut child: std::process::Child, timeout: Duration) -> std::process::Output {
    let deadline = std::time::Instant::now() + timeout;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("did not end: {}", String::from_utf8_lossy(&out.stdout));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}
