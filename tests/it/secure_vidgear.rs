// SPDX-License-Identifier: MPL-2.0
//! Secure mode (CURVE) against the real vidgear, with keys vidgear generated and keys our
//! tool generated: StoneHouse and IronHouse both directions, refused clients, unknown
//! server keys, and reconnects that keep their keys.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const W: usize = 64;
const H: usize = 48;

fn mode_name(mode: u8) -> &'static str {
    if mode == 1 {
        "stonehouse"
    } else {
        "ironhouse"
    }
}

fn secure_args(mode: u8, certs: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("secure", mode.to_string()),
        ("certs", certs.to_string_lossy().into_owned()),
    ]
}

fn vidgear_to_src(mode: u8, certs: &Path) {
    let port = free_port();
    let receiver = Receiver::new(&[
        ("port", &port.to_string()),
        ("address", "127.0.0.1"),
        ("pattern", "1"),
        ("secure-mode", mode_name(mode)),
        ("cert-dir", certs.to_str().unwrap()),
    ]);
    receiver.play();
    let mut extra = secure_args(mode, certs);
    extra.extend([
        ("frames", "20".to_string()),
        ("width", W.to_string()),
        ("height", H.to_string()),
    ]);
    let mut peer = Peer::start(&peer_args("send", port, 1, &extra));
    let (frames, eos) = receiver.collect(Duration::from_secs(15));
    peer.report(Duration::from_secs(15));
    assert!(eos, "{}: no EOS", mode_name(mode));
    assert_eq!(frames.len(), 20, "{}: every frame", mode_name(mode));
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.packed(), test_frame(i, W, H, 3, false));
    }
    assert_eq!(receiver.stats().get::<u64>("refused").unwrap(), 0);
}

fn sink_to_secure_vidgear(mode: u8, certs: &Path) {
    let port = free_port();
    let mut extra = secure_args(mode, certs);
    // vidgear's authenticator only lets in the address it was given (never "*").
    extra.extend([
        ("address", "127.0.0.1".to_string()),
        ("seconds", "20".into()),
    ]);
    let mut peer = Peer::start(&peer_args("recv", port, 1, &extra));
    peer.wait_ready(Duration::from_secs(20));
    let sender = Sender::raw(
        VideoFormat::Bgr,
        W as u32,
        H as u32,
        &[
            ("port", &port.to_string()),
            ("address", "127.0.0.1"),
            ("pattern", "1"),
            ("jpeg-compression", "false"),
            ("secure-mode", mode_name(mode)),
            ("cert-dir", certs.to_str().unwrap()),
        ],
    );
    let frames: Vec<Vec<u8>> = (0..20).map(|i| test_frame(i, W, H, 3, false)).collect();
    let report = sink_to_vidgear(&mut peer, &sender, &frames, |_| 5, Duration::from_secs(15));
    assert_eq!(
        report["received"],
        serde_json::json!((0..20).collect::<Vec<_>>())
    );
}

#[test]
fn vidgear_keys_work_both_ways_in_both_modes() {
    let certs = vidgear_keys("vidgear");
    for mode in [1, 2] {
        vidgear_to_src(mode, &certs);
        sink_to_secure_vidgear(mode, &certs);
    }
}

#[test]
fn our_keys_work_with_vidgear() {
    let certs = our_keys("ours");
    for mode in [1, 2] {
        vidgear_to_src(mode, &certs);
        sink_to_secure_vidgear(mode, &certs);
    }
}

/// A client with its own key pair and the server's public key, but not listed in the
/// server's public_keys/.
fn outsider_knowing_the_server(server_certs: &Path, tag: &str) -> PathBuf {
    let outsider = our_keys(tag);
    std::fs::copy(
        server_certs.join(".vidgear/keys/public_keys/server.key"),
        outsider.join(".vidgear/keys/public_keys/server.key"),
    )
    .unwrap();
    outsider
}

/// A raw 16x16 GRAY8 sink in secure `mode` to 127.0.0.1:`port` (pattern 1), with its
/// request-timeout and max-retries.
fn secure_gray_sender(
    port: u16,
    certs: &Path,
    mode: &str,
    (timeout, retries): (&str, &str),
) -> Sender {
    Sender::raw(
        VideoFormat::Gray8,
        16,
        16,
        &[
            ("port", &port.to_string()),
            ("address", "127.0.0.1"),
            ("pattern", "1"),
            ("jpeg-compression", "false"),
            ("secure-mode", mode),
            ("cert-dir", certs.to_str().unwrap()),
            ("request-timeout", timeout),
            ("max-retries", retries),
        ],
    )
}

/// Sends a few frames with a short timeout; returns how the sink ended.
fn try_send(port: u16, certs: &Path, mode: &str) -> Outcome {
    let sender = secure_gray_sender(port, certs, mode, ("700", "1"));
    sender.play();
    for i in 0..3 {
        let _ = sender.push_packed(&test_frame(i, 16, 16, 1, false), i as u64);
    }
    sender.finish();
    wait_end(&sender.pipeline, Duration::from_secs(10))
}

