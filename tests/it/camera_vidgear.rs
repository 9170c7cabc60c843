// SPDX-License-Identifier: MPL-2.0
//! Camera formats straight into `netgearsink` (issue 21), against a real vidgear receiver:
//! every YUV format links without `videoconvert`, and vidgear's `recv()` returns every frame
//! as BGR (h, w, 3): JPEG within 2 dB PSNR of what the same frames reach through
//! `videoconvert ! netgearsink`, raw (converted inside the sink) at 38 dB or more against
//! `videoconvert`'s BGR. Both measured against the same reference, `videoconvert`'s BGR of
//! the same frames; in SD (BT.601 by default), HD (BT.709 by default) and explicitly full
//! range; encoded in series and by the encoder pool; and into our own `netgearsrc`.
//!
//! The frames are camera-like (colour gradients with sensor noise, in gamut), made in each
//! format by `videoconvert` once and sent by `multifilesrc` with caps that name no
//! colorimetry unless the case does.

use crate::common::*;
use gst::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every camera format the sink takes.
const FORMATS: &[&str] = &[
    "YUY2", "UYVY", "YVYU", "NV12", "NV21", "I420", "YV12", "NV16", "NV61", "Y42B", "NV24", "Y444",
];
const FRAMES: usize = 3;
/// What JPEG straight from the planes may lose against the `videoconvert` path.
const JPEG_SLACK_DB: f64 = 2.0;
/// How close the sink's own conversion of raw frames comes to `videoconvert`'s.
const RAW_DB: f64 = 38.0;

/// A temporary directory, removed with everything in it.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "netgear-camera-{}-{tag}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Colour gradients with a little noise, as a camera sees a scene: BGR rows packed tight.
fn scene(width: usize, height: usize) -> Vec<u8> {
    let mut noise = 0x2545_f491_u32;
    let mut out = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            for c in 0..3 {
                noise ^= noise << 13;
                noise ^= noise >> 17;
                noise ^= noise << 5;
                let t = (x * 2 + y + c * 40) % 512;
                let tri = if t < 256 { t } else { 511 - t };
                out.push((tri * 13 / 16 + 16 + (noise % 16) as usize) as u8);
            }
        }
    }
    out
}

