// SPDX-License-Identifier: MPL-2.0
//! What a vidgear user moving to the elements sees when a link fails: warnings and errors
//! whose message (not only the debug text) names the endpoint and the real cause, against
//! the real vidgear: a pattern mismatch names both patterns, secure mode is mentioned only
//! where it is the cause, a peer that is not ZeroMQ says so, a refused connection is warned
//! about at once, and one outage has one attempt count.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const W: usize = 32;
const H: usize = 24;

fn sink(port: u16, pattern: &str, (timeout, retries): (&str, &str)) -> Sender {
    Sender::raw(
        VideoFormat::Bgr,
        W as u32,
        H as u32,
        &[
            ("port", &port.to_string()),
            ("address", "127.0.0.1"),
            ("pattern", pattern),
            ("jpeg-compression", "false"),
            ("request-timeout", timeout),
            ("max-retries", retries),
        ],
    )
}

/// Plays `sender` and pushes `n` frames from a thread (pushes block while the link
/// retries); returns the thread and when the first push began.
fn start_pushing(sender: &Sender, n: usize) -> (std::thread::JoinHandle<()>, Instant) {
    sender.play();
    let appsrc = sender.appsrc.clone();
    let info = video_info(VideoFormat::Bgr, W as u32, H as u32);
    let started = Instant::now();
    let pusher = std::thread::spawn(move || {
        for i in 0..n {
            let data = to_gst_layout(&test_frame(i, W, H, 3, false), &info);
            if appsrc.push_buffer(frame_buffer(data, i as u64)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (pusher, started)
}

/// How the pipeline fed by `start_pushing` ended, timed from the first push.
fn end_of(
    sender: &Sender,
    pushing: (std::thread::JoinHandle<()>, Instant),
    timeout: Duration,
) -> Watched {
    let watched = watch(&sender.pipeline, pushing.1, timeout);
    let _ = sender.pipeline.set_state(gst::State::Null);
    let _ = pushing.0.join();
    watched
}

fn run(sender: &Sender, n: usize, timeout: Duration) -> Watched {
    let pushing = start_pushing(sender, n);
    end_of(sender, pushing, timeout)
}

fn error_of(watched: &Watched) -> &str {
    match &watched.outcome {
        Outcome::Error(text) => text,
        other => panic!("no error: {other:?}"),
    }
}

#[test]
fn a_req_rep_sink_into_a_pair_vidgear_receiver_names_both_patterns() {
    let port = free_port();
    let peer = Peer::start(&peer_args("recv", port, 0, &[("seconds", "10".into())]));
    peer.wait_ready(Duration::from_secs(20));
    let sender = sink(port, "req-rep", ("600", "1"));
    let watched = run(&sender, 3, Duration::from_secs(8));
    let error = error_of(&watched);
    let expected = format!(
        "no receiver answered at tcp://127.0.0.1:{port} after 2 attempts (600 ms each): pattern mismatch: the receiver uses pattern pair (0), this sender pattern req-rep (1); set the same pattern on both ends"
    );
    assert!(error.starts_with(&expected), "{error}");
    assert!(!error.contains("CURVE"), "{error}");
    let warning = sender
        .posted
        .warnings()
        .into_iter()
        .next()
        .expect("a warning");
    assert!(
        warning.starts_with(&format!(
            "no reply from tcp://127.0.0.1:{port} within 600 ms (attempt 1 of 2): pattern mismatch: the receiver uses pattern pair (0)"
        )),
        "{warning}"
    );
    assert!(!warning.contains("CURVE"), "{warning}");
}

#[test]
fn a_plain_sink_into_a_secure_vidgear_receiver_says_the_receiver_is_secure() {
    let certs = vidgear_keys("plain-into-secure");
    let port = free_port();
    let extra = [
        ("secure", "1".to_string()),
        ("certs", certs.to_string_lossy().into_owned()),
        ("address", "127.0.0.1".to_string()),
        ("seconds", "10".into()),
    ];
    let peer = Peer::start(&peer_args("recv", port, 0, &extra));
    peer.wait_ready(Duration::from_secs(20));
    let sender = sink(port, "pair", ("600", "1"));
    let watched = run(&sender, 3, Duration::from_secs(8));
    let error = error_of(&watched);
    assert!(
        error.contains("after 2 attempts (600 ms each): the receiver uses secure mode (CURVE) and this sender does not: set secure-mode and cert-dir as on the receiver"),
        "{error}"
    );
}

/// A TCP server that greets every connection with `greeting` and closes it.
struct Imposter {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Imposter {
    fn start(greeting: &'static [u8]) -> Imposter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.write_all(greeting);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Imposter { port, stop }
    }
}

impl Drop for Imposter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_sink_pointed_at_another_server_says_it_is_no_netgear_receiver() {
    let imposter = Imposter::start(b"SSH-2.0-OpenSSH_9.2p1\r\n");
    let sender = sink(imposter.port, "pair", ("600", "1"));
    let watched = run(&sender, 3, Duration::from_secs(8));
    let error = error_of(&watched);
    assert!(
        error.contains("what listens there is not a ZeroMQ/NetGear receiver (it answered with no ZeroMQ greeting)"),
        "{error}"
    );
    assert!(!error.contains("CURVE"), "{error}");
}

/// Before, the first warning came after one request timeout and both texts were only in
/// the debug field; the messages were GStreamer's "Could not write to resource.".
#[test]
fn nobody_listening_is_warned_about_at_once_and_named_in_the_messages() {
    let port = free_port();
    let sender = sink(port, "pair", ("1000", "2"));
    let pushing = start_pushing(&sender, 10);
    let started = pushing.1;
    while sender.posted.warnings().is_empty() && started.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let warned_after = started.elapsed();
    let watched = end_of(&sender, pushing, Duration::from_secs(10));
    let error = error_of(&watched);
    assert!(
        error.starts_with(&format!("no receiver answered at tcp://127.0.0.1:{port} after 3 attempts (1000 ms each): connection refused, nobody is listening")),
        "{error}"
    );
    assert!(
        watched.after >= Duration::from_millis(3000),
        "{:?}",
        watched.after
    );
    let refused = format!("connection refused: nobody is listening at tcp://127.0.0.1:{port}");
    let warnings = sender.posted.warnings();
    assert!(warnings[0].starts_with(&refused), "{warnings:?}");
    let refusals = warnings
        .iter()
        .filter(|w| w.contains("nobody is listening"));
    assert_eq!(refusals.count(), 1, "one warning per outage: {warnings:?}");
    // Long before the first request timeout (1000 ms) ended.
    assert!(
        warned_after < Duration::from_millis(500),
        "warned after {warned_after:?}"
    );
}

/// A cause that changes within an outage (nobody listening, then a server that accepts and
/// says nothing) keeps counting the same attempts: before, the count began again at 1.
#[test]
fn an_outage_has_one_attempt_count_whatever_its_causes() {
    let port = free_port();
    let sender = sink(port, "pair", ("500", "3"));
    let later = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(6);
        while Instant::now() < until {
            if let Ok((stream, _)) = listener.accept() {
                held.push(stream);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let watched = run(&sender, 10, Duration::from_secs(8));
    let error = error_of(&watched).to_owned();
    let _ = later.join();
    assert!(
        error.starts_with(&format!("no receiver answered at tcp://127.0.0.1:{port} after 4 attempts (500 ms each): what listens there is not a NetGear receiver (it accepted the connection but sent no ZeroMQ greeting)")),
        "{error}"
    );
    let warnings = sender.posted.warnings();
    let firsts = warnings
        .iter()
        .filter(|w| w.contains("(attempt 1 of"))
        .count();
    assert_eq!(firsts, 0, "{warnings:?}");
    assert!(
        warnings[0].starts_with("connection refused: nobody is listening"),
        "{warnings:?}"
    );
}

/// netgearsrc names a vidgear sender of another pattern (ZeroMQ refuses its socket type),
/// where it said "Not authorized" or nothing before.
#[test]
fn netgearsrc_names_a_vidgear_sender_with_another_pattern() {
    let port = free_port();
    let receiver = Receiver::new(&[
        ("port", &port.to_string()),
        ("address", "127.0.0.1"),
        ("pattern", "pair"),
    ]);
    let posted = receiver.posted.clone();
    receiver.play();
    let mut extra = vec![("max-retries", "5".to_string())];
    extra.extend(sender_args(W, H, 3, 2, None));
    let _peer = Peer::start(&peer_args("send", port, 1, &extra));
    // Whichever libzmq checks the socket type first closes the connection: ours names
    // the sender's pattern, otherwise the repeated closes name a probable mismatch.
    let named = |w: &String| {
        w.starts_with("Pattern mismatch: a sender from 127.0.0.1:")
            || w.starts_with("Probably a pattern mismatch: connections from 127.0.0.1 ")
    };
    let until = Instant::now() + Duration::from_secs(26);
    while Instant::now() < until && !posted.warnings().iter().any(named) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let warnings = posted.warnings();
    let warning = warnings
        .iter()
        .find(|w| named(w))
        .unwrap_or_else(|| panic!("{warnings:?}"));
    let definite =
        "uses another pattern than this receiver's pair (0); ZeroMQ refused its socket type";
    let probable =
        "as a sender with another pattern than this receiver's pair (0) does when it retries";
    assert!(
        warning.contains(definite) || warning.contains(probable),
        "{warning}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("Not authorized")),
        "{warnings:?}"
    );
    assert_eq!(receiver.stats().get::<u64>("frames").unwrap_or(0), 0);
}
