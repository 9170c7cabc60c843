// SPDX-License-Identifier: MPL-2.0
//! JPEG frames: vidgear's simplejpeg into `netgearsrc` (decoded inline or passed to
//! jpegdec), `netgearsink`'s inline encoder and jpegenc into vidgear, our sink into our
//! source in every pattern, and corrupt JPEG or JPEG bombs dropped without stopping the stream.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use std::time::Duration;

const W: usize = 320;
const H: usize = 240;

fn raw_caps() -> gst::Caps {
    init();
    gst::Caps::builder("video/x-raw").build()
}

/// vidgear sends `frames` smooth frames with its default JPEG settings in `colorspace`.
fn vidgear_sends_jpeg(
    port: u16,
    pattern: u8,
    colorspace: &str,
    channels: usize,
    frames: usize,
) -> Peer {
    let args = sender_args(W, H, channels, frames, Some(colorspace));
    Peer::start(&peer_args("send", port, pattern, &args))
}

fn assert_all_close(frames: &[Frame], expected: usize, channels: usize, format: VideoFormat) {
    assert_eq!(frames.len(), expected, "every frame arrives");
    for (idx, frame) in frames.iter().enumerate() {
        assert_eq!(frame.format(), format);
        assert_eq!(
            (
                frame.info().width() as usize,
                frame.info().height() as usize
            ),
            (W, H)
        );
        let p = psnr(&frame.packed(), &smooth_frame(idx, W, H, channels));
        assert!(p >= 35.0, "frame {idx}: PSNR {p:.1} dB");
    }
}

#[test]
fn vidgear_jpeg_is_decoded_inline_for_raw_downstream() {
    for (pattern, colorspace, channels, format) in [
        (0u8, "BGR", 3, VideoFormat::Bgr),
        (1, "GRAY", 1, VideoFormat::Gray8),
        (1, "RGB", 3, VideoFormat::Rgb),
    ] {
        let port = free_port();
        let receiver = Receiver::with_caps(
            &[
                ("port", &port.to_string()),
                ("address", "127.0.0.1"),
                ("pattern", &pattern.to_string()),
            ],
            Some(&raw_caps()),
        );
        receiver.play();
        let mut peer = vidgear_sends_jpeg(port, pattern, colorspace, channels, 20);
        let (frames, eos) = receiver.collect(Duration::from_secs(15));
        peer.report(Duration::from_secs(10));
        assert!(eos);
        // RGB frames decode to RGB: compare in the order vidgear laid them out.
        assert_all_close(&frames, 20, channels, format);
        assert_eq!(receiver.stats().get::<u64>("malformed").unwrap(), 0);
    }
}

#[test]
fn vidgear_jpeg_passes_untouched_to_jpegdec() {
    let port = free_port();
    let receiver = Receiver::launch(&format!(
        "netgearsrc name=src port={port} address=127.0.0.1 ! image/jpeg ! jpegdec \
         ! videoconvert ! video/x-raw,format=BGR ! appsink name=out"
    ));
    receiver.play();
    let mut peer = vidgear_sends_jpeg(port, 0, "BGR", 3, 15);
    let (frames, eos) = receiver.collect(Duration::from_secs(15));
    peer.report(Duration::from_secs(10));
    assert!(eos);
    assert_all_close(&frames, 15, 3, VideoFormat::Bgr);

    // What the source pushed is vidgear's JPEG, with its size in the caps.
    let port = free_port();
    let receiver = Receiver::with_caps(
        &[("port", &port.to_string()), ("address", "127.0.0.1")],
        Some(&gst::Caps::builder("image/jpeg").build()),
    );
    receiver.play();
    let mut peer = vidgear_sends_jpeg(port, 0, "BGR", 3, 3);
    let (frames, _) = receiver.collect(Duration::from_secs(15));
    peer.report(Duration::from_secs(10));
    assert_eq!(frames.len(), 3);
    let s = frames[0].caps.structure(0).unwrap();
    assert_eq!(s.name(), "image/jpeg");
    assert_eq!(
        (
            s.get::<i32>("width").unwrap(),
            s.get::<i32>("height").unwrap()
        ),
        (W as i32, H as i32)
    );
    assert_eq!(&frames[0].data[..2], &[0xFF, 0xD8]);
}

