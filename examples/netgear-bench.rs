// SPDX-License-Identifier: MPL-2.0
//! Benchmark driver for scripts/bench (not a test). Each mode prints one JSON line.
//!
//!   netgear-bench run --pipeline DESC [--probe NAME] [--frames N] [--times OUT]
//!       gst::parse::launch(DESC) as a user's gst-launch-1.0 would; records when each
//!       buffer reaches the sink pad of the element NAME (default `out`), prints READY once
//!       PLAYING, FIRST at the first buffer, and at the end (N buffers, EOS or error) the
//!       count and the rate from the first to the last buffer. --times writes one
//!       CLOCK_MONOTONIC microsecond stamp per buffer (for one-way latency).
//!   netgear-bench send --port P --pattern N --frames N --width W --height H [--jpeg]
//!                      [--file F]
//!       the "ideal source": appsrc pushing pre-made BGR buffers ! netgearsink
//!   netgear-bench codec --width W --height H --frames N [--file F]
//!       libjpeg-turbo encode-only and decode-only rates (quality 90, 4:2:2, fast DCT)
//!   netgear-bench multiserver --servers 128 --frames 50 [--width 320 --height 240]
//!       that many multi-server sinks into one netgearsrc, in this process
use gst::prelude::*;
use netgear_protocol::jpeg::{Colorspace, DecodeParams, Decoder, EncodeParams, Encoder, Image};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args(Vec<String>);

impl Args {
    fn value(&self, name: &str, default: u64) -> u64 {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    fn text(&self, name: &str) -> Option<&str> {
        let i = self.0.iter().position(|a| a == name)?;
        self.0.get(i + 1).map(String::as_str)
    }

    fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }

    fn size(&self) -> (u32, u32) {
        (
            self.value("--width", 1920) as u32,
            self.value("--height", 1080) as u32,
        )
    }
}

/// Gradients plus noise: realistic work for JPEG (same recipe as benches/vidgear_bench.py).
fn frames(width: usize, height: usize, count: usize) -> Vec<Vec<u8>> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..count)
        .map(|idx| {
            let mut f = Vec::with_capacity(width * height * 3);
            for y in 0..height {
                for x in 0..width {
                    for c in 0..3 {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let t = (x * 2 + idx * 7 + y + c * 40) % 512;
                        let tri = if t < 256 { t } else { 511 - t };
                        f.push((tri * 15 / 16 + (state % 16) as usize) as u8);
                    }
                }
            }
            f
        })
        .collect()
}

/// Pre-made frames as GStreamer buffers (rows padded as GStreamer lays them out); pushing a
/// shallow copy costs no copy of the pixels.
fn buffers(info: &gst_video::VideoInfo, count: usize) -> Vec<gst::Buffer> {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = info.stride()[0] as usize;
    frames(w, h, count)
        .into_iter()
        .map(|f| {
            let mut data = vec![0u8; info.size()];
            for (src, dst) in f.chunks(w * 3).zip(data.chunks_mut(stride)) {
                dst[..src.len()].copy_from_slice(src);
            }
            gst::Buffer::from_mut_slice(data)
        })
        .collect()
}

/// Frames per second between the first and the last of a series of microsecond stamps.
fn rate(t: &[i64]) -> f64 {
    match (t.first(), t.last()) {
        (Some(a), Some(b)) if t.len() > 1 && b > a => (t.len() - 1) as f64 * 1e6 / (b - a) as f64,
        _ => 0.0,
    }
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

fn launch(description: &str) -> gst::Pipeline {
    gst::parse::launch(description)
        .expect("pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

fn appsrc(pipeline: &gst::Pipeline, info: &gst_video::VideoInfo) -> gst_app::AppSrc {
    let appsrc = pipeline
        .by_name("in")
        .expect("appsrc")
        .downcast::<gst_app::AppSrc>()
        .expect("appsrc");
    appsrc.set_caps(Some(&info.to_caps().expect("caps")));
    appsrc.set_max_bytes(info.size() as u64 * 4);
    appsrc.set_block(true);
    appsrc
}

/// CLOCK_MONOTONIC stamps (µs) of the buffers that reached a pad, shared with its probe.
type Stamps = Arc<Mutex<Vec<i64>>>;

/// Stamps each buffer reaching `pad` (g_get_monotonic_time: CLOCK_MONOTONIC, the clock
/// Python's time.monotonic_ns() reads, so stamps from two processes compare) and prints
/// FIRST at the first one, when the parent samples every side's CPU time.
fn record(pad: &gst::Pad) -> Stamps {
    let stamps: Stamps = Arc::default();
    let seen = stamps.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        let now = gst::glib::monotonic_time();
        if let Ok(mut t) = seen.lock() {
            t.push(now);
            if t.len() == 1 {
                println!("FIRST");
            }
        }
        gst::PadProbeReturn::Ok
    });
    stamps
}

/// Waits until `count` buffers were stamped, the stream ended, or two minutes passed.
fn wait_for(pipeline: &gst::Pipeline, stamps: &Mutex<Vec<i64>>, count: u64) {
    let bus = pipeline.bus().expect("bus");
    let deadline = Instant::now() + Duration::from_secs(120);
    while stamps
        .lock()
        .map(|t| (t.len() as u64) < count)
        .unwrap_or(false)
        && Instant::now() < deadline
    {
        let ended = [gst::MessageType::Eos, gst::MessageType::Error];
        if let Some(msg) = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(50), &ended) {
            if let gst::MessageView::Error(e) = msg.view() {
                eprintln!("error: {} {:?}", e.error(), e.debug());
            }
            break;
        }
    }
}

