// SPDX-License-Identifier: MPL-2.0
//! `max-frame-age` on netgearsink: live frames that went stale waiting for a receiver are
//! dropped, not sent; input that is neither live nor synchronised (a file pushed as fast as
//! the receiver answers) never loses a frame, however far behind the clock it runs.

use crate::common::*;
use gst::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WIDTH: usize = 64;
const HEIGHT: usize = 48;
const FRAMES: usize = 60;

fn receiver(port: u16) -> Receiver {
    let receiver = Receiver::new(&[("address", "127.0.0.1"), ("port", &port.to_string())]);
    receiver.play();
    receiver
}

fn sink_props(port: &str) -> [(&str, &str); 3] {
    [
        ("address", "127.0.0.1"),
        ("port", port),
        ("jpeg-compression", "false"),
    ]
}

/// A non-live source that stalls 1.5 s after its first frame (which starts the clock), its
/// frames stamped at 30 fps: by the clock the next ones are up to 1.5 s late. `sync`: the
/// sink's.
fn late_file(sync: bool) -> (Vec<usize>, gst::Structure) {
    let port = free_port();
    let receiver = receiver(port);
    let port = port.to_string();
    let sender = Sender::raw(gst_video::VideoFormat::Bgr, 64, 48, &sink_props(&port));
    sender.sink.set_property("sync", sync);
    sender.play();
    for idx in 0..FRAMES {
        let frame = test_frame(idx, WIDTH, HEIGHT, 3, false);
        sender.push_packed(&frame, idx as u64).expect("push");
        if idx == 0 {
            std::thread::sleep(Duration::from_millis(1500));
        }
    }
    sender.finish_expect_eos(Duration::from_secs(10));
    let (frames, _) = receiver.collect(Duration::from_secs(1));
    let indices = test_frame_indices(&frames, (WIDTH, HEIGHT, 3), false, "late file");
    (indices, sender.stats())
}

fn count(stats: &gst::Structure, name: &str) -> u64 {
    stats.get::<u64>(name).expect(name)
}

#[test]
fn a_file_pushed_as_fast_as_the_receiver_answers_loses_no_frame() {
    let (indices, stats) = late_file(false);
    assert_eq!(indices, (0..FRAMES).collect::<Vec<_>>());
    assert_eq!(count(&stats, "stale"), 0);
    assert_eq!(count(&stats, "dropped"), 0);
    assert_eq!(count(&stats, "frames"), FRAMES as u64);
}

/// `sync=true`: frames due more than max-frame-age ago are dropped, the rest are sent.
#[test]
fn a_synchronised_file_behind_the_clock_drops_what_is_overdue() {
    let (indices, stats) = late_file(true);
    let stale = count(&stats, "stale") as usize;
    // Frames 1–30 were due 0.5–1.5 s before they came.
    assert!(stale >= 25, "{stale} stale, sent {indices:?}");
    assert_eq!(stale + indices.len(), FRAMES, "sent {indices:?}");
    assert_eq!(indices.last(), Some(&(FRAMES - 1)));
}

/// A live source (`do-timestamp`: stamped when captured) with no receiver for its first
/// 1.5 s: the frames it captured meanwhile are dropped, and every frame delivered once the
/// receiver is there was captured less than a second before.
#[test]
fn live_frames_that_waited_for_a_receiver_are_dropped_not_delivered_old() {
    let port = free_port();
    let sender = launch(&format!(
        "appsrc name=src is-live=true do-timestamp=true format=time \
         caps=video/x-raw,format=BGR,width={WIDTH},height={HEIGHT},framerate=30/1 ! \
         netgearsink name=sink address=127.0.0.1 port={port} jpeg-compression=false sync=false"
    ));
    let appsrc = sender
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    sender.set_state(gst::State::Playing).expect("playing");
    let captured: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let stamps = captured.clone();
    let camera = std::thread::spawn(move || {
        let start = Instant::now();
        for idx in 0..90 {
            stamps.lock().unwrap().push(Instant::now());
            let frame = test_frame(idx, WIDTH, HEIGHT, 3, false);
            let _ = appsrc.push_buffer(gst::Buffer::from_mut_slice(frame));
            let due = start + Duration::from_millis(33 * (idx as u64 + 1));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    let receiver = receiver(port);
    let mut ages = Vec::new();
    while let Some(frame) = receiver.next_frame(Duration::from_millis(800)) {
        let idx = frame_index(&frame.packed());
        ages.push((idx, captured.lock().unwrap()[idx].elapsed()));
    }
    camera.join().unwrap();
    let stale = count(&sender.by_name("sink").unwrap().property("stats"), "stale");
    let _ = sender.set_state(gst::State::Null);
    eprintln!("stale {stale}, delivered (index, age): {ages:?}");
    assert!(stale >= 20, "{stale} stale");
    let (first, _) = ages
        .first()
        .copied()
        .expect("frames once the receiver is up");
    assert!(
        first >= 30,
        "frame {first} waited 1.5 s for the receiver and came"
    );
    let old: Vec<_> = ages
        .iter()
        .filter(|(_, a)| *a >= Duration::from_secs(1))
        .collect();
    assert!(old.is_empty(), "frames a second old or more: {old:?}");
    assert_eq!(ages.last().map(|(i, _)| *i), Some(89));
}
