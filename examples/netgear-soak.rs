// SPDX-License-Identifier: MPL-2.0
//! Soak run: N small frames, JPEG, pattern 1, netgearsink → netgearsrc in this process,
//! sampling resident memory and open file descriptors; exits 1 if either grows.
//!
//!   netgear-soak [--frames 100000] [--width 160 --height 120]
//!
//! Prints one JSON line. scripts/soak runs the long version, tests/it/soak.rs a short one.
use gst::prelude::*;
use std::time::{Duration, Instant};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn main() {
    gst::init().expect("gst");
    gstnetgear::plugin_register_static().expect("plugin");
    let (frames, w, h) = (
        arg("--frames", 100_000),
        arg("--width", 160) as u32,
        arg("--height", 120) as u32,
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let receiver = gst::parse::launch(&format!(
        "netgearsrc address=127.0.0.1 port={port} pattern=1 ! video/x-raw ! appsink name=out sync=false max-buffers=4"
    ))
    .expect("receiver")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let appsink = receiver
        .by_name("out")
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    receiver.set_state(gst::State::Playing).expect("playing");
    let sender = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=BGR,width={w},height={h},framerate=1000/1 \
         ! netgearsink address=127.0.0.1 port={port} pattern=1 sync=false"
    ))
    .expect("sender")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    sender.set_state(gst::State::Playing).expect("playing");

    // Memory is compared after a warm-up (allocator arenas, pools, first caps).
    let warm_up = (frames / 10).max(100);
    let every = (frames / 20).max(50);
    let (mut received, mut base, mut rss_max) = (0u64, None, 0u64);
    let started = Instant::now();
    while let Some(sample) = appsink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        drop(sample);
        received += 1;
        if received == warm_up {
            base = Some((rss_kib(), fds()));
        }
        if received % every == 0 {
            rss_max = rss_max.max(rss_kib());
            eprintln!(
                "{received} frames, {} KiB resident, {} fds",
                rss_kib(),
                fds()
            );
        }
        if received == frames {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (rss_end, fds_end) = (rss_kib(), fds());
    let (rss_start, fds_start) = base.unwrap_or((rss_end, fds_end));
    let _ = sender.set_state(gst::State::Null);
    let _ = receiver.set_state(gst::State::Null);
    std::thread::sleep(Duration::from_millis(100));
    let ok = received == frames && rss_max < rss_start + 5 * 1024 && fds_end <= fds_start;
    println!(
        "{{\"frames\": {received}, \"expected\": {frames}, \"fps\": {:.0}, \"rss_start_kib\": {rss_start}, \"rss_max_kib\": {rss_max}, \"rss_end_kib\": {rss_end}, \"fds_start\": {fds_start}, \"fds_end\": {fds_end}, \"ok\": {ok}}}",
        received as f64 / elapsed
    );
    std::process::exit(if ok { 0 } else { 1 });
}
