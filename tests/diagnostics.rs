// SPDX-License-Identifier: MPL-2.0
//! The transport's events as the elements show them: netgear-connected / -disconnected
//! messages in order, a warning on the first unanswered attempt naming the cause, and a
//! source on port 0 reporting the port it bound.

mod common;

use common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use std::time::{Duration, Instant};

const W: usize = 16;
const H: usize = 8;

fn warnings(pipeline: &gst::Pipeline) -> Vec<String> {
    pipeline
        .bus()
        .unwrap()
        .iter_filtered(&[gst::MessageType::Warning])
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(format!("{} {:?}", w.error(), w.debug())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_source_on_port_zero_reports_the_port_and_announces_its_sender() {
    let receiver = Receiver::new(&[("address", "127.0.0.1"), ("port", "0")]);
    receiver.play();
    let bound = receiver.src.property::<u32>("bound-port");
    assert!(bound > 0, "no port bound");
    let port = bound.to_string();
    let sender = Sender::raw(
        VideoFormat::Bgr,
        W as u32,
        H as u32,
        &[
            ("address", "127.0.0.1"),
            ("port", &port),
            ("jpeg-compression", "false"),
        ],
    );
    sender.play();
    for idx in 0..3 {
        sender
            .push_packed(&test_frame(idx, W, H, 3, false), idx as u64)
            .unwrap();
    }
    sender.finish_expect_eos(Duration::from_secs(10));
    let (frames, eos) = receiver.collect(Duration::from_secs(5));
    assert!(eos);
    assert_eq!(frames.len(), 3);
    sender.stop();
    // The disconnect is seen once the sender's socket is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while receiver.posted.named("netgear-disconnected").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let names: Vec<String> = ["netgear-connected", "netgear-disconnected"]
        .iter()
        .flat_map(|n| receiver.posted.named(n))
        .map(|s| s.name().to_string())
        .collect();
    assert_eq!(names, ["netgear-connected", "netgear-disconnected"]);
    let connected = &receiver.posted.named("netgear-connected")[0];
    let endpoint = connected.get::<String>("endpoint").unwrap();
    assert!(endpoint.ends_with(&format!(":{bound}")), "{endpoint}");
    assert!(connected
        .get::<String>("peer")
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(receiver.stats().get::<u64>("connects").unwrap(), 1);
    assert!(
        !sender.posted.named("netgear-connected").is_empty(),
        "the sender's side"
    );
}

#[test]
fn a_sink_with_nobody_listening_warns_at_the_first_timeout_and_names_the_cause() {
    let port = free_port().to_string();
    let sender = Sender::raw(
        VideoFormat::Bgr,
        W as u32,
        H as u32,
        &[
            ("address", "127.0.0.1"),
            ("port", &port),
            ("jpeg-compression", "false"),
            ("request-timeout", "300"),
            ("max-retries", "3"),
        ],
    );
    sender.play();
    let started = Instant::now();
    let pusher = {
        let appsrc = sender.appsrc.clone();
        std::thread::spawn(move || {
            for idx in 0..20u64 {
                let data = to_gst_layout(
                    &test_frame(idx as usize, W, H, 3, false),
                    &video_info(VideoFormat::Bgr, W as u32, H as u32),
                );
                if appsrc
                    .push_buffer(gst::Buffer::from_mut_slice(data))
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    let error = match wait_end(&sender.pipeline, Duration::from_secs(10)) {
        Outcome::Error(e) => e,
        other => panic!("{other:?}"),
    };
    let elapsed = started.elapsed();
    let _ = pusher.join();
    assert!(error.contains("nobody is listening"), "{error}");
    let warnings = warnings(&sender.pipeline);
    let first = warnings.first().expect("a warning before the error");
    assert!(first.contains("nobody is listening"), "{first}");
    assert!(
        elapsed >= Duration::from_millis(4 * 300),
        "error after {elapsed:?}"
    );
}
