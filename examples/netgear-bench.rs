//! Benchmark driver for scripts/bench (not a test). Each mode prints one JSON line.
//!
//!   netgear-bench codec --width W --height H --frames N
//!       libjpeg-turbo encode-only and decode-only rates (quality 90, 4:2:2, fast DCT)
//!   netgear-bench recv --port P --pattern N --frames N [--decode]
//!       netgearsrc ! fakesink; frames/s between the first and the last frame, CPU, and
//!       one-way latency percentiles when the sender stamps its frames
//!   netgear-bench send --port P --pattern N --frames N --width W --height H [--jpeg]
//!                      [--latency] [--fps F]
//!       appsrc (pre-made BGR frames) ! netgearsink; --latency stamps each frame's
//!       NetGearMeta message with its wall-clock send time (same machine, same clock)
//!   netgear-bench tcp-send|tcp-recv --port P --frames N --width W --height H
//!       GStreamer's own tcpserversink → tcpclientsrc ! rawvideoparse, for raw comparison
//!   netgear-bench multiserver --servers 128 --frames 50 [--width 320 --height 240]
//!       that many multi-server sinks into one netgearsrc, in this process
use gst::prelude::*;
use gstnetgear::jpeg::{Colorspace, DecodeParams, Decoder, EncodeParams, Encoder, Image};
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

/// Frames per second between the first and the last of a series of instants.
fn rate(t: &[Instant]) -> f64 {
    match (t.first(), t.last()) {
        (Some(a), Some(b)) if t.len() > 1 => {
            (t.len() - 1) as f64 / b.duration_since(*a).as_secs_f64()
        }
        _ => 0.0,
    }
}

/// Wall-clock nanoseconds, the same in both processes.
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
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

/// When buffers arrived, shared with a pad probe.
type Arrivals = Arc<Mutex<Vec<Instant>>>;
/// One-way latencies in milliseconds, shared with a pad probe.
type Latencies = Arc<Mutex<Vec<f64>>>;

/// Records when each buffer reaches a pad, and the latency its NetGearMeta stamp says.
fn record(pad: &gst::Pad) -> (Arrivals, Latencies) {
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let (seen, measured) = (times.clone(), latencies.clone());
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Ok(mut t) = seen.lock() {
            t.push(Instant::now());
        }
        let sent = info
            .buffer()
            .and_then(|b| gstnetgear::meta::read(b))
            .and_then(|m| m.message)
            .and_then(|m| m.parse::<u64>().ok());
        if let (Some(sent), Ok(mut l)) = (sent, measured.lock()) {
            l.push(now_ns().saturating_sub(sent) as f64 / 1e6);
        }
        gst::PadProbeReturn::Ok
    });
    (times, latencies)
}

/// Waits until `count` buffers were recorded, the stream ended, or two minutes passed.
fn wait_for(pipeline: &gst::Pipeline, times: &Mutex<Vec<Instant>>, count: u64) {
    let bus = pipeline.bus().expect("bus");
    let deadline = Instant::now() + Duration::from_secs(120);
    while times
        .lock()
        .map(|t| (t.len() as u64) < count)
        .unwrap_or(false)
        && Instant::now() < deadline
    {
        let ended = [gst::MessageType::Eos, gst::MessageType::Error];
        if let Some(msg) = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(50), &ended) {
            if let gst::MessageView::Error(e) = msg.view() {
                eprintln!("receiver error: {} {:?}", e.error(), e.debug());
            }
            break;
        }
    }
}

fn codec(args: &Args) {
    let (w, h) = args.size();
    let (w, h, n) = (w as usize, h as usize, args.value("--frames", 200) as usize);
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
    let pipeline = launch(&format!(
        "netgearsrc address=127.0.0.1 port={port} pattern={pattern} timeout=5000 {caps}! fakesink name=out sync=false"
    ));
    let pad = pipeline
        .by_name("out")
        .expect("fakesink")
        .static_pad("sink")
        .expect("pad");
    let (times, latencies) = record(&pad);
    pipeline.set_state(gst::State::Playing).expect("playing");
    println!("READY");
    let cpu_start = cpu_seconds();
    wait_for(&pipeline, &times, n);
    let cpu = cpu_seconds() - cpu_start;
    let _ = pipeline.set_state(gst::State::Null);
    let t = times.lock().expect("times");
    let mut l = latencies.lock().expect("latencies").clone();
    l.sort_by(f64::total_cmp);
    println!(
        "{{\"frames\": {}, \"fps\": {:.1}, \"cpu_s\": {cpu:.2}, \"latency_p50_ms\": {:.3}, \"latency_p99_ms\": {:.3}}}",
        t.len(),
        rate(&t),
        percentile(&l, 0.5),
        percentile(&l, 0.99)
    );
}