fn secure_receiver(port: u16, certs: &Path, mode: &str) -> Receiver {
    let r = Receiver::new(&[
        ("port", &port.to_string()),
        ("address", "127.0.0.1"),
        ("pattern", "1"),
        ("secure-mode", mode),
        ("cert-dir", certs.to_str().unwrap()),
    ]);
    r.play();
    r
}

#[test]
fn ironhouse_refuses_an_unlisted_client_and_stonehouse_accepts_it() {
    let certs = vidgear_keys("iron");
    let outsider = outsider_knowing_the_server(&certs, "outsider");

    let port = free_port();
    let receiver = secure_receiver(port, &certs, "ironhouse");
    let outcome = try_send(port, &outsider, "ironhouse");
    let Outcome::Error(text) = outcome else {
        panic!("the refused sink should fail, got {outcome:?}")
    };
    assert!(text.contains("no receiver answered"), "{text}");
    let (frames, _) = receiver.collect(Duration::from_millis(300));
    assert!(
        frames.is_empty(),
        "IronHouse let an unlisted client's frame through"
    );
    assert!(receiver.stats().get::<u64>("refused").unwrap() >= 1);
    let warning = queued_warning_debugs(&receiver.pipeline)
        .into_iter()
        // vidgear's secret files are 0644, which is warned about first.
        .find(|w| w.contains("Refused"))
        .expect("a warning about the refused client");
    assert!(
        warning.contains("Refused a client from 127.0.0.1"),
        "{warning}"
    );
    // No key material in what the user sees.
    let secret =
        std::fs::read_to_string(outsider.join(".vidgear/keys/private_keys/client.key_secret"))
            .unwrap();
    let secret = secret
        .lines()
        .find(|l| l.contains("secret-key"))
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap();
    assert!(!warning.contains(secret) && !text.contains(secret));

    // vidgear's IronHouse receiver refuses it too.
    let port = free_port();
    let mut extra = secure_args(2, &certs);
    extra.extend([
        ("address", "127.0.0.1".to_string()),
        ("seconds", "6".into()),
    ]);
    let mut peer = Peer::start(&peer_args("recv", port, 1, &extra));
    peer.wait_ready(Duration::from_secs(20));
    assert!(matches!(
        try_send(port, &outsider, "ironhouse"),
        Outcome::Error(_)
    ));
    let report = peer.report(Duration::from_secs(15));
    assert_eq!(
        report["received"],
        Value::Array(vec![]),
        "vidgear let it in: {report}"
    );

    // StoneHouse accepts any client that knows the server's key.
    let port = free_port();
    let receiver = secure_receiver(port, &certs, "stonehouse");
    assert!(matches!(
        try_send(port, &outsider, "stonehouse"),
        Outcome::Eos
    ));
    let (frames, eos) = receiver.collect(Duration::from_secs(3));
    assert_eq!(frames.len(), 3);
    assert!(eos);
}

#[test]
fn a_client_without_the_server_key_gets_nothing() {
    let certs = vidgear_keys("server");
    let stranger = our_keys("stranger");
    for mode in ["stonehouse", "ironhouse"] {
        let port = free_port();
        let receiver = secure_receiver(port, &certs, mode);
        assert!(
            matches!(try_send(port, &stranger, mode), Outcome::Error(_)),
            "{mode}"
        );
        let (frames, _) = receiver.collect(Duration::from_millis(300));
        assert!(frames.is_empty(), "{mode}: a frame got through");
    }
    // And a plain client gets nothing from a secure receiver.
    let port = free_port();
    let receiver = secure_receiver(port, &certs, "stonehouse");
    assert!(matches!(try_send(port, &certs, "none"), Outcome::Error(_)));
    assert!(receiver.collect(Duration::from_millis(300)).0.is_empty());
}