/// `netgearsink` with its default inline JPEG → vidgear `recv()`.
#[test]
fn sink_inline_jpeg_decodes_in_vidgear() {
    for (format, channels, shape) in [
        (VideoFormat::Bgr, 3, "[240, 320, 3]"),
        (VideoFormat::Gray8, 1, "[240, 320]"),
    ] {
        let port = free_port();
        let mut peer = Peer::start(&peer_args(
            "recv",
            port,
            1,
            &[("smooth", String::new()), ("seconds", "20".into())],
        ));
        peer.wait_ready(Duration::from_secs(20));
        let sender = Sender::raw(
            format,
            W as u32,
            H as u32,
            &[("port", &port.to_string()), ("pattern", "1")],
        );
        sender.play();
        for idx in 0..20 {
            std::thread::sleep(Duration::from_millis(5));
            sender
                .push_packed(&smooth_frame(idx, W, H, channels), idx as u64)
                .unwrap();
        }
        sender.finish_expect_eos(Duration::from_secs(15));
        let report = peer.report(Duration::from_secs(25));
        assert_eq!(report["terminated"], true, "{report}");
        assert_eq!(report["received"].as_array().unwrap().len(), 20, "{report}");
        assert_eq!(
            report["shapes"],
            serde_json::json!([format!("({shape}, 'uint8')")])
        );
        let p = report["psnr_min"].as_f64().expect("psnr");
        assert!(p >= 35.0, "{format:?}: PSNR {p} dB in vidgear");
        // JPEG crossed the wire: far fewer bytes than raw frames.
        let bytes = sender.stats().get::<u64>("bytes").unwrap();
        assert!(
            bytes < (20 * W * H * channels / 3) as u64,
            "{bytes} bytes sent"
        );
    }
}

/// `jpegenc ! netgearsink`: the encoded bytes go out untouched with colorspace BGR.
#[test]
fn jpegenc_output_decodes_in_vidgear() {
    init();
    let port = free_port();
    let mut peer = Peer::start(&peer_args(
        "recv",
        port,
        0,
        &[("smooth", String::new()), ("seconds", "20".into())],
    ));
    peer.wait_ready(Duration::from_secs(20));
    let info = video_info(VideoFormat::Bgr, W as u32, H as u32);
    let pipeline = launch(&format!(
        "appsrc name=in format=time block=true ! videoconvert ! jpegenc quality=95 \
         ! netgearsink name=sink port={port} sync=false"
    ));
    let appsrc = pipeline
        .by_name("in")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    appsrc.set_caps(Some(&info.to_caps().unwrap()));
    pipeline.set_state(gst::State::Playing).unwrap();
    for idx in 0..15 {
        std::thread::sleep(Duration::from_millis(5));
        let data = to_gst_layout(&smooth_frame(idx, W, H, 3), &info);
        appsrc.push_buffer(frame_buffer(data, idx as u64)).unwrap();
    }
    appsrc.end_of_stream().unwrap();
    assert!(matches!(
        wait_end(&pipeline, Duration::from_secs(15)),
        Outcome::Eos
    ));
    pipeline.set_state(gst::State::Null).unwrap();
    let report = peer.report(Duration::from_secs(25));
    assert_eq!(report["received"].as_array().unwrap().len(), 15, "{report}");
    assert_eq!(
        report["shapes"],
        serde_json::json!(["([240, 320, 3], 'uint8')"])
    );
    let p = report["psnr_min"].as_f64().expect("psnr");
    assert!(p >= 35.0, "PSNR {p} dB in vidgear");
}

