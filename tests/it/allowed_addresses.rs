// SPDX-License-Identifier: MPL-2.0
//! `allowed-addresses` on `netgearsrc` with real vidgear senders: a sender outside the list
//! is refused and counted, one inside gets in, and the property needs secure mode and TCP.

use crate::common::*;
use gst::prelude::*;
use std::path::Path;
use std::time::Duration;

/// `netgearsrc secure-mode=stonehouse allowed-addresses=…` receiving from a real vidgear
/// sender on 127.0.0.1: the frames it got and the texts of its bus warnings.
fn vidgear_into_guarded_source(certs: &Path, allowed: &str) -> (usize, Vec<String>, u64) {
    let port = free_port();
    let receiver = Receiver::new(&[
        ("port", &port.to_string()),
        ("address", "127.0.0.1"),
        ("pattern", "1"),
        ("secure-mode", "stonehouse"),
        ("cert-dir", certs.to_str().unwrap()),
        ("allowed-addresses", allowed),
    ]);
    receiver.play();
    let mut peer = Peer::start(&peer_args(
        "send",
        port,
        1,
        &[
            ("secure", "1".into()),
            ("certs", certs.to_string_lossy().into_owned()),
            ("frames", "5".into()),
            ("width", "32".into()),
            ("height", "24".into()),
        ],
    ));
    let (frames, _) = receiver.collect(Duration::from_secs(6));
    peer.kill();
    let warnings = queued_warning_debugs(&receiver.pipeline);
    let refused = receiver.stats().get::<u64>("refused").unwrap();
    (frames.len(), warnings, refused)
}

#[test]
fn source_refuses_a_vidgear_sender_outside_allowed_addresses() {
    let certs = our_keys("outside");
    let (frames, warnings, refused) = vidgear_into_guarded_source(&certs, "127.0.0.2");
    assert_eq!(frames, 0, "a refused sender's frames arrived");
    assert!(refused >= 1, "the refusal was not counted");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("address 127.0.0.1 is not in allowed-addresses")),
        "{warnings:?}"
    );
}

#[test]
fn source_lets_in_a_vidgear_sender_inside_allowed_addresses() {
    let certs = our_keys("inside");
    let (frames, warnings, refused) =
        vidgear_into_guarded_source(&certs, "10.0.0.0/8,127.0.0.0/30");
    assert_eq!(frames, 5, "{warnings:?}");
    assert_eq!(refused, 0);
}

#[test]
fn allowed_addresses_need_secure_mode_and_tcp() {
    init();
    for (props, expected) in [
        (
            vec![("allowed-addresses", "127.0.0.1")],
            "allowed-addresses needs secure-mode",
        ),
        (
            vec![
                ("allowed-addresses", "127.0.0.999"),
                ("secure-mode", "stonehouse"),
            ],
            "127.0.0.999",
        ),
    ] {
        let src = gst::ElementFactory::make("netgearsrc")
            .property("port", u32::from(free_port()))
            .build()
            .unwrap();
        for (k, v) in &props {
            src.set_property_from_str(k, v);
        }
        let pipeline = gst::Pipeline::new();
        let sink = gst::ElementFactory::make("fakesink").build().unwrap();
        pipeline.add_many([&src, &sink]).unwrap();
        src.link(&sink).unwrap();
        assert!(pipeline.set_state(gst::State::Paused).is_err());
        let error = match wait_end(&pipeline, Duration::from_secs(2)) {
            Outcome::Error(e) => e,
            other => panic!("no error for {props:?}: {other:?}"),
        };
        assert!(error.contains(expected), "{error}");
        let _ = pipeline.set_state(gst::State::Null);
    }
}