#[test]
fn secure_sink_reconnects_with_its_keys() {
    let certs = our_keys("reconnect");
    let port = free_port();
    let first = secure_receiver(port, &certs, "ironhouse");
    let sender = std::sync::Arc::new(secure_gray_sender(port, &certs, "ironhouse", ("400", "20")));
    sender.play();
    sender
        .push_packed(&test_frame(0, 16, 16, 1, false), 0)
        .unwrap();
    assert!(first.next_frame(Duration::from_secs(5)).is_some());
    first.stop();
    drop(first);
    // The receiver is gone long enough for the sink to time out and re-create its socket.
    let s = sender.clone();
    let feeder = std::thread::spawn(move || {
        for i in 1..40 {
            if s.push_packed(&test_frame(i, 16, 16, 1, false), i as u64)
                .is_err()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    std::thread::sleep(Duration::from_millis(1000));
    let second = secure_receiver(port, &certs, "ironhouse");
    let frame = second
        .next_frame(Duration::from_secs(8))
        .expect("frames after the reconnect");
    let packed = frame.packed();
    assert_eq!(packed, test_frame(frame_index(&packed), 16, 16, 1, false));
    assert!(sender.stats().get::<u64>("reconnects").unwrap() >= 1);
    assert_eq!(
        second.stats().get::<u64>("refused").unwrap(),
        0,
        "the new socket kept its keys"
    );
    let _ = feeder.join();
}

/// Secure mode in the other patterns and with many servers (our elements on both ends).
#[test]
fn secure_mode_in_every_pattern_and_multi_server() {
    let certs = our_keys("patterns");
    let c = certs.to_str().unwrap();
    for (pattern, mode) in [
        ("pair", "ironhouse"),
        ("pub-sub", "stonehouse"),
        ("pub-sub", "ironhouse"),
    ] {
        let port = free_port().to_string();
        let receiver = Receiver::new(&[
            ("port", &port),
            ("address", "127.0.0.1"),
            ("pattern", pattern),
            ("secure-mode", mode),
            ("cert-dir", c),
            ("timeout", "2000"),
        ]);
        receiver.play();
        let sender = Sender::raw(
            VideoFormat::Gray8,
            16,
            16,
            &[
                ("port", &port),
                ("pattern", pattern),
                ("secure-mode", mode),
                ("cert-dir", c),
                ("jpeg-compression", "false"),
            ],
        );
        sender.play();
        for i in 0..10 {
            std::thread::sleep(Duration::from_millis(if i == 0 { 400 } else { 10 }));
            sender
                .push_packed(&test_frame(i, 16, 16, 1, false), i as u64)
                .unwrap();
        }
        sender.finish();
        let (frames, eos) = receiver.collect(Duration::from_secs(5));
        assert!(eos);
        assert!(
            frames.len() >= if pattern == "pair" { 10 } else { 5 },
            "{pattern}/{mode}: {}",
            frames.len()
        );
        for f in &frames {
            let p = f.packed();
            assert_eq!(p, test_frame(frame_index(&p), 16, 16, 1, false));
        }
    }
    let servers = free_ports(2);
    let receiver = Receiver::new(&[
        ("ports", &port_list(&servers)),
        ("address", "127.0.0.1"),
        ("pattern", "1"),
        ("multi-server", "true"),
        ("secure-mode", "ironhouse"),
        ("cert-dir", c),
    ]);
    receiver.play();
    let secure = [("secure-mode", "ironhouse"), ("cert-dir", c)];
    let senders = multi_server_senders(&servers, VideoFormat::Gray8, (16, 16), &secure);
    for s in &senders {
        s.push_packed(&test_frame(0, 16, 16, 1, false), 0).unwrap();
    }
    let mut frames = vec![
        receiver.next_frame(Duration::from_secs(5)).unwrap(),
        receiver.next_frame(Duration::from_secs(5)).unwrap(),
    ];
    for s in &senders {
        s.finish();
    }
    let (rest, eos) = receiver.collect(Duration::from_secs(5));
    frames.extend(rest);
    assert!(eos);
    let mut ports: Vec<u16> = frames
        .iter()
        .map(|f| f.meta.as_ref().unwrap().port.unwrap())
        .collect();
    ports.sort();
    assert_eq!(ports, {
        let mut s = servers.clone();
        s.sort();
        s
    });
}

#[test]
fn unreadable_keys_fail_start_naming_the_file() {
    let certs = our_keys("broken");
    let secret = certs.join(".vidgear/keys/private_keys/server.key_secret");
    std::fs::write(&secret, "curve\n    public-key = \"not a key\"\n").unwrap();
    let receiver = Receiver::new(&[
        ("port", &free_port().to_string()),
        ("secure-mode", "stonehouse"),
        ("cert-dir", certs.to_str().unwrap()),
    ]);
    assert!(receiver.pipeline.set_state(gst::State::Playing).is_err());
    let Outcome::Error(text) = wait_end(&receiver.pipeline, Duration::from_secs(2)) else {
        panic!("no error")
    };
    assert!(text.contains(secret.to_str().unwrap()), "{text}");
    // The user's file was not replaced.
    assert!(std::fs::read_to_string(&secret)
        .unwrap()
        .contains("not a key"));
}

/// `overwrite-cert=true` makes the sink replace a complete key set at start (vidgear's
/// overwrite_cert); without it the set is kept.
#[test]
fn overwrite_cert_regenerates_the_keys() {
    let certs = our_keys("overwrite");
    let server_key = certs.join(".vidgear/keys/public_keys/server.key");
    let start = |overwrite: &str| {
        let sender = Sender::raw(
            VideoFormat::Gray8,
            16,
            16,
            &[
                ("port", &free_port().to_string()),
                ("pattern", "2"),
                ("secure-mode", "stonehouse"),
                ("cert-dir", certs.to_str().unwrap()),
                ("overwrite-cert", overwrite),
            ],
        );
        sender.play();
        sender.stop();
    };
    let before = std::fs::read_to_string(&server_key).unwrap();
    start("false");
    assert_eq!(
        std::fs::read_to_string(&server_key).unwrap(),
        before,
        "kept without overwrite-cert"
    );
    start("true");
    let after = std::fs::read_to_string(&server_key).unwrap();
    assert_ne!(after, before, "overwrite-cert=true made a new set");
    assert!(
        netgear_protocol::keys::KeyDirs::new(certs.to_str().unwrap())
            .unwrap()
            .complete()
    );
}
