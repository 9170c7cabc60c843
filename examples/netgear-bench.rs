//! Benchmark driver for scripts/bench (not a test). Each mode prints one JSON line.
//!
//!   netgear-bench codec --width W --height H --frames N
//!       libjpeg-turbo encode-only and decode-only rates (quality 90, 4:2:2, fast DCT)
//!   netgear-bench recv --port P --pattern N --frames N [--decode]
//!       netgearsrc ! fakesink; frames/s between the first and the last frame
//!   netgear-bench send --port P --pattern N --frames N --width W --height H [--jpeg]
//!       appsrc (pre-made BGR frames) ! netgearsink
//!   netgear-bench multiserver --servers 128 --frames 50 [--width 320 --height 240]
//!       that many multi-server sinks into one netgearsrc, in this process
use gst::prelude::*;
use gstnetgear::jpeg::{Colorspace, DecodeParams, Decoder, EncodeParams, Encoder, Image};
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

    fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
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

/// Frames per second between the first and the last of a series of instants.
fn rate(t: &[Instant]) -> f64 {
    match (t.first(), t.last()) {
        (Some(a), Some(b)) if t.len() > 1 => {
            (t.len() - 1) as f64 / b.duration_since(*a).as_secs_f64()
        }
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

fn codec(args: &Args) {
    let (w, h, n) = (
        args.value("--width", 1920) as usize,
        args.value("--height", 1080) as usize,
        args.value("--frames", 200) as usize,
    );
    let inputs = frames(w, h, 4);
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

fn recv(args: &Args) {
    let (port, pattern, n) = (
        args.value("--port", 5555),
        args.value("--pattern", 0),
        args.value("--frames", 300),
    );
    // video/x-raw makes the source decode JPEG itself, as vidgear's receiver does.
    let caps = if args.flag("--decode") {
        "! video/x-raw "
    } else {
        ""
    };
    let pipeline = gst::parse::launch(&format!(
        "netgearsrc address=127.0.0.1 port={port} pattern={pattern} timeout=5000 {caps}! fakesink name=out sync=false"
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let sink = pipeline.by_name("out").expect("fakesink");
    let pad = sink.static_pad("sink").expect("pad");
    let seen = times.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if let Ok(mut t) = seen.lock() {
            t.push(Instant::now());
        }
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).expect("playing");
    println!("READY");
    let bus = pipeline.bus().expect("bus");
    let cpu_start = cpu_seconds();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            if let gst::MessageView::Error(e) = msg.view() {
                eprintln!("receiver error: {} {:?}", e.error(), e.debug());
            }
            break;
        }
        if times.lock().map(|t| t.len() as u64 >= n).unwrap_or(true) || Instant::now() > deadline {
            break;
        }
    }
    let cpu = cpu_seconds() - cpu_start;
    let _ = pipeline.set_state(gst::State::Null);
    let t = times.lock().expect("times");
    println!(
        "{{\"frames\": {}, \"fps\": {:.1}, \"cpu_s\": {cpu:.2}}}",
        t.len(),
        rate(&t)
    );
}

fn send(args: &Args) {
    let (port, pattern, n) = (
        args.value("--port", 5555),
        args.value("--pattern", 0),
        args.value("--frames", 300),
    );
    let (w, h) = (
        args.value("--width", 1920) as u32,
        args.value("--height", 1080) as u32,
    );
    let jpeg = args.flag("--jpeg");
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Bgr, w, h)
        .fps(gst::Fraction::new(0, 1))
        .build()
        .expect("info");
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=in format=time ! netgearsink address=127.0.0.1 port={port} pattern={pattern} jpeg-compression={jpeg} sync=false"
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let appsrc = pipeline
        .by_name("in")
        .expect("appsrc")
        .downcast::<gst_app::AppSrc>()
        .expect("appsrc");
    appsrc.set_caps(Some(&info.to_caps().expect("caps")));
    appsrc.set_max_bytes(info.size() as u64 * 4);
    appsrc.set_block(true);
    // Pre-made buffers in GStreamer's layout; pushing a clone costs no copy.
    let stride = info.stride()[0] as usize;
    let buffers: Vec<gst::Buffer> = frames(w as usize, h as usize, 8)
        .into_iter()
        .map(|f| {
            let mut data = vec![0u8; info.size()];
            for (src, dst) in f.chunks(w as usize * 3).zip(data.chunks_mut(stride)) {
                dst[..src.len()].copy_from_slice(src);
            }
            gst::Buffer::from_mut_slice(data)
        })
        .collect();
    // Render is serialized: the gap between two buffers reaching the sink is one frame's
    // send (and, in patterns 0/1, its acknowledgement). Same measure as the Python side.
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = times.clone();
    let sink = pipeline
        .iterate_sinks()
        .next()
        .ok()
        .flatten()
        .expect("netgearsink");
    sink.static_pad("sink")
        .expect("pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if let Ok(mut t) = seen.lock() {
                t.push(Instant::now());
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).expect("playing");
    if pattern == 2 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let cpu_start = cpu_seconds();
    let start = Instant::now();
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
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    let _ = pipeline.set_state(gst::State::Null);
    let t = times.lock().expect("times");
    let fps = rate(&t);
    println!(
        "{{\"sent\": {n}, \"fps\": {fps:.1}, \"seconds\": {elapsed:.3}, \"cpu_s\": {cpu:.2}}}"
    );
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
    let receiver = gst::parse::launch(&format!(
        "netgearsrc address=127.0.0.1 ports={list} multi-server=true pattern=1 ! fakesink name=out sync=false"
    ))
    .expect("receiver");
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    let out = receiver
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("out"))
        .expect("fakesink");
    out.static_pad("sink")
        .expect("pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    receiver.set_state(gst::State::Playing).expect("playing");
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Bgr, w, h)
        .build()
        .expect("info");
    let frame = gst::Buffer::from_mut_slice(vec![128u8; info.size()]);
    let senders: Vec<(gst::Element, gst_app::AppSrc)> = ports
        .iter()
        .map(|p| {
            let pipeline = gst::parse::launch(&format!(
                "appsrc name=in format=time ! netgearsink address=127.0.0.1 port={p} pattern=1 multi-server=true jpeg-compression=false sync=false"
            ))
            .expect("sender");
            let appsrc = pipeline
                .downcast_ref::<gst::Bin>()
                .and_then(|b| b.by_name("in"))
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .expect("appsrc");
            appsrc.set_caps(Some(&info.to_caps().expect("caps")));
            pipeline.set_state(gst::State::Playing).expect("playing");
            (pipeline, appsrc)
        })
        .collect();
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    for i in 0..n {
        for (_, appsrc) in &senders {
            let mut b = frame.copy();
            b.get_mut()
                .expect("writable")
                .set_pts(gst::ClockTime::from_mseconds(i as u64));
            let _ = appsrc.push_buffer(b);
        }
    }
    let expected = servers * n;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count.load(std::sync::atomic::Ordering::Relaxed) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    let got = count.load(std::sync::atomic::Ordering::Relaxed);
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
        Some("recv") => recv(&args),
        Some("send") => send(&args),
        Some("multiserver") => multiserver(&args),
        _ => eprintln!("usage: netgear-bench codec|recv|send [options]"),
    }
}
