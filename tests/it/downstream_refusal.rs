// SPDX-License-Identifier: MPL-2.0
//! One frame that downstream cannot take must not end the receiving pipeline: it is
//! dropped, counted and warned about, and the next frame that fits goes through.

use crate::common::*;
use gst::prelude::*;
use std::time::Duration;

/// Sends one frame on a REQ socket and waits for its acknowledgement.
fn send(req: &zmq::Socket, header: Vec<u8>, payload: Vec<u8>) {
    req.send_multipart([header, payload], 0).unwrap();
    assert!(
        req.poll(zmq::POLLIN, 5000).unwrap() > 0,
        "no acknowledgement"
    );
    req.recv_bytes(0).unwrap();
}

/// Every warning and error on the bus so far, as (is_error, text); one pass, since popping
/// one kind drops the other.
fn bus_texts(pipeline: &gst::Pipeline) -> Vec<(bool, String)> {
    pipeline
        .bus()
        .unwrap()
        .iter_filtered(&[gst::MessageType::Warning, gst::MessageType::Error])
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some((false, format!("{} {:?}", w.error(), w.debug()))),
            gst::MessageView::Error(e) => Some((true, format!("{} {:?}", e.error(), e.debug()))),
            _ => None,
        })
        .collect()
}

fn receiver_and_socket(launch: &str) -> (Receiver, zmq::Socket) {
    let port = free_port();
    let receiver = Receiver::launch(&format!(
        "netgearsrc name=src address=127.0.0.1 port={port} pattern=req-rep ! {launch}"
    ));
    receiver.play();
    let req = zmq::Context::new().socket(zmq::REQ).unwrap();
    req.set_linger(0).unwrap();
    req.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    (receiver, req)
}

#[test]
fn a_frame_downstream_refuses_is_dropped_and_the_stream_goes_on() {
    let (receiver, req) =
        receiver_and_socket("video/x-raw,format=BGR ! appsink name=out sync=false");
    let bgr: Vec<u8> = (0..8 * 8 * 3).map(|v| v as u8).collect();
    for round in 0..2 {
        send(&req, raw_header(8, 8, 1, 1), vec![7; 64]);
        send(&req, raw_header(8, 8, 3, 1), bgr.clone());
        let frame = receiver
            .next_frame(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("round {round}: the BGR frame after the gray one"));
        assert_eq!(frame.packed(), bgr);
    }
    assert_eq!(receiver.stats().get::<u64>("dropped").unwrap(), 2);
    let messages = bus_texts(&receiver.pipeline);
    assert!(messages.iter().all(|(error, _)| !error), "{messages:?}");
    assert!(
        messages
            .iter()
            .any(|(_, w)| w.contains("downstream does not accept") && w.contains("GRAY8")),
        "{messages:?}"
    );
}

#[test]
fn a_frame_wider_than_video_elements_take_is_dropped_and_the_stream_goes_on() {
    let (receiver, req) =
        receiver_and_socket("videoconvert ! video/x-raw,format=BGR ! appsink name=out sync=false");
    send(&req, raw_header(1, 32768, 1, 1), vec![1; 32768]);
    let bgr: Vec<u8> = (0..4 * 4 * 3).map(|v| v as u8).collect();
    send(&req, raw_header(4, 4, 3, 1), bgr.clone());
    let frame = receiver
        .next_frame(Duration::from_secs(5))
        .expect("the frame after the too-wide one");
    assert_eq!(frame.packed(), bgr);
    assert_eq!(receiver.stats().get::<u64>("malformed").unwrap(), 1);
    let messages = bus_texts(&receiver.pipeline);
    assert!(messages.iter().all(|(error, _)| !error), "{messages:?}");
}