fn write_stamps(path: Option<&str>, stamps: &[i64]) {
    if let Some(path) = path {
        let text: Vec<String> = stamps.iter().map(i64::to_string).collect();
        std::fs::write(path, text.join("\n")).expect("times file");
    }
}

/// A gst-launch-style pipeline, stamped at one element's sink pad.
fn run(args: &Args) {
    let description = args.text("--pipeline").expect("--pipeline");
    let probe = args.text("--probe").unwrap_or("out");
    let n = args.value("--frames", u64::MAX);
    let pipeline = launch(description);
    let pad = pipeline
        .by_name(probe)
        .expect("probed element")
        .static_pad("sink")
        .expect("sink pad");
    let stamps = record(&pad);
    pipeline.set_state(gst::State::Playing).expect("playing");
    println!("READY");
    wait_for(&pipeline, &stamps, n);
    let _ = pipeline.set_state(gst::State::Null);
    let t = stamps.lock().expect("stamps");
    write_stamps(args.text("--times"), &t);
    println!("{{\"frames\": {}, \"fps\": {:.1}}}", t.len(), rate(&t));
}

fn codec(args: &Args) {
    let (w, h) = args.size();
    let (w, h, n) = (w as usize, h as usize, args.value("--frames", 200) as usize);
    // The very frame the pipelines send, when given; else generated ones.
    let inputs = match args.text("--file") {
        Some(path) => vec![std::fs::read(path).expect("frame file")],
        None => frames(w, h, 4),
    };
    let colorspace = Colorspace::from_name("BGR").expect("BGR");
    let mut encoder = Encoder::new().expect("encoder");
    let mut decoder = Decoder::new().expect("decoder");
    let params = EncodeParams {
        quality: 90,
        fast_dct: true,
    };
    let mut jpegs = vec![Vec::new(); inputs.len()];
    let start = Instant::now();
    for i in 0..n {
        let image = Image {
            pixels: &inputs[i % inputs.len()],
            width: w,
            height: h,
            pitch: w * 3,
            colorspace,
        };
        encoder
            .encode(image, params, &mut jpegs[i % inputs.len()])
            .expect("encode");
    }
    let encode_fps = n as f64 / start.elapsed().as_secs_f64();
    let mut out = vec![0u8; w * h * 3];
    let info = decoder.info(&jpegs[0]).expect("info");
    let start = Instant::now();
    for i in 0..n {
        let params = DecodeParams {
            fast_dct: true,
            fast_upsample: false,
        };
        decoder
            .decode(
                &jpegs[i % jpegs.len()],
                info,
                colorspace,
                w * 3,
                params,
                &mut out,
            )
            .expect("decode");
    }
    let decode_fps = n as f64 / start.elapsed().as_secs_f64();
    let bytes = jpegs.iter().map(Vec::len).sum::<usize>() / jpegs.len();
    println!("{{\"encode_fps\": {encode_fps:.1}, \"decode_fps\": {decode_fps:.1}, \"jpeg_bytes\": {bytes}}}");
}