#[test]
fn our_sink_to_our_source_with_jpeg_in_every_pattern() {
    for pattern in ["pair", "req-rep", "pub-sub"] {
        let port = free_port().to_string();
        let mut props = vec![
            ("port", port.as_str()),
            ("address", "127.0.0.1"),
            ("pattern", pattern),
        ];
        if pattern == "pub-sub" {
            props.push(("timeout", "2000"));
        }
        let receiver = Receiver::with_caps(&props, Some(&raw_caps()));
        receiver.play();
        let sender = Sender::raw(
            VideoFormat::Bgrx,
            W as u32,
            H as u32,
            &[("port", &port), ("pattern", pattern)],
        );
        sender.play();
        for idx in 0..20usize {
            if pattern == "pub-sub" {
                std::thread::sleep(Duration::from_millis(if idx == 0 { 300 } else { 10 }));
            }
            let bgrx: Vec<u8> = smooth_frame(idx, W, H, 3)
                .chunks(3)
                .flat_map(|p| [p[0], p[1], p[2], 0])
                .collect();
            sender.push_packed(&bgrx, idx as u64).unwrap();
        }
        sender.finish_expect_eos(Duration::from_secs(15));
        let (frames, eos) = receiver.collect(Duration::from_secs(5));
        assert!(eos, "{pattern}: no EOS");
        if pattern == "pub-sub" {
            assert!(frames.len() >= 10, "{pattern}: {} frames", frames.len());
        } else {
            assert_eq!(frames.len(), 20, "{pattern}");
        }
        for frame in &frames {
            // BGRx input is encoded from its own layout and announced as BGR (what
            // vidgear users expect), so it decodes to BGR.
            assert_eq!(frame.format(), VideoFormat::Bgr, "{pattern}");
            let bgr = frame.packed();
            let best = (0..20)
                .map(|i| psnr(&bgr, &smooth_frame(i, W, H, 3)))
                .fold(0.0, f64::max);
            assert!(best >= 35.0, "{pattern}: PSNR {best:.1}");
        }
    }
}

#[test]
fn corrupt_jpeg_is_dropped_with_a_warning_and_the_stream_goes_on() {
    init();
    for caps in [raw_caps(), gst::Caps::builder("image/jpeg").build()] {
        let port = free_port().to_string();
        let receiver =
            Receiver::with_caps(&[("port", &port), ("address", "127.0.0.1")], Some(&caps));
        receiver.play();
        let sender = Sender::new(
            &gst::Caps::builder("image/jpeg").build(),
            &[("port", &port)],
        );
        sender.play();
        let good = encode_jpeg(&smooth_frame(0, W, H, 3), W, H);
        let mut corrupt = good.clone();
        corrupt.truncate(good.len() / 4);
        corrupt[2..40].fill(0x55);
        sender
            .push_bytes(b"\xFF\xD8 definitely not a JPEG".to_vec(), 0)
            .unwrap();
        sender.push_bytes(corrupt, 1).unwrap();
        sender.push_bytes(good.clone(), 2).unwrap();
        sender.finish_expect_eos(Duration::from_secs(10));
        let (frames, eos) = receiver.collect(Duration::from_secs(5));
        assert!(eos);
        assert_eq!(frames.len(), 1, "only the good frame arrives ({caps})");
        if caps.structure(0).unwrap().name() == "image/jpeg" {
            assert_eq!(frames[0].data, good);
        } else {
            assert!(psnr(&frames[0].packed(), &smooth_frame(0, W, H, 3)) >= 35.0);
        }
        assert_eq!(receiver.stats().get::<u64>("malformed").unwrap(), 2);
        let warnings = queued_warnings(&receiver.pipeline);
        let warning = warnings.first().expect("a warning on the bus");
        assert!(warning.contains("corrupt JPEG"), "{warning}");
    }
}

