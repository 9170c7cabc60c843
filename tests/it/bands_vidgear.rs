// SPDX-License-Identifier: MPL-2.0
//! Frames in bands (`jpeg-bands`): our sink's banded JPEGs (restart markers between bands)
//! decode in a real vidgear receiver as well as whole-frame JPEGs do, our source decodes
//! them band by band into the same pixels, vidgear's JPEGs (no restart markers) still
//! decode whole, and JPEGs whose restart markers break their promise are dropped and
//! counted.

use crate::common::*;
use gst_video::VideoFormat;
use std::time::Duration;

const W: usize = 1280;
const H: usize = 720;
const FRAMES: usize = 6;

fn bgr_caps() -> gst::Caps {
    init();
    gst::Caps::builder("video/x-raw")
        .field("format", "BGR")
        .build()
}

fn count(stats: &gst::Structure, name: &str) -> u64 {
    stats
        .get::<u64>(name)
        .unwrap_or_else(|e| panic!("{name}: {e} in {stats}"))
}

/// A 1280x720 BGR sender to `port` with `jpeg-bands=bands` on two encoder threads.
fn sender(port: u16, bands: &str) -> Sender {
    let port = port.to_string();
    let props = [
        ("address", "127.0.0.1"),
        ("port", port.as_str()),
        ("jpeg-threads", "2"),
        ("jpeg-bands", bands),
    ];
    let sender = Sender::raw(VideoFormat::Bgr, W as u32, H as u32, &props);
    sender.play();
    sender
}

/// Sends `FRAMES` smooth frames, one every `gap` (none: all at once, made beforehand), and
/// ends the stream.
fn send_smooth(sender: &Sender, gap: Option<Duration>) {
    let info = sender.info.as_ref().expect("raw caps");
    let frames: Vec<Vec<u8>> = (0..FRAMES)
        .map(|idx| to_gst_layout(&smooth_frame(idx, W, H, 3), info))
        .collect();
    for (idx, frame) in frames.into_iter().enumerate() {
        if let Some(gap) = gap {
            std::thread::sleep(gap);
        }
        sender.push_bytes(frame, idx as u64).unwrap();
    }
    sender.finish_expect_eos(Duration::from_secs(30));
}

