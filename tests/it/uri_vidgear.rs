// SPDX-License-Identifier: MPL-2.0
//! vidgear's option names as `netgear://` URI keys, in vidgear's units: the same option text
//! a real vidgear peer is given (`request_timeout=5` seconds, `secure_mode=1`,
//! `custom_cert_location`, `max_retries`, `jpeg_compression`) makes our elements talk to it,
//! and sets our properties in our units.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use std::time::Duration;

const W: usize = 64;
const H: usize = 48;
const FRAMES: usize = 10;

fn uri_of(element: &gst::Element) -> String {
    element.property::<String>("uri")
}

/// A vidgear sender in StoneHouse mode, with vidgear's options as our source's URI spells
/// them, sends every frame byte for byte.
#[test]
fn a_source_with_vidgear_option_names_receives_from_vidgear() {
    init();
    let port = free_port();
    let certs = vidgear_keys("uri-vidgear-src");
    let certs_text = certs.to_string_lossy().into_owned();
    let uri = format!(
        "netgear://127.0.0.1:{port}?pattern=1&secure_mode=1&custom_cert_location={certs_text}\
         &request_timeout=5&max_retries=5&jpeg_compression_quality=80"
    );
    let receiver = Receiver::new(&[("uri", &uri)]);
    let src = &receiver.src;
    assert_eq!(src.property::<u32>("request-timeout"), 5000);
    assert_eq!(src.property::<u32>("max-retries"), 5);
    assert_eq!(src.property::<u32>("return-jpeg-quality"), 80);
    assert_eq!(src.property::<String>("cert-dir"), certs_text);
    assert_eq!(
        src.property_value("secure-mode").serialize().unwrap(),
        "stonehouse"
    );
    assert_eq!(
        src.property_value("pattern").serialize().unwrap(),
        "req-rep"
    );
    // Read back in our spelling and units.
    assert!(
        uri_of(src).contains("&request-timeout=5000&"),
        "{}",
        uri_of(src)
    );
    receiver.play();
    let extra = [
        ("address", "127.0.0.1".to_string()),
        ("secure", "1".to_string()),
        ("certs", certs_text.clone()),
        ("request-timeout", "5".to_string()),
        ("max-retries", "5".to_string()),
        ("frames", FRAMES.to_string()),
        ("width", W.to_string()),
        ("height", H.to_string()),
    ];
    let mut peer = Peer::start(&peer_args("send", port, 1, &extra));
    let (frames, eos) = receiver.collect(Duration::from_secs(15));
    let report = peer.report(Duration::from_secs(15));
    assert_eq!(report["sent"], FRAMES);
    assert!(eos, "vidgear's termination ended the stream");
    assert_eq!(frames.len(), FRAMES);
    for (idx, frame) in frames.iter().enumerate() {
        assert_eq!(
            frame.packed(),
            test_frame(idx, W, H, 3, false),
            "frame {idx}"
        );
    }
    let _ = std::fs::remove_dir_all(&certs);
}

/// A sink made from a URI with vidgear's names sends to a vidgear receiver given the same
/// options; a vidgear name and our spelling of one property together are refused.
#[test]
fn a_sink_with_vidgear_option_names_sends_to_vidgear() {
    init();
    let port = free_port();
    let extra = [
        ("address", "127.0.0.1".to_string()),
        ("request-timeout", "4".to_string()),
        ("max-retries", "5".to_string()),
        ("seconds", "20".to_string()),
    ];
    let mut peer = Peer::start(&peer_args("recv", port, 1, &extra));
    peer.wait_ready(Duration::from_secs(20));
    let uri = format!(
        "netgear://127.0.0.1:{port}?pattern=1&jpeg_compression=False&request_timeout=4\
         &max_retries=5&bidirectional_mode=false"
    );
    let sink = gst::Element::make_from_uri(gst::URIType::Sink, &uri, None).expect("a sink");
    assert_eq!(sink.property::<u32>("request-timeout"), 4000);
    assert_eq!(sink.property::<u32>("max-retries"), 5);
    assert!(!sink.property::<bool>("jpeg-compression"));
    let info = video_info(VideoFormat::Bgr, W as u32, H as u32);
    let sender = Sender::with_sink(&info.to_caps().expect("caps"), sink);
    let frames: Vec<Vec<u8>> = (0..FRAMES).map(|i| test_frame(i, W, H, 3, false)).collect();
    let report = sink_to_vidgear(&mut peer, &sender, &frames, |_| 5, Duration::from_secs(15));
    assert_eq!(
        report["received"],
        serde_json::json!((0..FRAMES).collect::<Vec<_>>())
    );
    sender.stop();

    let sink = gst::ElementFactory::make("netgearsink").build().unwrap();
    sink.set_property(
        "uri",
        "netgear://127.0.0.1:1?request_timeout=4&request-timeout=4000",
    );
    let message = crate::uri::start_error_of(&sink);
    assert!(
        message.contains("request-timeout is set twice, by request_timeout and by request-timeout"),
        "{message}"
    );
}

/// jpeg_compression as a colorspace name turns JPEG on with that colorspace, as in vidgear;
/// names with no equivalent fail at start saying what to do instead.
#[test]
fn vidgear_names_convert_or_say_what_to_use() {
    init();
    let sink = gst::ElementFactory::make("netgearsink").build().unwrap();
    sink.set_property(
        "uri",
        "netgear://127.0.0.1:1?jpeg_compression=rgb&jpeg_compression_quality=75.9&jpeg_compression_fastdct=True",
    );
    assert!(sink.property::<bool>("jpeg-compression"));
    assert_eq!(sink.property::<String>("jpeg-colorspace"), "RGB");
    assert_eq!(sink.property::<u32>("jpeg-quality"), 75);
    assert!(sink.property::<bool>("jpeg-fastdct"));
    for (uri, why) in [
        (
            "netgear://127.0.0.1:1?ssh_tunnel_pwd=secret",
            "vidgear's ssh_tunnel_pwd has no URI key: a password does not belong in a URI; set the ssh-password property",
        ),
        (
            "netgear://127.0.0.1:1?request_timeout=four",
            "request_timeout=four is not a number of seconds (vidgear's unit), e.g. request_timeout=4",
        ),
        (
            "netgear://127.0.0.1:1?jpeg_compression_quality=5",
            "'5' is not a valid value for jpeg_compression_quality (jpeg-quality): a whole number from 10 to 100",
        ),
        (
            "netgear://127.0.0.1:1?subscriber_timeout=2",
            "netgearsink has no equivalent of vidgear's subscriber_timeout (it is netgearsrc's timeout)",
        ),
    ] {
        let sink = gst::ElementFactory::make("netgearsink").build().unwrap();
        sink.set_property("uri", uri);
        let message = crate::uri::start_error_of(&sink);
        assert!(
            message.contains(&format!("Invalid URI '{uri}': {why}")),
            "{message}"
        );
    }
    let src = gst::ElementFactory::make("netgearsrc").build().unwrap();
    src.set_property(
        "uri",
        "netgear://:1?subscriber_timeout=2.5&multiserver_mode=True&pattern=2&ports=5566,5567",
    );
    assert_eq!(src.property::<u32>("timeout"), 2500);
    assert!(src.property::<bool>("multi-server"));
}
