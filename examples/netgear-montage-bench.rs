// SPDX-License-Identifier: MPL-2.0
//! Montage benchmark (not a test): N multi-server senders at W×H and F fps into
//! `netgearsrc multi-server=true ! netgeardemux ! N × queue ! compositor ! fakesink`.
//!
//!   netgear-montage-bench [--servers 16] [--width 320] [--height 240] [--fps 30]
//!                         [--seconds 10] [--senders vidgear|ours] [--python PATH]
//!
//! `vidgear` senders are real vidgear processes (tests/python/netgear_montage.py, raw
//! frames, pattern 1); `ours` are `videotestsrc is-live=true ! netgearsink` in this
//! process. Prints per-server frames sent / in (at the demuxer pad) / into the compositor,
//! frames out of the compositor and the receiver's CPU, as one JSON line.
use gst::prelude::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Args(Vec<String>);

impl Args {
    fn value(&self, name: &str, default: &str) -> String {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    fn number(&self, name: &str, default: u64) -> u64 {
        self.value(name, &default.to_string())
            .parse()
            .unwrap_or(default)
    }
}

/// A free port below Linux's ephemeral range (32768-60999), where the senders' own client
/// ports come from: one could otherwise take a server port before the receiver binds it.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id() % 10000;
    (0..12000)
        .map(|_| (20000 + (seed + NEXT.fetch_add(1, Ordering::Relaxed)) % 12000) as u16)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port")
}

/// Buffers counted per server port, at one point of the pipeline.
type Counts = Arc<Mutex<BTreeMap<u16, u64>>>;

fn count_buffers(pad: &gst::Pad, port: u16, counts: &Counts) {
    let counts = counts.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        *counts.lock().unwrap().entry(port).or_default() += 1;
        gst::PadProbeReturn::Ok
    });
}

/// Frames out of the compositor, and when the first and the last came.
#[derive(Clone, Default)]
struct Output {
    frames: Arc<AtomicU64>,
    span: Arc<Mutex<Option<(Instant, Instant)>>>,
    /// This process's CPU seconds when the first composed frame came out.
    cpu_at_first: Arc<Mutex<Option<f64>>>,
}