/// Our sink with `jpeg-bands=bands` into vidgear's `recv()`: the lowest PSNR of its frames
/// against the source, and the sink's counters.
fn vidgear_psnr(bands: &str) -> (f64, gst::Structure) {
    let port = free_port();
    let mut peer = Peer::start(&peer_args(
        "recv",
        port,
        0,
        &[("smooth", String::new()), ("seconds", "40".into())],
    ));
    peer.wait_ready(Duration::from_secs(20));
    let sender = sender(port, bands);
    send_smooth(&sender, Some(Duration::from_millis(20)));
    let report = peer.report(Duration::from_secs(45));
    assert_eq!(report["terminated"], true, "{report}");
    assert_eq!(
        report["received"].as_array().unwrap().len(),
        FRAMES,
        "{report}"
    );
    assert_eq!(report["bad"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["shapes"],
        serde_json::json!(["([720, 1280, 3], 'uint8')"])
    );
    (report["psnr_min"].as_f64().expect("psnr"), sender.stats())
}

#[test]
fn vidgear_decodes_banded_jpegs_within_a_tenth_of_a_db_of_whole_ones() {
    let (whole, whole_stats) = vidgear_psnr("1");
    let (banded, banded_stats) = vidgear_psnr("4");
    assert_eq!(count(&whole_stats, "band-encodes"), 0);
    assert_eq!(count(&banded_stats, "band-encodes"), FRAMES as u64);
    assert!(whole >= 35.0, "whole frames: {whole} dB");
    assert!(
        (banded - whole).abs() <= 0.1,
        "bands {banded} dB, whole frames {whole} dB"
    );
}

/// Our sink with `jpeg-bands=bands` into our source decoding to BGR: the frames and the
/// source's counters.
fn through_our_source(
    bands: &str,
    gap: Option<Duration>,
) -> (Vec<Frame>, gst::Structure, gst::Structure) {
    let port = free_port();
    let receiver = Receiver::with_caps(
        &[("port", &port.to_string()), ("address", "127.0.0.1")],
        Some(&bgr_caps()),
    );
    receiver.play();
    let sender = sender(port, bands);
    send_smooth(&sender, gap);
    let (frames, eos) = receiver.collect(Duration::from_secs(15));
    assert!(eos, "{} frames, no EOS", frames.len());
    assert_eq!(frames.len(), FRAMES);
    assert_eq!(count(&receiver.stats(), "malformed"), 0);
    (frames, receiver.stats(), sender.stats())
}

#[test]
fn our_source_decodes_banded_jpegs_band_by_band_into_the_same_pixels() {
    let gap = Some(Duration::from_millis(50));
    let (whole, whole_stats, _) = through_our_source("1", gap);
    let (banded, banded_stats, sender_stats) = through_our_source("2", gap);
    assert_eq!(count(&sender_stats, "band-encodes"), FRAMES as u64);
    assert_eq!(count(&whole_stats, "band-decodes"), 0, "no restart markers");
    // A frame that finds the source behind is decoded whole on its decoder thread.
    let (by_bands, ahead) = (
        count(&banded_stats, "band-decodes"),
        count(&banded_stats, "parallel-decodes"),
    );
    assert!(
        by_bands >= 1 && by_bands + ahead == FRAMES as u64,
        "{banded_stats}"
    );
    for (idx, (b, w)) in banded.iter().zip(&whole).enumerate() {
        // 4:2:2 chroma is upsampled along rows only: cutting at MCU rows changes nothing.
        assert!(b.packed() == w.packed(), "frame {idx} differs");
        let p = psnr(&b.packed(), &smooth_frame(idx, W, H, 3));
        assert!(p >= 35.0, "frame {idx}: {p:.1} dB");
    }
}

#[test]
fn automatic_bands_for_idle_encoders_whole_frames_for_a_backlog() {
    // Paced: every frame finds the encoder threads idle.
    let (frames, _, paced) = through_our_source("0", Some(Duration::from_millis(80)));
    assert_eq!(frames.len(), FRAMES);
    assert!(
        count(&paced, "band-encodes") >= FRAMES as u64 / 2,
        "{paced}"
    );
    // At once: the first frame finds them idle, the next ones find it still encoding.
    let (_, _, backlog) = through_our_source("0", None);
    let banded = count(&backlog, "band-encodes");
    assert!((1..=FRAMES as u64 / 2).contains(&banded), "{backlog}");
}

#[test]
fn vidgear_jpegs_without_restart_markers_decode_whole() {
    let port = free_port();
    let receiver = Receiver::with_caps(
        &[("port", &port.to_string()), ("address", "127.0.0.1")],
        Some(&bgr_caps()),
    );
    receiver.play();
    let args = sender_args(W, H, 3, FRAMES, Some("BGR"));
    let mut peer = Peer::start(&peer_args("send", port, 0, &args));
    let (frames, eos) = receiver.collect(Duration::from_secs(20));
    peer.report(Duration::from_secs(20));
    assert!(eos);
    assert_eq!(frames.len(), FRAMES);
    for (idx, frame) in frames.iter().enumerate() {
        let p = psnr(&frame.packed(), &smooth_frame(idx, W, H, 3));
        assert!(p >= 35.0, "frame {idx}: {p:.1} dB");
    }
    let stats = receiver.stats();
    assert_eq!(count(&stats, "band-decodes"), 0, "{stats}");
    assert_eq!(count(&stats, "malformed"), 0, "{stats}");
}

/// One banded JPEG as our sink sends it, taken from our source passing JPEG through.
fn banded_jpeg() -> Vec<u8> {
    init();
    let port = free_port();
    let jpeg_caps = gst::Caps::builder("image/jpeg").build();
    let receiver = Receiver::with_caps(
        &[("port", &port.to_string()), ("address", "127.0.0.1")],
        Some(&jpeg_caps),
    );
    receiver.play();
    let sender = sender(port, "2");
    sender.push_packed(&smooth_frame(0, W, H, 3), 0).unwrap();
    sender.finish_expect_eos(Duration::from_secs(30));
    let (frames, _) = receiver.collect(Duration::from_secs(10));
    frames.into_iter().next().expect("a JPEG").data
}

#[test]
fn jpegs_with_broken_restart_markers_are_dropped_and_counted() {
    let good = banded_jpeg();
    let rst = good
        .windows(2)
        .position(|w| w == [0xFF, 0xD0])
        .expect("RST0");
    let mut out_of_order = good.clone();
    out_of_order[rst + 1] = 0xD3;
    let truncated = good[..rst + (good.len() - rst) / 2].to_vec();
    let mut extra = good[..good.len() - 2].to_vec();
    extra.extend_from_slice(&[0xFF, 0xD1, 0x00, 0xFF, 0xD9]);

    let port = free_port();
    let receiver = Receiver::with_caps(
        &[("port", &port.to_string()), ("address", "127.0.0.1")],
        Some(&bgr_caps()),
    );
    receiver.play();
    let caps = gst::Caps::builder("image/jpeg")
        .field("width", W as i32)
        .field("height", H as i32)
        .field("framerate", gst::Fraction::new(30, 1))
        .build();
    let sender = Sender::new(
        &caps,
        &[("address", "127.0.0.1"), ("port", &port.to_string())],
    );
    sender.play();
    for (idx, jpeg) in [out_of_order, truncated, extra, good]
        .into_iter()
        .enumerate()
    {
        std::thread::sleep(Duration::from_millis(50));
        sender.push_bytes(jpeg, idx as u64).unwrap();
    }
    sender.finish_expect_eos(Duration::from_secs(30));
    let (frames, eos) = receiver.collect(Duration::from_secs(10));
    assert!(eos);
    assert_eq!(frames.len(), 1, "only the good JPEG comes through");
    assert!(psnr(&frames[0].packed(), &smooth_frame(0, W, H, 3)) >= 35.0);
    let stats = receiver.stats();
    assert_eq!(count(&stats, "malformed"), 3, "{stats}");
    assert_eq!(count(&stats, "band-decodes"), 1, "{stats}");
    assert!(
        receiver
            .posted
            .warnings()
            .iter()
            .any(|w| w.contains("restart markers")),
        "{:?}",
        receiver.posted.warnings()
    );
}