fn launch(description: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(description)
        .unwrap_or_else(|e| panic!("{description}: {e}"))
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

/// Runs a pipeline to its end.
fn run(description: &str) {
    let pipeline = launch(description);
    pipeline.set_state(gst::State::Playing).expect("playing");
    let outcome = wait_end(&pipeline, Duration::from_secs(60));
    pipeline.set_state(gst::State::Null).expect("null");
    assert!(
        matches!(outcome, Outcome::Eos),
        "{description}: {outcome:?}"
    );
}

/// A camera: the scene in `format`, sent with the caps' colorimetry (or none: GStreamer's
/// default for the size).
struct Camera {
    format: &'static str,
    width: usize,
    height: usize,
    colorimetry: Option<&'static str>,
    frame: PathBuf,
}

impl Camera {
    /// Makes the camera's frame in `dir` with `videoconvert`.
    fn new(
        dir: &TempDir,
        format: &'static str,
        (width, height): (usize, usize),
        colorimetry: Option<&'static str>,
    ) -> Camera {
        let bgr = dir.path(&format!("scene-{width}x{height}.bgr"));
        let info = video_info(gst_video::VideoFormat::Bgr, width as u32, height as u32);
        std::fs::write(&bgr, to_gst_layout(&scene(width, height), &info)).expect("scene");
        let camera = Camera {
            format,
            width,
            height,
            colorimetry,
            frame: dir.path(&format!("{format}-{width}x{height}.yuv")),
        };
        run(&format!(
            "filesrc location={} ! rawvideoparse format=bgr width={width} height={height} \
             framerate=30/1 ! \
             videoconvert ! {} ! filesink location={}",
            bgr.display(),
            camera.caps(),
            camera.frame.display()
        ));
        camera
    }

    fn caps(&self) -> String {
        let colorimetry = self
            .colorimetry
            .map_or(String::new(), |c| format!(",colorimetry={c}"));
        format!(
            "video/x-raw,format={},width={},height={},framerate=30/1{colorimetry}",
            self.format, self.width, self.height
        )
    }

    fn launch(&self) -> String {
        format!(
            "multifilesrc location={} loop=true num-buffers={FRAMES} ! {}",
            self.frame.display(),
            self.caps()
        )
    }

    fn frame_bytes(&self) -> usize {
        self.width * self.height * 3
    }

    fn what(&self) -> String {
        let colorimetry = self.colorimetry.unwrap_or("default colorimetry");
        format!(
            "{} {}x{} ({colorimetry})",
            self.format, self.width, self.height
        )
    }

    /// The reference: `videoconvert`'s BGR of the same frames, rows packed tight.
    fn reference(&self) -> Vec<u8> {
        let pipeline = launch(&format!(
            "{} ! videoconvert ! video/x-raw,format=BGR ! appsink name=out sync=false",
            self.launch()
        ));
        let appsink = pipeline
            .by_name("out")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .expect("appsink");
        pipeline.set_state(gst::State::Playing).expect("playing");
        let mut bytes = Vec::new();
        for _ in 0..FRAMES {
            let sample = appsink
                .try_pull_sample(gst::ClockTime::from_seconds(20))
                .unwrap_or_else(|| panic!("{}: no reference frame", self.what()));
            let info = gst_video::VideoInfo::from_caps(sample.caps().expect("caps")).expect("info");
            let map = sample
                .buffer()
                .expect("buffer")
                .map_readable()
                .expect("map");
            bytes.extend(from_gst_layout(&map, &info));
        }
        pipeline.set_state(gst::State::Null).expect("null");
        bytes
    }
}

/// tests/python/netgear_camera.py: a vidgear receiver taking streams one after another,
/// each on a port of its own.
struct Vidgear {
    peer: Peer,
    ports: Vec<u16>,
    stream: usize,
    out: PathBuf,
}

impl Vidgear {
    fn start(streams: usize, out: &Path) -> Vidgear {
        init();
        let ports: Vec<u16> = (0..streams).map(|_| free_port()).collect();
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        let args = [
            "--ports".to_owned(),
            list.join(","),
            "--out".to_owned(),
            out.to_string_lossy().into_owned(),
        ];
        Vidgear {
            peer: Peer::script("netgear_camera.py", &args),
            ports,
            stream: 0,
            out: out.to_owned(),
        }
    }

    fn line(&self) -> String {
        self.peer
            .line(Duration::from_secs(60))
            .expect("a line from the vidgear receiver")
    }

    /// Sends `camera`'s frames through `middle` (elements before the sink) into
    /// `netgearsink sink_props`; returns vidgear's report and the frames' bytes.
    fn receive(&mut self, camera: &Camera, middle: &str, sink_props: &str) -> (Value, Vec<u8>) {
        assert_eq!(self.line(), "READY", "receiver not ready");
        run(&format!(
            "{} {middle} ! netgearsink address=127.0.0.1 port={} sync=false {sink_props}",
            camera.launch(),
            self.ports[self.stream]
        ));
        let report: Value = serde_json::from_str(&self.line()).expect("a JSON report");
        assert_eq!(report["stream"], self.stream);
        let path = self.out.join(format!("stream-{}.bin", self.stream));
        self.stream += 1;
        (report, std::fs::read(path).expect("the frames vidgear got"))
    }
}

/// Every frame arrived as a (h, w, 3) uint8 array.
fn assert_bgr_frames(camera: &Camera, report: &Value, bytes: &[u8], path: &str) {
    let shape = format!("([{}, {}, 3], 'uint8')", camera.height, camera.width);
    let what = format!("{} {path}", camera.what());
    assert_eq!(report["frames"], FRAMES, "{what}: {report}");
    assert_eq!(report["shapes"], serde_json::json!([shape]), "{what}");
    assert_eq!(bytes.len(), FRAMES * camera.frame_bytes(), "{what}");
}

/// JPEG straight from the planes loses at most [`JPEG_SLACK_DB`] against the
/// `videoconvert` path.
fn assert_jpeg_close(camera: &Camera, straight: f64, through_convert: f64) {
    assert!(
        straight >= through_convert - JPEG_SLACK_DB,
        "{}: JPEG from the planes {straight:.2} dB, through videoconvert {through_convert:.2} dB",
        camera.what()
    );
}

/// For each format: JPEG through `videoconvert`, JPEG straight from the planes (with
/// `jpeg_threads`), raw straight in; each against the reference.
fn check_formats(
    formats: &[&'static str],
    size: (usize, usize),
    colorimetry: Option<&'static str>,
    jpeg_threads: u32,
) {
    let dir = TempDir::new("vidgear");
    let mut vidgear = Vidgear::start(3 * formats.len(), &dir.0);
    for &format in formats {
        let camera = Camera::new(&dir, format, size, colorimetry);
        let reference = camera.reference();
        let convert = "! videoconvert ! video/x-raw,format=BGR";
        let (report, converted) = vidgear.receive(&camera, convert, "");
        assert_bgr_frames(&camera, &report, &converted, "through videoconvert");
        let threads = format!("jpeg-threads={jpeg_threads}");
        let (report, direct) = vidgear.receive(&camera, "", &threads);
        assert_bgr_frames(&camera, &report, &direct, "JPEG");
        let (report, raw) = vidgear.receive(&camera, "", "jpeg-compression=false");
        assert_bgr_frames(&camera, &report, &raw, "raw");
        let (through_convert, straight) = (psnr(&converted, &reference), psnr(&direct, &reference));
        assert_jpeg_close(&camera, straight, through_convert);
        let raw = psnr(&raw, &reference);
        assert!(raw >= RAW_DB, "{}: raw {raw:.2} dB", camera.what());
        eprintln!(
            "{}: JPEG {straight:.2} dB (through videoconvert {through_convert:.2} dB), raw {raw:.2} dB",
            camera.what()
        );
    }
}

#[test]
fn every_camera_format_reaches_vidgear_as_bgr_in_sd_encoded_in_series() {
    check_formats(FORMATS, (640, 480), None, 1);
}

#[test]
fn every_camera_format_reaches_vidgear_as_bgr_in_hd_through_the_encoder_pool() {
    check_formats(FORMATS, (1280, 720), None, 2);
}

#[test]
fn full_range_caps_keep_their_colours() {
    // JFIF's own (full-range BT.601): encoded without a transform, I420 read in place.
    check_formats(&["YUY2", "NV12", "I420"], (640, 480), Some("1:4:0:0"), 1);
    check_formats(&["YUY2", "NV12"], (1280, 720), Some("1:3:5:1"), 2);
}

#[test]
fn odd_sizes_are_encoded_whole() {
    check_formats(&["YUY2", "NV12", "I420", "Y444"], (321, 241), None, 1);
}

#[test]
fn netgearsrc_receives_camera_formats_as_bgr() {
    let dir = TempDir::new("netgearsrc");
    for format in ["YUY2", "NV12"] {
        let camera = Camera::new(&dir, format, (1280, 720), None);
        let reference = camera.reference();
        let through = |middle: &str| {
            let port = free_port();
            let receiver = Receiver::launch(&format!(
                "netgearsrc name=src address=127.0.0.1 port={port} ! video/x-raw,format=BGR ! \
                 appsink name=out"
            ));
            receiver.play();
            run(&format!(
                "{} {middle} ! netgearsink address=127.0.0.1 port={port} sync=false",
                camera.launch()
            ));
            let (frames, _) = receiver.collect(Duration::from_secs(5));
            assert_eq!(frames.len(), FRAMES, "{}", camera.what());
            frames.iter().flat_map(Frame::packed).collect::<Vec<u8>>()
        };
        let converted = through("! videoconvert ! video/x-raw,format=BGR");
        let direct = through("");
        assert_jpeg_close(
            &camera,
            psnr(&direct, &reference),
            psnr(&converted, &reference),
        );
    }
}
