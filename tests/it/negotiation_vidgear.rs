// SPDX-License-Identifier: MPL-2.0
//! `netgearsrc` honours the format downstream asks for, with real vidgear senders: raw
//! frames rewritten into another packed layout byte for byte, JPEG decoded straight into
//! planar YUV (full-range, as JFIF is) that videoconvert turns back into the sent picture.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use std::time::Duration;

/// Odd width: GStreamer pads the rows, so the rewrite must honour the stride.
const W: usize = 33;
const H: usize = 17;

/// The bytes of one pixel of `format`, from OpenCV's B, G, R (and A).
fn pixel_in(format: VideoFormat, bgra: &[u8]) -> Vec<u8> {
    let (b, g, r) = (bgra[0], bgra[1], bgra[2]);
    let a = bgra.get(3).copied().unwrap_or(255);
    match format {
        VideoFormat::Rgb => vec![r, g, b],
        VideoFormat::Xrgb => vec![255, r, g, b],
        VideoFormat::Rgbx => vec![r, g, b, 255],
        VideoFormat::Rgba => vec![r, g, b, a],
        VideoFormat::Abgr => vec![a, b, g, r],
        VideoFormat::Bgra => vec![b, g, r, a],
        other => panic!("no expectation for {other:?}"),
    }
}

#[test]
fn raw_vidgear_frames_are_rewritten_into_the_packed_layout_downstream_asks_for() {
    init();
    for (channels, format) in [
        (3usize, VideoFormat::Rgb),
        (3, VideoFormat::Xrgb),
        (3, VideoFormat::Rgba),
        (4, VideoFormat::Abgr),
        (4, VideoFormat::Rgbx),
        (3, VideoFormat::Bgra),
    ] {
        let port = free_port();
        let caps = gst_video::VideoCapsBuilder::new().format(format).build();
        let receiver = Receiver::with_caps(
            &[("port", &port.to_string()), ("address", "127.0.0.1")],
            Some(&caps),
        );
        receiver.play();
        let args = sender_args(W, H, channels, 6, None);
        let mut peer = Peer::start(&peer_args("send", port, 0, &args));
        let (frames, eos) = receiver.collect(Duration::from_secs(15));
        peer.report(Duration::from_secs(10));
        assert!(eos, "{format:?}: no EOS");
        assert_eq!(frames.len(), 6, "{channels} channels as {format:?}");
        for (idx, frame) in frames.iter().enumerate() {
            assert_eq!(frame.format(), format);
            let sent = test_frame(idx, W, H, channels, false);
            let expected: Vec<u8> = sent
                .chunks(channels)
                .flat_map(|p| pixel_in(format, p))
                .collect();
            assert_eq!(
                frame.packed(),
                expected,
                "{channels} channels as {format:?}, frame {idx}"
            );
        }
        assert_eq!(receiver.stats().get::<u64>("malformed").unwrap(), 0);
    }
}

#[test]
fn a_raw_frame_downstream_cannot_take_names_the_way_out() {
    init();
    // Raw BGR into planar YUV is a colour conversion: videoconvert's job, said so.
    let port = free_port();
    let caps = gst_video::VideoCapsBuilder::new()
        .format(VideoFormat::I420)
        .build();
    let receiver = Receiver::with_caps(
        &[("port", &port.to_string()), ("address", "127.0.0.1")],
        Some(&caps),
    );
    receiver.play();
    let args = sender_args(W, H, 3, 3, None);
    let mut peer = Peer::start(&peer_args("send", port, 0, &args));
    let (frames, _) = receiver.collect(Duration::from_secs(15));
    peer.report(Duration::from_secs(10));
    assert!(frames.is_empty());
    let warnings = receiver.posted.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("does not accept")
                && w.contains("put a videoconvert after netgearsrc")),
        "{warnings:?}"
    );
}

#[test]
fn vidgear_jpeg_decodes_into_planar_yuv_at_full_range() {
    const JW: usize = 320;
    const JH: usize = 240;
    for format in [VideoFormat::I420, VideoFormat::Y42b, VideoFormat::Y444] {
        let port = free_port();
        let name = format.to_str();
        let receiver = Receiver::launch(&format!(
            "netgearsrc name=src port={port} address=127.0.0.1 ! video/x-raw,format={name} \
             ! videoconvert ! video/x-raw,format=BGR ! appsink name=out"
        ));
        receiver.play();
        let args = sender_args(JW, JH, 3, 8, Some("BGR"));
        let mut peer = Peer::start(&peer_args("send", port, 0, &args));
        let first = receiver
            .next_frame(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("{name}: no frame"));
        let caps = receiver
            .src
            .static_pad("src")
            .and_then(|p| p.current_caps())
            .expect("negotiated caps");
        let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
        assert_eq!(info.format(), format, "{caps}");
        assert_eq!(
            info.colorimetry().range(),
            gst_video::VideoColorRange::Range0_255,
            "{caps}"
        );
        let (mut frames, eos) = receiver.collect(Duration::from_secs(15));
        peer.report(Duration::from_secs(10));
        frames.insert(0, first);
        assert!(eos, "{name}: no EOS");
        assert_eq!(frames.len(), 8, "{name}");
        for (idx, frame) in frames.iter().enumerate() {
            let p = psnr(&frame.packed(), &smooth_frame(idx, JW, JH, 3));
            assert!(p >= 30.0, "{name} frame {idx}: PSNR {p:.1} dB");
        }
        assert_eq!(receiver.stats().get::<u64>("dropped").unwrap(), 0);
    }
}