/// The ideal source: pre-made buffers from an appsrc, no per-frame source cost.
fn send(args: &Args) {
    let (port, pattern, n) = (
        args.value("--port", 5555),
        args.value("--pattern", 0),
        args.value("--frames", 300),
    );
    let (w, h) = args.size();
    let jpeg = args.flag("--jpeg");
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Bgr, w, h)
        .fps(gst::Fraction::new(0, 1))
        .build()
        .expect("info");
    let pipeline = launch(&format!(
        "appsrc name=in format=time ! netgearsink name=out address=127.0.0.1 port={port} pattern={pattern} \
         jpeg-compression={jpeg} sync=false"
    ));
    let appsrc = appsrc(&pipeline, &info);
    // The very frame the other senders read from the file, when given.
    let buffers = match args.text("--file") {
        Some(path) => vec![gst::Buffer::from_mut_slice(
            std::fs::read(path).expect("frame file"),
        )],
        None => buffers(&info, 8),
    };
    pipeline.set_state(gst::State::Playing).expect("playing");
    for i in 0..n as usize {
        let mut b = buffers[i % buffers.len()].copy();
        b.get_mut()
            .expect("writable")
            .set_pts(gst::ClockTime::from_mseconds(i as u64));
        if appsrc.push_buffer(b).is_err() {
            break;
        }
    }
    let _ = appsrc.end_of_stream();
    let bus = pipeline.bus().expect("bus");
    let _ = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(120),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = pipeline.set_state(gst::State::Null);
    println!("{{\"sent\": {n}}}");
}

/// `servers` senders (multi-server) into one source, all in this process.
fn multiserver(args: &Args) {
    let (servers, n) = (
        args.value("--servers", 128) as usize,
        args.value("--frames", 50) as usize,
    );
    let (w, h) = (
        args.value("--width", 320) as u32,
        args.value("--height", 240) as u32,
    );
    let mut ports = Vec::new();
    while ports.len() < servers {
        let p = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    let list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let receiver = launch(&format!(
        "netgearsrc address=127.0.0.1 ports={list} multi-server=true pattern=1 ! fakesink name=out sync=false"
    ));
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let out = receiver.by_name("out").expect("fakesink");
    out.static_pad("sink")
        .expect("pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            seen.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    receiver.set_state(gst::State::Playing).expect("playing");
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Bgr, w, h)
        .build()
        .expect("info");
    let frame = gst::Buffer::from_mut_slice(vec![128u8; info.size()]);
    let senders: Vec<(gst::Pipeline, gst_app::AppSrc)> = ports
        .iter()
        .map(|p| {
            let pipeline = launch(&format!(
                "appsrc name=in format=time ! netgearsink address=127.0.0.1 port={p} pattern=1 multi-server=true \
                 jpeg-compression=false sync=false"
            ));
            let appsrc = appsrc(&pipeline, &info);
            pipeline.set_state(gst::State::Playing).expect("playing");
            (pipeline, appsrc)
        })
        .collect();
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    // One memory per sender: GStreamer counts concurrent maps of one memory in 8 bits, and
    // 128 sinks each holding a lent frame would overflow it if all shared one memory.
    let frames: Vec<gst::Buffer> = senders
        .iter()
        .map(|_| frame.copy_deep().expect("copy"))
        .collect();
    for i in 0..n {
        for ((_, appsrc), frame) in senders.iter().zip(&frames) {
            let mut b = frame.copy();
            b.get_mut()
                .expect("writable")
                .set_pts(gst::ClockTime::from_mseconds(i as u64));
            let _ = appsrc.push_buffer(b);
        }
    }
    let expected = servers * n;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    let got = count.load(Ordering::Relaxed);
    for (pipeline, _) in &senders {
        let _ = pipeline.set_state(gst::State::Null);
    }
    let _ = receiver.set_state(gst::State::Null);
    println!(
        "{{\"servers\": {servers}, \"frames\": {got}, \"expected\": {expected}, \"fps\": {:.1}, \"cpu_percent\": {:.0}}}",
        got as f64 / elapsed,
        100.0 * cpu / elapsed
    );
}

fn main() {
    gst::init().expect("gst");
    gstnetgear::plugin_register_static().expect("plugin");
    let args = Args(std::env::args().skip(1).collect());
    match args.0.first().map(String::as_str) {
        Some("codec") => codec(&args),
        Some("run") => run(&args),
        Some("send") => send(&args),
        Some("multiserver") => multiserver(&args),
        _ => eprintln!("usage: netgear-bench run|send|codec|multiserver [options]"),
    }
}