#[test]
fn jpeg_bomb_is_refused_from_its_header_and_the_stream_goes_on() {
    init();
    let port = free_port().to_string();
    let receiver = Receiver::with_caps(
        &[("port", &port), ("address", "127.0.0.1")],
        Some(&raw_caps()),
    );
    receiver.play();
    let sender = Sender::new(
        &gst::Caps::builder("image/jpeg").build(),
        &[("port", &port)],
    );
    sender.play();
    // A real 16x16 JPEG whose frame header claims 9000x9000 (243 MB decoded).
    let mut bomb = encode_jpeg(&smooth_frame(0, 16, 16, 3), 16, 16);
    claim_jpeg_size(&mut bomb, 9000, 9000);
    let bomb_len = bomb.len();
    sender.push_bytes(bomb, 0).unwrap();
    sender
        .push_bytes(encode_jpeg(&smooth_frame(0, W, H, 3), W, H), 1)
        .unwrap();
    sender.finish();
    assert!(matches!(
        wait_end(&sender.pipeline, Duration::from_secs(10)),
        Outcome::Eos
    ));
    let (frames, eos) = receiver.collect(Duration::from_secs(5));
    assert!(eos);
    assert_eq!(frames.len(), 1, "only the good frame arrives");
    assert!(psnr(&frames[0].packed(), &smooth_frame(0, W, H, 3)) >= 35.0);
    assert_eq!(receiver.stats().get::<u64>("malformed").unwrap(), 1);
    let warnings = queued_warnings(&receiver.pipeline);
    let warning = warnings.first().expect("a warning on the bus");
    let expected = format!("a {bomb_len}-byte JPEG cannot hold 9000x9000");
    assert!(warning.contains(&expected), "{warning}");
}

/// vidgear's BGR JPEG decodes straight into the packed layout downstream asks for.
#[test]
fn vidgear_jpeg_decodes_into_the_format_downstream_asks_for() {
    init();
    for (format, expected) in [
        (VideoFormat::Rgb, None),
        (VideoFormat::Rgbx, None),
        (VideoFormat::Gray8, Some(1)),
    ] {
        let port = free_port();
        let caps = gst_video::VideoCapsBuilder::new().format(format).build();
        let receiver = Receiver::with_caps(
            &[("port", &port.to_string()), ("address", "127.0.0.1")],
            Some(&caps),
        );
        receiver.play();
        let mut peer = vidgear_sends_jpeg(port, 0, "BGR", 3, 10);
        let (frames, eos) = receiver.collect(Duration::from_secs(15));
        peer.report(Duration::from_secs(10));
        assert!(eos, "{format:?}");
        assert_eq!(frames.len(), 10, "{format:?}: every frame arrives");
        for (idx, frame) in frames.iter().enumerate() {
            assert_eq!(frame.format(), format);
            let bgr = smooth_frame(idx, W, H, 3);
            let got = frame.packed();
            let as_bgr: Vec<u8> = match (format, expected) {
                // RGB-family rows back in BGR order to compare with what vidgear sent.
                (VideoFormat::Rgb, _) => got.chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect(),
                (VideoFormat::Rgbx, _) => got.chunks(4).flat_map(|p| [p[2], p[1], p[0]]).collect(),
                _ => got,
            };
            let p = match expected {
                // Gray: compare with the luma of what was sent.
                Some(_) => {
                    let luma: Vec<u8> = bgr
                        .chunks(3)
                        .map(|p| {
                            (0.114 * f64::from(p[0])
                                + 0.587 * f64::from(p[1])
                                + 0.299 * f64::from(p[2]))
                            .round() as u8
                        })
                        .collect();
                    psnr(&as_bgr, &luma)
                }
                None => psnr(&as_bgr, &bgr),
            };
            assert!(p >= 30.0, "{format:?} frame {idx}: PSNR {p:.1} dB");
        }
        assert_eq!(
            receiver.stats().get::<u64>("dropped").unwrap(),
            0,
            "{format:?}"
        );
    }
}