fn send(args: &Args) {
    let (port, pattern, n) = (
        args.value("--port", 5555),
        args.value("--pattern", 0),
        args.value("--frames", 300),
    );
    let (w, h) = args.size();
    let (jpeg, latency) = (args.flag("--jpeg"), args.flag("--latency"));
    let interval = match args.value("--fps", 0) {
        0 => None,
        fps => Some(Duration::from_secs_f64(1.0 / fps as f64)),
    };
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Bgr, w, h)
        .fps(gst::Fraction::new(0, 1))
        .build()
        .expect("info");
    let pipeline = launch(&format!(
        "appsrc name=in format=time ! netgearsink name=out address=127.0.0.1 port={port} pattern={pattern} \
         jpeg-compression={jpeg} sync=false"
    ));
    let appsrc = appsrc(&pipeline, &info);
    let buffers = buffers(&info, 8);
    // Render is serialized: the gap between two buffers reaching the sink is one frame's
    // send (and, in patterns 0/1, its acknowledgement). Same measure as the Python side.
    let pad = pipeline
        .by_name("out")
        .expect("netgearsink")
        .static_pad("sink")
        .expect("pad");
    let (times, _) = record(&pad);
    pipeline.set_state(gst::State::Playing).expect("playing");
    if pattern == 2 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    for i in 0..n as usize {
        if let Some(every) = interval {
            std::thread::sleep(
                (start + every * i as u32).saturating_duration_since(Instant::now()),
            );
        }
        let mut b = buffers[i % buffers.len()].copy();
        let b_mut = b.get_mut().expect("writable");
        b_mut.set_pts(gst::ClockTime::from_mseconds(i as u64));
        if latency {
            let stamp = gstnetgear::meta::NetGearInfo {
                message: Some(now_ns().to_string()),
                port: None,
            };
            gstnetgear::meta::attach(b_mut, &stamp);
        }
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
    let cpu = cpu_seconds() - cpu_start;
    let _ = pipeline.set_state(gst::State::Null);
    let fps = rate(&times.lock().expect("times"));
    println!("{{\"sent\": {n}, \"fps\": {fps:.1}, \"cpu_s\": {cpu:.2}}}");
}

/// GStreamer's tcpserversink with the same pre-made frames (waits for its client first).
fn tcp_send(args: &Args) {
    let (port, n) = (args.value("--port", 5555), args.value("--frames", 300));
    let (w, h) = args.size();
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Bgr, w, h)
        .build()
        .expect("info");
    let pipeline = launch(&format!(
        "appsrc name=in format=time ! tcpserversink name=out host=127.0.0.1 port={port} sync=false"
    ));
    let appsrc = appsrc(&pipeline, &info);
    pipeline.set_state(gst::State::Playing).expect("playing");
    println!("READY");
    let sink = pipeline.by_name("out").expect("tcpserversink");
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.property::<u32>("num-handles") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let buffers = buffers(&info, 8);
    let cpu_start = cpu_seconds();
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
    // tcpserversink has no acknowledgement: give the client time to read what is queued.
    std::thread::sleep(Duration::from_millis(3000));
    let cpu = cpu_seconds() - cpu_start;
    let _ = pipeline.set_state(gst::State::Null);
    println!("{{\"sent\": {n}, \"fps\": 0, \"cpu_s\": {cpu:.2}}}");
}

/// tcpclientsrc ! rawvideoparse: frames per second as they arrive.
fn tcp_recv(args: &Args) {
    let (port, n) = (args.value("--port", 5555), args.value("--frames", 300));
    let (w, h) = args.size();
    let pipeline = launch(&format!(
        "tcpclientsrc host=127.0.0.1 port={port} ! rawvideoparse width={w} height={h} format=bgr framerate=0/1 \
         ! fakesink name=out sync=false"
    ));
    let pad = pipeline
        .by_name("out")
        .expect("fakesink")
        .static_pad("sink")
        .expect("pad");
    let (times, _) = record(&pad);
    let cpu_start = cpu_seconds();
    pipeline.set_state(gst::State::Playing).expect("playing");
    wait_for(&pipeline, &times, n);
    let cpu = cpu_seconds() - cpu_start;
    let _ = pipeline.set_state(gst::State::Null);
    let t = times.lock().expect("times");
    println!(
        "{{\"frames\": {}, \"fps\": {:.1}, \"cpu_s\": {cpu:.2}}}",
        t.len(),
        rate(&t)
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
        Some("recv") => recv(&args),
        Some("send") => send(&args),
        Some("tcp-send") => tcp_send(&args),
        Some("tcp-recv") => tcp_recv(&args),
        Some("multiserver") => multiserver(&args),
        _ => eprintln!(
            "usage: netgear-bench codec|recv|send|tcp-send|tcp-recv|multiserver [options]"
        ),
    }
}
