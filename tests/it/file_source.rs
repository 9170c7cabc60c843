// SPDX-License-Identifier: MPL-2.0
//! Raw frames from `multifilesrc ! rawvideoparse` (buffers with a VideoMeta, as a user's
//! file or camera pipeline makes them) arrive byte-exact: tight rows are lent as they are,
//! padded rows are packed.

use crate::common::*;
use gst::prelude::*;
use std::time::Duration;

fn file_of_frames(tag: &str, width: usize, height: usize, frames: usize) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("netgear-file-{}-{tag}.bgr", std::process::id()));
    let mut bytes = Vec::new();
    for idx in 0..frames {
        bytes.extend(test_frame(idx, width, height, 3, false));
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

fn send_file(width: usize, height: usize, frames: usize) {
    let port = free_port();
    let receiver = Receiver::new(&[("address", "127.0.0.1"), ("port", &port.to_string())]);
    receiver.play();
    let path = file_of_frames(&format!("{width}x{height}"), width, height, frames);
    let sender = launch(&format!(
        "filesrc location={} blocksize={} ! rawvideoparse width={width} height={height} format=bgr \
         plane-strides=<{}> ! netgearsink address=127.0.0.1 port={port} jpeg-compression=false",
        path.display(),
        width * height * 3,
        width * 3
    ));
    sender.set_state(gst::State::Playing).unwrap();
    assert!(matches!(
        wait_end(&sender, Duration::from_secs(15)),
        Outcome::Eos
    ));
    sender.set_state(gst::State::Null).unwrap();
    let (received, eos) = receiver.collect(Duration::from_secs(5));
    assert!(eos);
    assert_eq!(received.len(), frames, "{width}x{height}");
    for (idx, frame) in received.iter().enumerate() {
        assert!(
            frame.packed() == test_frame(idx, width, height, 3, false),
            "{width}x{height}: frame {idx} differs"
        );
    }
    let _ = std::fs::remove_file(path);
}

#[test]
fn rawvideoparse_frames_with_tight_rows_arrive_byte_exact() {
    send_file(64, 8, 6);
}

#[test]
fn rawvideoparse_frames_with_odd_widths_arrive_byte_exact() {
    // 5 × 3 bytes: rawvideoparse is told the rows are tight, GStreamer would pad them.
    send_file(5, 7, 6);
}