/// The receiver: a grid montage of `ports`, counting frames into and out of it.
fn receiver(ports: &[u16], w: u64, h: u64, fps: u64) -> (gst::Pipeline, Counts, Counts, Output) {
    let cols = (ports.len() as f64).sqrt().ceil() as u64;
    let mut line = format!(
        "netgearsrc name=src multi-server=true pattern=req-rep address=127.0.0.1 ports={} \
         ! netgeardemux name=d compositor name=mix start-time-selection=first",
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    for i in 0..ports.len() as u64 {
        line.push_str(&format!(
            " sink_{i}::xpos={} sink_{i}::ypos={}",
            (i % cols) * w,
            (i / cols) * h
        ));
    }
    line.push_str(&format!(
        " ! video/x-raw,framerate={fps}/1 ! fakesink name=out"
    ));
    for (i, port) in ports.iter().enumerate() {
        line.push_str(&format!(
            " d.src_{port} ! queue name=q{port} ! mix.sink_{i}"
        ));
    }
    let pipeline = gst::parse::launch(&line)
        .expect("pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let (demuxed, composed) = (Counts::default(), Counts::default());
    for port in ports {
        let queue = pipeline.by_name(&format!("q{port}")).expect("queue");
        count_buffers(
            &queue.static_pad("src").expect("queue src"),
            *port,
            &composed,
        );
    }
    let counts = demuxed.clone();
    pipeline
        .by_name("d")
        .expect("demux")
        .connect_pad_added(move |_, pad| {
            let port = pad.name().trim_start_matches("src_").parse().unwrap_or(0);
            count_buffers(pad, port, &counts);
        });
    let out = Output::default();
    let frames_out = out.clone();
    pipeline
        .by_name("out")
        .and_then(|s| s.static_pad("sink"))
        .expect("fakesink pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            frames_out.frames.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            let mut span = frames_out.span.lock().unwrap();
            if span.is_none() {
                *frames_out.cpu_at_first.lock().unwrap() = Some(cpu_seconds());
            }
            span.get_or_insert((now, now)).1 = now;
            gst::PadProbeReturn::Ok
        });
    (pipeline, demuxed, composed, out)
}

/// Real vidgear senders, lined up to start together once every process has imported vidgear.
fn vidgear_senders(args: &Args, ports: &[u16], frames: u64) -> Vec<Child> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = args.value("--python", &root.join(".venv/bin/python").to_string_lossy());
    let start_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
        + 4.0
        + ports.len() as f64;
    ports
        .iter()
        .map(|port| {
            Command::new(&python)
                .arg(root.join("tests/python/netgear_montage.py"))
                .args(["--port", &port.to_string(), "--frames", &frames.to_string()])
                .args([
                    "--width",
                    &args.value("--width", "320"),
                    "--height",
                    &args.value("--height", "240"),
                ])
                .args([
                    "--fps",
                    &args.value("--fps", "30"),
                    "--start-at",
                    &format!("{start_at:.3}"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn vidgear sender")
        })
        .collect()
}

/// Our senders: one live `videotestsrc ! netgearsink` pipeline per port, in this process.
fn our_senders(ports: &[u16], w: u64, h: u64, fps: u64, frames: u64) -> Vec<gst::Pipeline> {
    ports
        .iter()
        .map(|port| {
            let line = format!(
                "videotestsrc is-live=true num-buffers={frames} pattern=ball \
                 ! video/x-raw,format=BGR,width={w},height={h},framerate={fps}/1 \
                 ! netgearsink address=127.0.0.1 port={port} pattern=req-rep multi-server=true jpeg-compression=false"
            );
            let p = gst::parse::launch(&line).expect("sender").downcast::<gst::Pipeline>().expect("pipeline");
            p.set_state(gst::State::Playing).expect("sender playing");
            p
        })
        .collect()
}

/// Each vidgear sender's report: frames sent, and its achieved rate.
fn sent_by(children: &mut [Child]) -> Vec<(u64, Option<f64>)> {
    children
        .iter_mut()
        .map(|c| {
            let line = c
                .stdout
                .take()
                .map(|out| {
                    BufReader::new(out)
                        .lines()
                        .map_while(Result::ok)
                        .last()
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            let _ = c.wait();
            let v = serde_json::from_str::<serde_json::Value>(&line).unwrap_or_default();
            let sent = v["sent"].as_u64().unwrap_or(0);
            let rate = v["seconds"]
                .as_f64()
                .filter(|s| *s > 0.0)
                .map(|s| (sent as f64 / s * 10.0).round() / 10.0);
            (sent, rate)
        })
        .collect()
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process from /proc (clock ticks of 100 Hz on Linux).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            Some((rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

fn main() {
    let args = Args(std::env::args().collect());
    gst::init().expect("gst init");
    gstnetgear::plugin_register_static().expect("register plugin");
    let servers = args.number("--servers", 16) as usize;
    let (w, h, fps) = (
        args.number("--width", 320),
        args.number("--height", 240),
        args.number("--fps", 30),
    );
    let frames = args.number("--seconds", 10) * fps;
    let kind = args.value("--senders", "vidgear");
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < servers {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    let (pipeline, demuxed, composed, out) = receiver(&ports, w, h, fps);
    pipeline
        .set_state(gst::State::Playing)
        .expect("receiver playing");
    let began = Instant::now();
    let (mut children, ours) = if kind == "ours" {
        (Vec::new(), our_senders(&ports, w, h, fps, frames))
    } else {
        (vidgear_senders(&args, &ports, frames), Vec::new())
    };
    let bus = pipeline.bus().expect("bus");
    let end = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60 + 3 * frames / fps),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let wall = began.elapsed();
    let cpu = cpu_seconds();
    let sent = if kind == "ours" {
        vec![(frames, None); servers]
    } else {
        sent_by(&mut children)
    };
    for p in &ours {
        let _ = p.set_state(gst::State::Null);
    }
    let stats = pipeline
        .by_name("src")
        .expect("src")
        .property::<gst::Structure>("stats");
    let _ = pipeline.set_state(gst::State::Null);
    report(
        &kind, &ports, &sent, &demuxed, &composed, &out, &stats, end, wall, cpu,
    );
}

#[allow(clippy::too_many_arguments)]
fn report(
    kind: &str,
    ports: &[u16],
    sent: &[(u64, Option<f64>)],
    demuxed: &Counts,
    composed: &Counts,
    out: &Output,
    stats: &gst::Structure,
    end: Option<gst::Message>,
    wall: Duration,
    cpu: f64,
) {
    let demuxed = demuxed.lock().unwrap();
    let composed = composed.lock().unwrap();
    let per_server: Vec<serde_json::Value> = ports
        .iter()
        .zip(sent)
        .map(|(p, (s, rate))| {
            let got = demuxed.get(p).copied().unwrap_or(0);
            serde_json::json!({"port": p, "sent": s, "send_fps": rate, "in": got, "to_compositor": composed.get(p).copied().unwrap_or(0), "lost": s.saturating_sub(got)})
        })
        .collect();
    let frames_out = out.frames.load(Ordering::Relaxed);
    let out_fps = out.span.lock().unwrap().map(|(a, b)| {
        let secs = b.duration_since(a).as_secs_f64();
        if secs > 0.0 {
            ((frames_out.saturating_sub(1)) as f64 / secs * 10.0).round() / 10.0
        } else {
            0.0
        }
    });
    let total_sent: u64 = sent.iter().map(|(s, _)| s).sum();
    let slowest = sent
        .iter()
        .filter_map(|(_, r)| *r)
        .min_by(|a, b| a.total_cmp(b));
    let busy = out
        .span
        .lock()
        .unwrap()
        .map(|(a, b)| b.duration_since(a).as_secs_f64());
    let cpu_busy = out
        .cpu_at_first
        .lock()
        .unwrap()
        .zip(busy)
        .filter(|(_, secs)| *secs > 0.0)
        .map(|(first, secs)| (100.0 * (cpu - first) / secs).round());
    let total_in: u64 = demuxed.values().sum();
    let ended = match end.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => "eos".to_owned(),
        Some(gst::MessageView::Error(e)) => format!("error: {}", e.error()),
        _ => "timeout".to_owned(),
    };
    let summary = serde_json::json!({
        "senders": kind,
        "servers": ports.len(),
        "sent": total_sent,
        "in": total_in,
        "lost": total_sent.saturating_sub(total_in),
        "min_in_per_server": demuxed.values().min().copied().unwrap_or(0),
        "frames_out": out.frames.load(Ordering::Relaxed),
        "output_fps": out_fps,
        "wall_s": (wall.as_secs_f64() * 100.0).round() / 100.0,
        "slowest_sender_fps": slowest,
        "receiver_cpu_percent_while_composing": cpu_busy,
        "source_dropped": stats.get::<u64>("dropped").unwrap_or(0),
        "source_malformed": stats.get::<u64>("malformed").unwrap_or(0),
        "ended": ended,
        "per_server": per_server,
    });
    println!("{summary}");
}
