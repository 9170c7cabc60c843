// SPDX-License-Identifier: MPL-2.0
//! The ZAP handler's address allow-list with real CURVE peers: a pyzmq client bound to
//! 127.0.0.2 is refused (and the refusal says why), the same client from 127.0.0.1 gets in.

mod common;

use common::*;
use gst::prelude::*;
use gstnetgear::transport::{apply_keys, ClientPolicy, OnRefused, ZapHandler};
use netgear_protocol::addresses::AllowedAddresses;
use netgear_protocol::keys::KeyDirs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A CURVE REQ client with the set's client keys, connecting from `source`.
const PEER: &str = r#"
import sys, zmq, zmq.auth
certs, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
public, secret = zmq.auth.load_certificate(certs + "/.vidgear/keys/private_keys/client.key_secret")
server, _ = zmq.auth.load_certificate(certs + "/.vidgear/keys/public_keys/server.key")
s = zmq.Context().socket(zmq.REQ)
s.curve_publickey, s.curve_secretkey, s.curve_serverkey = public, secret, server
s.linger = 0
s.connect("tcp://%s:0;127.0.0.1:%d" % (source, port))
s.send(b"hello from " + source.encode())
print("REPLY " + s.recv().decode() if s.poll(3000) else "NOREPLY", flush=True)
"#;

/// Runs the peer from `source` against a REP socket guarded by `allowed`; returns what
/// the peer printed, what the server received and what the handler refused.
fn connect_from(certs: &Path, allowed: &str, source: &str) -> (String, Vec<String>, Vec<String>) {
    let set = KeyDirs::new(certs.to_str().unwrap())
        .unwrap()
        .load(false)
        .unwrap();
    let policy = ClientPolicy::listed(set.allowed_clients().unwrap())
        .with_addresses(AllowedAddresses::parse(allowed).unwrap());
    let refused = Arc::new(Mutex::new(Vec::new()));
    let log = refused.clone();
    let on_refused: OnRefused = Box::new(move |peer, why| {
        log.lock().unwrap().push(format!("{peer}: {why}"));
    });
    let context = zmq::Context::new();
    let _zap = ZapHandler::start(&context, policy, on_refused).unwrap();
    let socket = context.socket(zmq::REP).unwrap();
    apply_keys(&set.server_keys().unwrap(), &socket).unwrap();
    let port = free_port();
    socket.bind(&format!("tcp://127.0.0.1:{port}")).unwrap();

    let (certs, source) = (certs.to_owned(), source.to_owned());
    let peer = std::thread::spawn(move || {
        let out = std::process::Command::new(python())
            .args([
                "-c",
                PEER,
                certs.to_str().unwrap(),
                &port.to_string(),
                &source,
            ])
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    });
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while !peer.is_finished() && Instant::now() < deadline {
        if socket.poll(zmq::POLLIN, 100).unwrap() > 0 {
            received.push(String::from_utf8(socket.recv_bytes(0).unwrap()).unwrap());
            socket.send("welcome", 0).unwrap();
        }
    }
    let printed = peer.join().unwrap();
    let refused = refused.lock().unwrap().clone();
    (printed, received, refused)
}

#[test]
fn a_peer_outside_the_list_is_refused_before_its_key_is_checked() {
    let certs = std::env::temp_dir().join(format!("netgear-allow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&certs);
    KeyDirs::new(certs.to_str().unwrap())
        .unwrap()
        .generate()
        .unwrap();

    let (printed, received, refused) = connect_from(&certs, "127.0.0.1,10.0.0.0/8", "127.0.0.2");
    assert_eq!(printed, "NOREPLY");
    assert!(received.is_empty(), "{received:?}");
    assert!(!refused.is_empty());
    assert!(
        refused
            .iter()
            .all(|r| r == "127.0.0.2: address 127.0.0.2 is not in allowed-addresses"),
        "{refused:?}"
    );

    let (printed, received, refused) = connect_from(&certs, "127.0.0.1,10.0.0.0/8", "127.0.0.1");
    assert_eq!(printed, "REPLY welcome");
    assert_eq!(received, ["hello from 127.0.0.1"]);
    assert!(refused.is_empty(), "{refused:?}");

    // A range that holds the peer lets it in; an empty list lets in anyone.
    for allowed in ["127.0.0.0/30", ""] {
        let (printed, _, refused) = connect_from(&certs, allowed, "127.0.0.2");
        assert_eq!(printed, "REPLY welcome", "{allowed}");
        assert!(refused.is_empty(), "{allowed}: {refused:?}");
    }
}

/// A key set made by our own generator in a fresh directory.
fn fresh_keys(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netgear-allow-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    KeyDirs::new(dir.to_str().unwrap())
        .unwrap()
        .generate()
        .unwrap();
    dir
}

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
    let warnings = receiver
        .pipeline
        .bus()
        .unwrap()
        .iter_filtered(&[gst::MessageType::Warning])
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(format!("{:?}", w.debug())),
            _ => None,
        })
        .collect();
    let refused = receiver.stats().get::<u64>("refused").unwrap();
    (frames.len(), warnings, refused)
}

#[test]
fn source_refuses_a_vidgear_sender_outside_allowed_addresses() {
    let certs = fresh_keys("outside");
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
    let certs = fresh_keys("inside");
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
