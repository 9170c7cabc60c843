// SPDX-License-Identifier: MPL-2.0
//! 100 NULL → PLAYING → NULL cycles of each element leave no threads, file descriptors or
//! memory behind, and every change to NULL returns within 200 ms, even while the element
//! waits on the network.

use crate::common::*;
use gst::prelude::*;
use std::time::{Duration, Instant};

/// Runs `cycles` state cycles of a pipeline description; returns the slowest change to NULL.
fn cycle(description: &str, cycles: usize) -> Duration {
    let pipeline = launch(description);
    let mut slowest = Duration::ZERO;
    for _ in 0..cycles {
        pipeline.set_state(gst::State::Playing).unwrap();
        // Long enough to bind or connect, and for a sink to block on its first frame.
        std::thread::sleep(Duration::from_millis(15));
        let started = Instant::now();
        pipeline.set_state(gst::State::Null).unwrap();
        slowest = slowest.max(started.elapsed());
    }
    slowest
}

#[test]
fn a_hundred_cycles_leave_nothing_behind() {
    // The process's threads, descriptors and memory are counted: no other test may run.
    in_own_process(
        module_path!(),
        "a_hundred_cycles_leave_nothing_behind",
        a_hundred_cycles,
    );
}

fn a_hundred_cycles() {
    init();
    let port = free_port();
    let source = format!("netgearsrc port={port} address=127.0.0.1 ! fakesink");
    // No receiver: the sink blocks waiting for an acknowledgement when it is stopped.
    let sink = format!(
        "videotestsrc is-live=true ! video/x-raw,format=GRAY8,width=32,height=32 \
         ! netgearsink port={port} request-timeout=100 jpeg-compression=false"
    );
    let secure_dir = temp_dir("lifecycle");
    let secure = format!(
        "netgearsrc port={port} address=127.0.0.1 secure-mode=ironhouse cert-dir={} ! fakesink",
        secure_dir.display()
    );
    for description in [&source, &sink, &secure] {
        cycle(description, 10); // warm up GStreamer's own pools and caches
        let (t0, f0, m0) = (thread_count(), fd_count(), rss_kib());
        let slowest = cycle(description, 100);
        std::thread::sleep(Duration::from_millis(200));
        let (t1, f1, m1) = (thread_count(), fd_count(), rss_kib());
        assert!(
            slowest < Duration::from_millis(200),
            "{description}: NULL took {slowest:?}"
        );
        assert!(t1 <= t0 + 1, "{description}: threads {t0} → {t1}");
        assert!(f1 <= f0 + 1, "{description}: file descriptors {f0} → {f1}");
        assert!(
            m1 < m0 + 5 * 1024,
            "{description}: resident memory {m0} → {m1} KiB"
        );
    }
}
