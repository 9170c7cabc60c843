// SPDX-License-Identifier: MPL-2.0
//! Returned frames against the real vidgear: a vidgear sender (bidirectional, patterns 0
//! and 1) sends 40 frames at 30 fps to `netgearsrc`, whose `return` pad gets a new frame
//! at 10 fps. Like vidgear's `return_data`, the latest frame goes back with every reply
//! (raw byte for byte, or JPEG that vidgear decodes); `return-once` keeps the old way.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const W: usize = 64;
const H: usize = 48;
/// The return branch's pace: slower than the sender's 30 fps.
const RETURN_INTERVAL: Duration = Duration::from_millis(100);

/// What the return branch sends back: frame k of a sequence.
#[derive(Clone, Copy, PartialEq)]
enum Content {
    /// `test_frame(k)`, checked byte for byte.
    Exact,
    /// `smooth_frame(k)`, for JPEG (identified by PSNR).
    Smooth,
}

/// `netgearsrc bidirectional=true` with an appsrc feeding its `return` pad.
struct Returner {
    pipeline: gst::Pipeline,
    back: gst_app::AppSrc,
}

impl Returner {
    fn new(port: u16, pattern: u8, props: &str) -> Returner {
        let pipeline = launch(&format!(
            "netgearsrc name=src port={port} address=127.0.0.1 pattern={pattern} bidirectional=true {props} \
             ! fakesink sync=false \
             appsrc name=back format=time is-live=true \
               caps=video/x-raw,format=BGR,width={W},height={H},framerate=0/1 ! src.return"
        ));
        let back = pipeline
            .by_name("back")
            .expect("appsrc")
            .downcast::<gst_app::AppSrc>()
            .expect("an appsrc");
        pipeline.set_state(gst::State::Playing).expect("playing");
        Returner { pipeline, back }
    }

    /// Pushes frame 0, 1, 2, … every RETURN_INTERVAL until `running` goes false.
    fn feed(&self, content: Content, running: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
        let back = self.back.clone();
        let info = video_info(VideoFormat::Bgr, W as u32, H as u32);
        std::thread::spawn(move || {
            let mut k = 0;
            while running.load(Ordering::SeqCst) {
                let packed = match content {
                    Content::Exact => test_frame(k, W, H, 3, false),
                    Content::Smooth => smooth_frame(k, W, H, 3),
                };
                let buffer = gst::Buffer::from_mut_slice(to_gst_layout(&packed, &info));
                if back.push_buffer(buffer).is_err() {
                    break;
                }
                k += 1;
                std::thread::sleep(RETURN_INTERVAL);
            }
        })
    }
}