/// Which of the sent frames around `idx` (by PSNR) a received picture is closest to.
fn closest_sent(frame: &[u8], idx: usize, count: usize, width: usize, height: usize) -> usize {
    (idx.saturating_sub(2)..(idx + 3).min(count))
        .max_by(|a, b| {
            let pa = psnr(frame, &smooth_frame(*a, width, height, 3));
            let pb = psnr(frame, &smooth_frame(*b, width, height, 3));
            pa.total_cmp(&pb)
        })
        .unwrap_or(usize::MAX)
}

/// A receiver slower than its sender (here: pre-encoded 720p JPEGs, which cost the sender
/// nothing) decodes each frame on its decoder thread while it receives the next: every
/// frame arrives, in order, and the stats count the overlapped decodes.
#[test]
fn a_receiver_behind_its_sender_decodes_while_receiving_and_keeps_the_order() {
    init();
    const N: usize = 40;
    let (w, h) = (1280usize, 720usize);
    let jpegs: Vec<Vec<u8>> = (0..N)
        .map(|idx| encode_jpeg(&smooth_frame(idx, w, h, 3), w, h))
        .collect();
    let port = free_port().to_string();
    let bgr_caps = gst_video::VideoCapsBuilder::new()
        .format(VideoFormat::Bgr)
        .build();
    let receiver = Receiver::with_caps(
        &[("port", &port), ("address", "127.0.0.1"), ("pattern", "1")],
        Some(&bgr_caps),
    );
    receiver.play();
    let jpeg_caps = gst::Caps::builder("image/jpeg")
        .field("width", w as i32)
        .field("height", h as i32)
        .build();
    let sender = Sender::new(
        &jpeg_caps,
        &[("port", &port), ("address", "127.0.0.1"), ("pattern", "1")],
    );
    sender.play();
    for (idx, jpeg) in jpegs.into_iter().enumerate() {
        sender.push_bytes(jpeg, idx as u64).unwrap();
    }
    sender.finish_expect_eos(Duration::from_secs(30));
    let (frames, eos) = receiver.collect(Duration::from_secs(5));
    assert!(eos, "no EOS");
    assert_eq!(frames.len(), N, "every frame arrives");
    for (idx, frame) in frames.iter().enumerate() {
        let packed = frame.packed();
        assert_eq!(
            closest_sent(&packed, idx, N, w, h),
            idx,
            "frame {idx} out of order"
        );
        let p = psnr(&packed, &smooth_frame(idx, w, h, 3));
        assert!(p >= 30.0, "frame {idx}: PSNR {p:.1} dB");
    }
    // Each frame keeps its own arrival time, also the one received ahead of the other.
    let stamps: Vec<_> = frames.iter().map(|f| f.pts.expect("a timestamp")).collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    let stats = receiver.stats();
    let overlapped = stats.get::<u64>("parallel-decodes").unwrap();
    assert!(
        overlapped >= 5,
        "decodes overlapped with receiving: {stats}"
    );
    assert_eq!(stats.get::<u64>("dropped").unwrap(), 0);
}

/// vidgear's 720p JPEG sender, as fast as it goes: every frame in order whichever way the
/// source decodes them.
#[test]
fn vidgear_720p_jpeg_at_full_speed_arrives_in_order() {
    init();
    const N: usize = 30;
    let (w, h) = (1280usize, 720usize);
    let port = free_port();
    let bgr_caps = gst_video::VideoCapsBuilder::new()
        .format(VideoFormat::Bgr)
        .build();
    let receiver = Receiver::with_caps(
        &[("port", &port.to_string()), ("address", "127.0.0.1")],
        Some(&bgr_caps),
    );
    receiver.play();
    let args = sender_args(w, h, 3, N, Some("BGR"));
    let mut peer = Peer::start(&peer_args("send", port, 0, &args));
    let (frames, eos) = receiver.collect(Duration::from_secs(20));
    peer.report(Duration::from_secs(10));
    assert!(eos);
    assert_eq!(frames.len(), N);
    for (idx, frame) in frames.iter().enumerate() {
        assert_eq!(
            closest_sent(&frame.packed(), idx, N, w, h),
            idx,
            "frame {idx}"
        );
    }
}
