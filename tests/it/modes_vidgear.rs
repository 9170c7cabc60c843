// SPDX-License-Identifier: MPL-2.0
//! vidgear's exclusive modes against the real vidgear: bidirectional (messages, return
//! data, returned frames), multi-server and multi-client, both directions.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use gstnetgear::meta::{self, NetGearInfo};
use serde_json::{json, Value};
use std::time::Duration;

const W: usize = 64;
const H: usize = 48;

/// Messages of several JSON types, non-ASCII text among them.
fn messages() -> Vec<Value> {
    vec![
        json!("héllo wörld ✓"),
        json!(42),
        json!(2.5),
        json!({"k": [1, null, true], "name": "ünï"}),
        json!([1, "two", 3.5]),
        json!("plain"),
    ]
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON: {text:?}: {e}"))
}

#[test]
fn vidgear_bidirectional_sender_to_source() {
    for pattern in ["0", "1"] {
        let port = free_port();
        let receiver = Receiver::new(&[
            ("port", &port.to_string()),
            ("address", "127.0.0.1"),
            ("pattern", pattern),
            ("bidirectional", "true"),
            ("return-data", r#"{"ok": [1, "é"]}"#),
        ]);
        receiver.play();
        let sent = messages();
        let mut peer = Peer::modes(&script_args(
            "bi-send",
            &[
                ("port", port.to_string()),
                ("pattern", pattern.into()),
                ("messages", Value::from(sent.clone()).to_string()),
            ],
        ));
        let (frames, eos) = receiver.collect(Duration::from_secs(15));
        let report = peer.report(Duration::from_secs(15));
        assert!(eos, "pattern {pattern}: no EOS");
        assert_eq!(frames.len(), sent.len());
        // On every buffer, in its NetGearMeta.
        for (i, (frame, expected)) in frames.iter().zip(&sent).enumerate() {
            let info = frame
                .meta
                .clone()
                .unwrap_or_else(|| panic!("frame {i} has no NetGearMeta"));
            assert_eq!(parse(info.message.as_deref().expect("message")), *expected);
            assert_eq!(frame.packed(), test_frame(i, W, H, 3, false));
        }
        // On the bus.
        let posted: Vec<Value> = receiver
            .posted
            .named("netgear-message")
            .iter()
            .map(|s| parse(&s.get::<String>("message").unwrap()))
            .collect();
        assert_eq!(posted, sent);
        // Our return data came back from vidgear's send(), typed as a dict.
        let returns = report["returns"].as_array().unwrap();
        assert_eq!(returns.len(), sent.len());
        for r in returns {
            assert_eq!(*r, json!({"ok": [1, "é"]}), "pattern {pattern}: {report}");
        }
    }
}

#[test]
fn sink_bidirectional_to_vidgear_receiver() {
    for pattern in ["0", "1"] {
        let port = free_port();
        let mut peer = Peer::modes(&script_args(
            "bi-recv",
            &[
                ("port", port.to_string()),
                ("pattern", pattern.into()),
                ("return", r#"{"answer": [1, 2], "t": "ß"}"#.into()),
            ],
        ));
        peer.wait_ready(Duration::from_secs(20));
        let sender = Sender::raw(
            VideoFormat::Bgr,
            W as u32,
            H as u32,
            &[
                ("port", &port.to_string()),
                ("pattern", pattern),
                ("bidirectional", "true"),
                ("jpeg-compression", "false"),
                ("message", "from the property"),
            ],
        );
        sender.play();
        let sent = messages();
        for (i, message) in sent.iter().enumerate() {
            let info = sender.info.as_ref().unwrap();
            let mut buffer =
                gst::Buffer::from_mut_slice(to_gst_layout(&test_frame(i, W, H, 3, false), info));
            // A relayed buffer's NetGearMeta message wins over the property.
            let text = message.to_string();
            meta::attach(
                buffer.get_mut().unwrap(),
                &NetGearInfo {
                    message: Some(text),
                    port: None,
                },
            );
            sender.appsrc.push_buffer(buffer).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        // Without a meta, the property's message goes.
        sender
            .push_packed(&test_frame(sent.len(), W, H, 3, false), 0)
            .unwrap();
        sender.finish_expect_eos(Duration::from_secs(15));
        let report = peer.report(Duration::from_secs(20));
        let mut expected = sent.clone();
        expected.push(json!("from the property"));
        assert_eq!(
            report["messages"],
            Value::from(expected),
            "pattern {pattern}"
        );
        assert_eq!(
            report["frames"],
            json!((0..=sent.len()).collect::<Vec<_>>())
        );
        assert_eq!(report["terminated"], true);
        let returns: Vec<Value> = sender
            .posted
            .named("netgear-return")
            .iter()
            .map(|s| parse(&s.get::<String>("data").unwrap()))
            .collect();
        // vidgear sets its return data when recv() is first called, which can be just after
        // the first frame arrived.
        assert!(
            returns.len() >= sent.len(),
            "pattern {pattern}: {} returns",
            returns.len()
        );
        assert!(
            returns
                .iter()
                .all(|r| *r == json!({"answer": [1, 2], "t": "ß"})),
            "{returns:?}"
        );
    }
}

#[test]
fn vidgear_returns_frames_to_the_sink() {
    for jpeg in [false, true] {
        let port = free_port();
        let mut pairs = vec![
            ("port", port.to_string()),
            ("pattern", "1".into()),
            ("return-frame", String::new()),
        ];
        if jpeg {
            pairs.push(("jpeg", String::new()));
        }
        let mut peer = Peer::modes(&script_args("bi-recv", &pairs));
        peer.wait_ready(Duration::from_secs(20));
        let sender = Sender::raw(
            VideoFormat::Bgr,
            W as u32,
            H as u32,
            &[
                ("port", &port.to_string()),
                ("pattern", "1"),
                ("bidirectional", "true"),
                ("jpeg-compression", "false"),
            ],
        );
        sender.play();
        for i in 0..5 {
            // vidgear takes a return frame when its recv() loop runs: give it the time.
            std::thread::sleep(Duration::from_millis(100));
            sender
                .push_packed(&test_frame(i, W, H, 3, false), i as u64)
                .unwrap();
        }
        sender.finish_expect_eos(Duration::from_secs(15));
        peer.report(Duration::from_secs(20));
        let returned = sender.posted.named("netgear-return-frame");
        assert!(
            returned.len() >= 4,
            "jpeg {jpeg}: {} frames came back",
            returned.len()
        );
        let expected = test_frame(77, W, H, 3, false);
        for s in &returned {
            let frame = Frame::from_sample(&s.get::<gst::Sample>("sample").unwrap());
            assert_eq!(frame.format(), VideoFormat::Bgr);
            if jpeg {
                // vidgear's JPEG of a sharp test pattern: close, not exact.
                assert!(psnr(&frame.packed(), &expected) > 20.0);
            } else {
                assert_eq!(frame.packed(), expected, "raw returned frame differs");
            }
        }
        assert_eq!(
            sender.stats().get::<u64>("returns").unwrap(),
            returned.len() as u64
        );
    }
}

#[test]
fn source_returns_frames_to_vidgear() {
    init();
    let port = free_port();
    let pipeline = launch(&format!(
        "netgearsrc name=src port={port} address=127.0.0.1 pattern=1 bidirectional=true ! appsink name=out sync=false \
         appsrc name=back format=time caps=video/x-raw,format=BGR,width={W},height={H},framerate=0/1 ! src.return"
    ));
    let back = pipeline
        .by_name("back")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let info = video_info(VideoFormat::Bgr, W as u32, H as u32);
    back.push_buffer(gst::Buffer::from_mut_slice(to_gst_layout(
        &test_frame(77, W, H, 3, false),
        &info,
    )))
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut peer = Peer::modes(&script_args(
        "bi-send",
        &[
            ("port", port.to_string()),
            ("pattern", "1".into()),
            ("messages", json!(["a", "b", "c"]).to_string()),
        ],
    ));
    let report = peer.report(Duration::from_secs(20));
    pipeline.set_state(gst::State::Null).unwrap();
    // The frame goes back byte for byte, with every reply until a newer one arrives
    // (returns_vidgear covers the rest).
    for i in 0..3 {
        assert_eq!(
            report["returns"][i],
            json!({"ndarray": [H, W, 3], "exact": true, "mean_abs_diff": 0.0}),
            "{report}"
        );
    }
}

/// (port, frame index) of every frame, checking each frame's bytes and its port tag.
fn tagged(frames: &[Frame]) -> Vec<(u16, usize)> {
    frames
        .iter()
        .map(|f| {
            let packed = f.packed();
            let idx = frame_index(&packed);
            assert_eq!(
                packed,
                test_frame(idx, W, H, 3, false),
                "frame bytes differ"
            );
            let port = f
                .meta
                .as_ref()
                .and_then(|m| m.port)
                .expect("frame tagged with its server's port");
            (port, idx)
        })
        .collect()
}

#[test]
fn three_vidgear_servers_into_one_source() {
    for pattern in ["1", "2"] {
        let servers = free_ports(3);
        let mut props = vec![
            ("ports", port_list(&servers)),
            ("multi-server", "true".into()),
            ("pattern", pattern.into()),
            ("address", "127.0.0.1".into()),
        ];
        if pattern == "2" {
            // Counted from the start too: longer than the senders take to start.
            props.push(("timeout", "8000".into()));
        }
        let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let receiver = Receiver::new(&props);
        receiver.play();
        // Paced and started together, so all three overlap however long each Python
        // takes to start on a loaded machine.
        let at = start_at(5.0);
        let mut peers: Vec<Peer> = servers
            .iter()
            .map(|p| {
                Peer::modes(&script_args(
                    "ms-send",
                    &[
                        ("port", p.to_string()),
                        ("pattern", pattern.into()),
                        ("frames", "20".into()),
                        ("interval", "0.1".into()),
                        ("start-at", at.clone()),
                    ],
                ))
            })
            .collect();
        let (frames, eos) = receiver.collect(Duration::from_secs(20));
        for peer in &mut peers {
            peer.report(Duration::from_secs(20));
        }
        assert!(eos, "pattern {pattern}: no EOS");
        let mut got = tagged(&frames);
        let before = got.len();
        got.sort();
        got.dedup();
        assert_eq!(
            got.len(),
            before,
            "pattern {pattern}: a frame arrived twice"
        );
        for port in &servers {
            let from: Vec<usize> = got
                .iter()
                .filter(|(p, _)| p == port)
                .map(|(_, i)| *i)
                .collect();
            if pattern == "1" {
                assert_eq!(
                    from,
                    (0..20).collect::<Vec<_>>(),
                    "every frame from server {port}"
                );
            } else {
                assert!(from.len() >= 10, "server {port}: only {from:?}");
            }
        }
        let posted = receiver.posted.named("netgear-message");
        assert!(posted.is_empty(), "no messages were sent");
    }
}

#[test]
fn our_sinks_as_servers_into_vidgear() {
    let servers = free_ports(3);
    let mut peer = Peer::modes(&script_args(
        "ms-recv",
        &[("ports", port_list(&servers)), ("pattern", "1".into())],
    ));
    peer.wait_ready(Duration::from_secs(20));
    let senders = multi_server_senders(&servers, VideoFormat::Bgr, (W, H), &[]);
    for i in 0..10 {
        for s in &senders {
            s.push_packed(&test_frame(i, W, H, 3, false), i as u64)
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for s in &senders {
        s.finish();
    }
    for s in &senders {
        assert!(matches!(
            wait_end(&s.pipeline, Duration::from_secs(15)),
            Outcome::Eos
        ));
    }
    let report = peer.report(Duration::from_secs(20));
    assert_eq!(
        report["terminated"], true,
        "vidgear did not end after every server terminated: {report}"
    );
    let (pairs, expected) = (
        server_frame_pairs(&report),
        frames_of_every_server(&servers, 10),
    );
    assert_eq!(
        pairs, expected,
        "every frame of every server once, byte-exact"
    );
}

/// 32 of our sinks into one source (vidgear promises "several 100s"; scripts/bench has 128).
#[test]
fn thirty_two_servers_into_one_source() {
    let servers = free_ports(32);
    let receiver = Receiver::new(&[
        ("ports", &port_list(&servers)),
        ("multi-server", "true"),
        ("pattern", "1"),
        ("address", "127.0.0.1"),
    ]);
    receiver.play();
    let senders = multi_server_senders(&servers, VideoFormat::Bgr, (W, H), &[]);
    // Everyone sends a first frame before anyone may terminate: the source ends when every
    // server it has heard from has terminated.
    for s in &senders {
        s.push_packed(&test_frame(0, W, H, 3, false), 0).unwrap();
    }
    let mut frames = Vec::new();
    while frames.len() < senders.len() {
        frames.push(
            receiver
                .next_frame(Duration::from_secs(10))
                .expect("first frames"),
        );
    }
    for i in 1..10 {
        for s in &senders {
            s.push_packed(&test_frame(i, W, H, 3, false), i as u64)
                .unwrap();
        }
    }
    for s in &senders {
        s.finish();
    }
    let (rest, eos) = receiver.collect(Duration::from_secs(10));
    frames.extend(rest);
    assert!(eos, "no EOS after all 32 servers terminated");
    let mut got = tagged(&frames);
    got.sort();
    let mut expected: Vec<(u16, usize)> = servers
        .iter()
        .flat_map(|p| (0..10).map(move |i| (*p, i)))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(receiver.stats().get::<u64>("terminations").unwrap(), 32);
}

#[test]
fn sink_multi_client_to_two_vidgear_clients() {
    for pattern in ["1", "2"] {
        let clients = free_ports(2);
        let mut peers: Vec<Peer> = clients
            .iter()
            .map(|p| {
                let ret = json!({"client": p}).to_string();
                Peer::modes(&script_args(
                    "mc-recv",
                    &[
                        ("port", p.to_string()),
                        ("pattern", pattern.into()),
                        ("return", ret),
                    ],
                ))
            })
            .collect();
        for peer in &peers {
            peer.wait_ready(Duration::from_secs(20));
        }
        let sender = Sender::raw(
            VideoFormat::Bgr,
            W as u32,
            H as u32,
            &[
                ("ports", &port_list(&clients)),
                ("multi-client", "true"),
                ("pattern", pattern),
                ("jpeg-compression", "false"),
            ],
        );
        sender.play();
        for i in 0..20 {
            let pause = if pattern == "2" && i == 0 { 500 } else { 10 };
            std::thread::sleep(Duration::from_millis(pause));
            sender
                .push_packed(&test_frame(i, W, H, 3, false), i as u64)
                .unwrap();
        }
        sender.finish_expect_eos(Duration::from_secs(15));
        let reports: Vec<Value> = peers
            .iter_mut()
            .map(|p| p.report(Duration::from_secs(20)))
            .collect();
        let got: Vec<Vec<i64>> = reports
            .iter()
            .map(|r| {
                r["frames"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect()
            })
            .collect();
        for (r, frames) in reports.iter().zip(&got) {
            assert_eq!(
                r["terminated"], true,
                "pattern {pattern}: a client was not terminated: {r}"
            );
            assert!(!frames.contains(&-1), "pattern {pattern}: a frame differs");
        }
        if pattern == "1" {
            // Round-robin: each frame to exactly one client, both get some.
            let mut all: Vec<i64> = got.concat();
            all.sort();
            assert_eq!(all, (0..20).collect::<Vec<_>>());
            assert!(got.iter().all(|g| !g.is_empty()), "{got:?}");
            let returns = sender.posted.named("netgear-return");
            assert!(returns.len() >= 18, "{} returns", returns.len());
            for r in returns {
                let port = r.get::<u32>("port").expect("port on a multi-client return");
                assert!(clients.contains(&(port as u16)));
                assert_eq!(
                    parse(&r.get::<String>("data").unwrap()),
                    json!({"client": port})
                );
            }
        } else {
            // Fan-out: both get most frames.
            for g in &got {
                assert!(g.len() >= 15, "pattern 2: {got:?}");
            }
        }
    }
}

#[test]
fn vidgear_multi_client_sender_to_our_sources() {
    let clients = free_ports(2);
    let receivers = multi_client_sources(&clients, |p| format!("[\"from\", {p}]"));
    let mut peer = Peer::modes(&script_args(
        "mc-send",
        &[
            ("ports", port_list(&clients)),
            ("pattern", "1".into()),
            ("frames", "20".into()),
        ],
    ));
    let report = peer.report(Duration::from_secs(20));
    let mut all = Vec::new();
    for r in &receivers {
        let (frames, eos) = r.collect(Duration::from_secs(5));
        assert!(eos, "a source did not get its termination");
        assert!(!frames.is_empty());
        for f in &frames {
            let packed = f.packed();
            let idx = frame_index(&packed);
            assert_eq!(packed, test_frame(idx, W, H, 3, false));
            all.push(idx);
        }
    }
    all.sort();
    assert_eq!(
        all,
        (0..20).collect::<Vec<_>>(),
        "each frame to exactly one source"
    );
    for r in report["returns"].as_array().unwrap() {
        let port = r[0].as_u64().unwrap();
        assert!(clients.contains(&(port as u16)));
        assert_eq!(r[1], json!(["from", port]));
    }
    assert_eq!(report["returns"].as_array().unwrap().len(), 20);
}

#[test]
fn our_sink_multi_client_to_our_sources() {
    let clients = free_ports(2);
    let receivers = multi_client_sources(&clients, |p| p.to_string());
    let sender = Sender::raw(
        VideoFormat::Gray8,
        W as u32,
        H as u32,
        &[
            ("ports", &port_list(&clients)),
            ("multi-client", "true"),
            ("pattern", "1"),
            ("jpeg-compression", "false"),
        ],
    );
    sender.play();
    for i in 0..20 {
        sender
            .push_packed(&test_frame(i, W, H, 1, false), i as u64)
            .unwrap();
    }
    sender.finish_expect_eos(Duration::from_secs(15));
    let mut all = Vec::new();
    for r in &receivers {
        let (frames, eos) = r.collect(Duration::from_secs(5));
        assert!(eos, "every source that answered is terminated");
        assert!(!frames.is_empty());
        all.extend(frames.iter().map(|f| frame_index(&f.packed())));
    }
    all.sort();
    assert_eq!(all, (0..20).collect::<Vec<_>>());
    let returns = sender.posted.named("netgear-return");
    assert_eq!(returns.len(), 20);
    for r in returns {
        let port = r.get::<u32>("port").unwrap();
        assert_eq!(parse(&r.get::<String>("data").unwrap()), json!(port));
    }
}