impl Drop for Returner {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Runs a paced vidgear sender against a returning source; what each send() returned.
fn exchange(pattern: u8, props: &str, content: Content) -> Vec<Value> {
    let port = free_port();
    let returner = Returner::new(port, pattern, props);
    let running = Arc::new(AtomicBool::new(true));
    let feeder = returner.feed(content, running.clone());
    let returned = match content {
        Content::Exact => "raw",
        Content::Smooth => "smooth",
    };
    let mut peer = Peer::modes(&script_args(
        "paced-send",
        &[
            ("port", port.to_string()),
            ("pattern", pattern.to_string()),
            ("frames", "40".into()),
            ("fps", "30".into()),
            ("returned", returned.into()),
        ],
    ));
    let report = peer.report(Duration::from_secs(30));
    running.store(false, Ordering::SeqCst);
    feeder.join().expect("feeder");
    let returns = report["returns"].as_array().expect("returns").clone();
    assert_eq!(returns.len(), 40, "pattern {pattern}: {report}");
    returns
}

/// The returned frames' indices, from the first frame on (None: a reply without one).
fn indices_from_first(returns: &[Value]) -> Vec<Option<u64>> {
    returns
        .iter()
        .skip_while(|r| r.is_null())
        .map(|r| r.get("index").and_then(Value::as_u64))
        .collect()
}

fn assert_every_reply_has_a_frame(pattern: u8, returns: &[Value]) -> Vec<u64> {
    let indices = indices_from_first(returns);
    assert!(
        indices.len() >= 30,
        "pattern {pattern}: the first frame came late: {returns:?}"
    );
    let indices: Vec<u64> = indices
        .into_iter()
        .map(|i| {
            i.unwrap_or_else(|| panic!("pattern {pattern}: a reply without a frame: {returns:?}"))
        })
        .collect();
    assert!(
        indices.windows(2).all(|w| w[0] <= w[1]),
        "pattern {pattern}: frames out of order: {indices:?}"
    );
    let mut distinct = indices.clone();
    distinct.dedup();
    // 40 frames at 30 fps span 1.3 s: a new returned frame every 100 ms replaces the old.
    assert!(
        distinct.len() >= 5 && distinct.len() < indices.len(),
        "pattern {pattern}: frames neither repeated nor replaced: {indices:?}"
    );
    indices
}

#[test]
fn every_reply_carries_the_latest_returned_frame() {
    for pattern in [1u8, 0] {
        let returns = exchange(pattern, "", Content::Exact);
        assert_every_reply_has_a_frame(pattern, &returns);
        for r in returns.iter().filter(|r| !r.is_null()) {
            assert_eq!(r["shape"], serde_json::json!([H, W, 3]), "{r}");
            assert_eq!(r["dtype"], "uint8", "{r}");
            assert_eq!(
                r["exact"], true,
                "pattern {pattern}: raw return differs: {r}"
            );
        }
    }
}

#[test]
fn returned_frames_can_be_jpeg_that_vidgear_decodes() {
    for pattern in [1u8, 0] {
        let returns = exchange(pattern, "return-jpeg=true", Content::Smooth);
        assert_every_reply_has_a_frame(pattern, &returns);
        for r in returns.iter().filter(|r| !r.is_null()) {
            assert_eq!(r["shape"], serde_json::json!([H, W, 3]), "{r}");
            let psnr = r["psnr"].as_f64().expect("psnr");
            // Lossy (so it was JPEG), and close to the frame sent back.
            assert!(
                psnr > 32.0 && psnr < 99.0,
                "pattern {pattern}: PSNR {psnr}: {r}"
            );
        }
    }
}

#[test]
fn return_jpeg_quality_is_applied() {
    let mean_psnr = |props: &str| {
        let returns = exchange(1, props, Content::Smooth);
        let psnrs: Vec<f64> = returns.iter().filter_map(|r| r["psnr"].as_f64()).collect();
        assert!(psnrs.len() >= 30, "{returns:?}");
        psnrs.iter().sum::<f64>() / psnrs.len() as f64
    };
    let high = mean_psnr("return-jpeg=true return-jpeg-quality=95");
    let low = mean_psnr("return-jpeg=true return-jpeg-quality=10 return-jpeg-fastdct=false");
    assert!(
        low + 5.0 < high,
        "quality 10 gave {low} dB, quality 95 {high} dB"
    );
}

#[test]
fn return_once_sends_each_frame_with_one_reply() {
    for pattern in [1u8, 0] {
        let returns = exchange(pattern, "return-once=true", Content::Exact);
        let indices = indices_from_first(&returns);
        let frames: Vec<u64> = indices.iter().flatten().copied().collect();
        let nones = indices.iter().filter(|i| i.is_none()).count();
        // 30 fps against a new frame every 100 ms: replies in between carry return-data
        // (None, as vidgear's send() gives it).
        assert!(nones >= 10, "pattern {pattern}: {indices:?}");
        assert!(
            frames.windows(2).all(|w| w[0] < w[1]),
            "pattern {pattern}: a frame went back twice: {indices:?}"
        );
        assert!(frames.len() >= 5, "pattern {pattern}: {indices:?}");
    }
}
