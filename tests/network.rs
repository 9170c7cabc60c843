// SPDX-License-Identifier: MPL-2.0
//! Network behaviour of the transport: bounded staleness in pub-sub, a dead receiver in
//! multi-client, a restarted pair receiver, EOS with nobody listening, IPv6.

mod common;

use common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use gstnetgear::config::{Pattern, Role};
use gstnetgear::transport::{
    ClientPolicy, EventHandler, Exchanged, HandshakeFailure, LinkConfig, LinkError, LinkEvent,
    Part, Received, ReceiverLink, SenderLink, Stats, Unanswered, Waker,
};
use netgear_protocol::keys::KeyDirs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// tests/python/stale_sender.py as a child process.
fn stale_sender(mode: &str, port: u16, seconds: f64) -> Child {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/stale_sender.py");
    Command::new(python())
        .arg(script)
        .args([
            mode,
            "--port",
            &port.to_string(),
            "--seconds",
            &seconds.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn stale_sender.py")
}

/// `netgearsrc ! identity sleep-time=40000 ! appsink`: a consumer that takes 40 ms a frame.
fn slow_pubsub_receiver(port: u16) -> Receiver {
    Receiver::launch(&format!(
        "netgearsrc name=src address=127.0.0.1 port={port} pattern=pub-sub timeout=1500 \
         ! identity sleep-time=40000 ! appsink name=out"
    ))
}

/// Pulls frames for `span` and returns each one's age (now minus the send time it carries).
fn ages(receiver: &Receiver, span: Duration) -> Vec<f64> {
    let mut ages = Vec::new();
    let end = Instant::now() + span;
    while Instant::now() < end {
        let Some(frame) = receiver.next_frame(Duration::from_millis(500)) else {
            continue;
        };
        let sent = frame
            .meta
            .and_then(|m| m.message)
            .and_then(|m| m.parse::<f64>().ok());
        if let Some(sent) = sent {
            ages.push(now_secs() - sent);
        }
    }
    ages
}

fn assert_fresh(who: &str, ages: &[f64]) {
    let worst = ages.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "{who}: {} frames, worst age {:.3} s, last {:.3} s",
        ages.len(),
        worst,
        ages.last().copied().unwrap_or(0.0)
    );
    assert!(ages.len() >= 20, "{who}: only {} frames", ages.len());
    // One consumer period (40 ms) plus one frame, with room for a loaded machine; the
    // buffering this guards against reached seconds.
    assert!(
        worst < 0.3,
        "{who}: frames up to {worst:.3} s old: {ages:?}"
    );
}

#[test]
fn pub_sub_into_a_slow_consumer_stays_fresh_with_vidgear_and_raw_pyzmq_senders() {
    for mode in ["vidgear", "pyzmq"] {
        let port = free_port();
        let receiver = slow_pubsub_receiver(port);
        receiver.play();
        let mut child = stale_sender(mode, port, 6.0);
        // Wait for the sender (Python starts slowly on a loaded machine), then let the
        // buffers fill for a second.
        assert!(
            receiver.next_frame(Duration::from_secs(30)).is_some(),
            "{mode}: nothing arrived"
        );
        let _ = ages(&receiver, Duration::from_millis(1000));
        let steady = ages(&receiver, Duration::from_millis(2500));
        let _ = child.wait();
        assert_fresh(mode, &steady);
        let dropped = receiver.stats().get::<u64>("dropped").unwrap();
        assert!(dropped > 0, "{mode}: nothing was skipped");
    }
}

#[test]
fn pub_sub_from_our_sink_into_a_slow_consumer_stays_fresh() {
    let port = free_port();
    let receiver = slow_pubsub_receiver(port);
    receiver.play();
    let sender = Arc::new(Sender::raw(
        VideoFormat::Bgr,
        64,
        48,
        &[
            ("port", &port.to_string()),
            ("address", "127.0.0.1"),
            ("pattern", "pub-sub"),
            ("jpeg-compression", "false"),
        ],
    ));
    // At most one frame waits in appsrc, so the time set below is the frame's send time.
    sender.appsrc.set_max_bytes(64 * 48 * 3);
    sender.play();
    let running = Arc::new(AtomicBool::new(true));
    let feeder = {
        let (sender, running) = (sender.clone(), running.clone());
        std::thread::spawn(move || {
            let frame = vec![128u8; 64 * 48 * 3];
            let mut i = 0u64;
            while running.load(Ordering::Relaxed) {
                sender
                    .sink
                    .set_property("message", format!("{:.6}", now_secs()));
                if sender.push_packed(&frame, i).is_err() {
                    break;
                }
                i += 1;
            }
            i
        })
    };
    let _ = ages(&receiver, Duration::from_millis(1500));
    let steady = ages(&receiver, Duration::from_millis(2500));
    running.store(false, Ordering::Relaxed);
    let sent = feeder.join().unwrap();
    assert!(
        sent as usize > steady.len() * 3,
        "sender not faster: {sent}"
    );
    assert_fresh("netgearsink", &steady);
}

/// A raw frame message as vidgear sends it: 2×3 BGR, pattern `pattern`.
fn tiny_frame(pattern: u8) -> Vec<Vec<u8>> {
    let header = format!(
        r#"{{"terminate_flag": false, "compression": false, "message": null, "pattern": "{pattern}", "dtype": "uint8", "shape": [2, 3, 3]}}"#
    );
    vec![header.into_bytes(), vec![7u8; 18]]
}

/// Collects the events a link reports.
fn recorder() -> (EventHandler, Arc<Mutex<Vec<LinkEvent>>>) {
    let seen: Arc<Mutex<Vec<LinkEvent>>> = Arc::default();
    let log = seen.clone();
    let handler = EventHandler::new(Arc::new(move |e: LinkEvent| log.lock().unwrap().push(e)));
    (handler, seen)
}

fn link_config(
    role: Role,
    pattern: Pattern,
    endpoints: Vec<String>,
    timeout_ms: u64,
) -> LinkConfig {
    LinkConfig {
        role,
        pattern,
        endpoints,
        request_timeout: Duration::from_millis(timeout_ms),
        max_retries: 1,
        max_message_bytes: 1 << 20,
        curve: None,
        clients: None,
        newest_only: false,
        events: EventHandler::default(),
    }
}

fn waker() -> Arc<Waker> {
    Arc::new(Waker::new().unwrap())
}

fn send(link: &mut SenderLink, message: &[Vec<u8>], stats: &Stats) -> Result<Exchanged, LinkError> {
    let parts: Vec<Part<'_>> = message.iter().map(|p| Part::Copied(p)).collect();
    link.exchange(&parts, stats)
}

/// Sends until the link gives up; returns the error and the events seen.
fn until_error(mut link: SenderLink, seen: &Mutex<Vec<LinkEvent>>) -> (LinkError, Vec<LinkEvent>) {
    let stats = Stats::default();
    for _ in 0..10 {
        if let Err(e) = send(&mut link, &tiny_frame(0), &stats) {
            return (e, seen.lock().unwrap().clone());
        }
    }
    panic!("the link never gave up");
}

fn first_unanswered(events: &[LinkEvent]) -> Option<(u32, Unanswered)> {
    events.iter().find_map(|e| match e {
        LinkEvent::Unanswered { attempt, cause, .. } => Some((*attempt, cause.clone())),
        _ => None,
    })
}

#[test]
fn an_unresolvable_host_is_named() {
    init();
    let config = link_config(
        Role::Sender,
        Pattern::Pair,
        vec!["tcp://no-such-host.invalid:5555".into()],
        300,
    );
    let Err(error) = SenderLink::open(config, waker()) else {
        panic!("opened")
    };
    assert!(matches!(error, LinkError::Unresolvable { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.starts_with(
            "cannot resolve host 'no-such-host.invalid' of tcp://no-such-host.invalid:5555"
        ),
        "{text}"
    );
}

#[test]
fn nobody_listening_is_named_and_warned_on_the_first_attempt() {
    init();
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let (events, seen) = recorder();
    let mut config = link_config(Role::Sender, Pattern::ReqRep, vec![endpoint.clone()], 300);
    config.events = events;
    let mut link = SenderLink::open(config, waker()).unwrap();
    let stats = Stats::default();
    let started = Instant::now();
    // The first frame is dropped after one timeout, with an event for a warning.
    assert!(matches!(
        send(&mut link, &tiny_frame(1), &stats),
        Ok(Exchanged::Dropped)
    ));
    assert!(started.elapsed() < Duration::from_millis(300 + 300));
    assert_eq!(
        first_unanswered(&seen.lock().unwrap()),
        Some((1, Unanswered::NobodyListening))
    );
    let (error, events) = until_error(link, &seen);
    assert!(
        matches!(error, LinkError::NobodyListening { attempts: 2, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("no receiver answered at {endpoint} after 2 attempts (300 ms each): connection refused, nobody is listening at {endpoint}")
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, LinkEvent::ConnectRetried { endpoint: p, .. } if *p == endpoint)));
}

#[test]
fn a_receiver_that_never_answers_is_named() {
    init();
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    // Our own receiver, bound but never reading.
    let receiver = ReceiverLink::open(
        link_config(Role::Receiver, Pattern::ReqRep, vec![endpoint.clone()], 300),
        waker(),
        Box::new(|_, _| {}),
    )
    .unwrap();
    let (events, seen) = recorder();
    let mut config = link_config(Role::Sender, Pattern::ReqRep, vec![endpoint.clone()], 300);
    config.events = events;
    let link = SenderLink::open(config, waker()).unwrap();
    let (error, events) = until_error(link, &seen);
    drop(receiver);
    assert!(
        matches!(error, LinkError::NoReceiver { attempts: 2, .. }),
        "{error:?}"
    );
    assert!(error
        .to_string()
        .ends_with("connected, but no reply within the timeout"));
    assert_eq!(first_unanswered(&events), Some((1, Unanswered::NoReply)));
    assert!(events
        .iter()
        .any(|e| matches!(e, LinkEvent::Connected { .. })));
}

#[test]
fn a_second_pair_sender_is_told_the_slot_is_taken() {
    init();
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut receiver = Peer::start(&peer_args("recv", port, 0, &[("seconds", "30".into())]));
    receiver.wait_ready(Duration::from_secs(20));
    let stats = Stats::default();
    let mut first = SenderLink::open(
        link_config(Role::Sender, Pattern::Pair, vec![endpoint.clone()], 2000),
        waker(),
    )
    .unwrap();
    assert!(matches!(
        send(&mut first, &tiny_frame(0), &stats),
        Ok(Exchanged::Reply(_))
    ));
    let (events, seen) = recorder();
    let mut config = link_config(Role::Sender, Pattern::Pair, vec![endpoint.clone()], 500);
    config.events = events;
    let second = SenderLink::open(config, waker()).unwrap();
    let (error, _) = until_error(second, &seen);
    assert!(
        matches!(error, LinkError::PairSlotTaken { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("the receiver's pair slot is probably taken by another sender"),
        "{error}"
    );
    receiver.kill();
}

/// A vidgear key set under a fresh directory.
fn vidgear_keys(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("netgear-net-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.to_string_lossy().into_owned();
    let mut peer = Peer::start(&["keys".into(), "--certs".into(), dir.clone()]);
    peer.report(Duration::from_secs(20));
    dir
}

#[test]
fn a_wrong_server_key_is_named_by_the_sender() {
    init();
    let theirs = vidgear_keys("theirs");
    let ours = vidgear_keys("ours");
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut receiver = Peer::start(&peer_args(
        "recv",
        port,
        1,
        &[
            ("seconds", "30".into()),
            ("secure", "1".into()),
            ("certs", theirs),
        ],
    ));
    receiver.wait_ready(Duration::from_secs(20));
    let keys = KeyDirs::new(&ours).unwrap().load(false).unwrap();
    let (events, seen) = recorder();
    let mut config = link_config(Role::Sender, Pattern::ReqRep, vec![endpoint.clone()], 500);
    config.curve = Some(keys.client_keys().unwrap());
    config.events = events;
    let link = SenderLink::open(config, waker()).unwrap();
    let (error, events) = until_error(link, &seen);
    receiver.kill();
    assert!(
        matches!(error, LinkError::HandshakeFailed { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("CURVE handshake with"),
        "{error}"
    );
    assert!(
        matches!(
            first_unanswered(&events),
            Some((1, Unanswered::HandshakeFailed(_)))
        ),
        "{events:?}"
    );
}

/// Receives on a link until `until` is true of the events, or `span` passes.
fn receive_until(
    link: &mut ReceiverLink,
    seen: &Mutex<Vec<LinkEvent>>,
    stats: &Stats,
    span: Duration,
    until: impl Fn(&[LinkEvent]) -> bool,
) -> Vec<LinkEvent> {
    let end = Instant::now() + span;
    while Instant::now() < end && !until(&seen.lock().unwrap()) {
        let _ = link.recv(Some(Duration::from_millis(100)), stats);
    }
    seen.lock().unwrap().clone()
}

#[test]
fn the_receiver_reports_a_sender_connecting_and_leaving_in_order() {
    init();
    let (events, seen) = recorder();
    let mut config = link_config(
        Role::Receiver,
        Pattern::PubSub,
        vec!["tcp://127.0.0.1:0".into()],
        300,
    );
    config.events = events;
    let mut link = ReceiverLink::open(config, waker(), Box::new(|_, _| {})).unwrap();
    let port = link.bound_port().expect("a bound port");
    assert_ne!(port, 0);
    assert_eq!(
        link.config().endpoints,
        vec![format!("tcp://127.0.0.1:{port}")]
    );
    let mut sender = Peer::start(&peer_args(
        "send",
        port,
        2,
        &[("frames", "20".into()), ("interval", "0.02".into())],
    ));
    let stats = Stats::default();
    let events = receive_until(&mut link, &seen, &stats, Duration::from_secs(20), |e| {
        e.iter()
            .any(|e| matches!(e, LinkEvent::Disconnected { .. }))
    });
    let _ = sender.report(Duration::from_secs(10));
    let names: Vec<&str> = events.iter().filter_map(|e| e.message_name()).collect();
    assert_eq!(
        names,
        ["netgear-connected", "netgear-disconnected"],
        "{events:?}"
    );
    let peers: Vec<Option<&str>> = events
        .iter()
        .filter(|e| e.message_name().is_some())
        .map(|e| e.peer())
        .collect();
    assert!(
        peers[0].is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{peers:?}"
    );
    assert_eq!(peers[0], peers[1]);
    assert_eq!(events.iter().find_map(|e| e.port()), Some(port));
    assert_eq!(stats.connects.load(Ordering::Relaxed), 1);
    assert_eq!(stats.disconnects.load(Ordering::Relaxed), 1);
}

/// Our secure receiver (StoneHouse, or IronHouse with no client listed) and a vidgear
/// sender with `extra`; returns the handshake failures seen and the refusals.
fn secure_receiver_meets(
    mode: SecureModeUnderTest,
    certs: &str,
    extra: Vec<(&'static str, String)>,
) -> (Vec<HandshakeFailure>, u64, usize) {
    let keys = KeyDirs::new(certs).unwrap().load(false).unwrap();
    let port = free_port();
    let (events, seen) = recorder();
    let mut config = link_config(
        Role::Receiver,
        Pattern::ReqRep,
        vec![format!("tcp://127.0.0.1:{port}")],
        300,
    );
    config.curve = Some(keys.server_keys().unwrap());
    config.clients = Some(match mode {
        SecureModeUnderTest::Stone => ClientPolicy::any_key(),
        SecureModeUnderTest::IronNobody => ClientPolicy::listed(Default::default()),
    });
    config.events = events;
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = refused.clone();
    let mut link = ReceiverLink::open(
        config,
        waker(),
        Box::new(move |peer: &str, _why: &_| log.lock().unwrap().push(peer.to_owned())),
    )
    .unwrap();
    let mut args = vec![("frames", "1".into()), ("max-retries", "1".into())];
    args.extend(extra);
    let _sender = Peer::start(&peer_args("send", port, 1, &args));
    let stats = Stats::default();
    let events = receive_until(&mut link, &seen, &stats, Duration::from_secs(20), |e| {
        e.iter()
            .any(|e| matches!(e, LinkEvent::HandshakeFailed { .. }))
    });
    let failures = events
        .iter()
        .filter_map(|e| match e {
            LinkEvent::HandshakeFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    let refusals = refused.lock().unwrap().len();
    (
        failures,
        stats.handshake_failures.load(Ordering::Relaxed),
        refusals,
    )
}

enum SecureModeUnderTest {
    Stone,
    IronNobody,
}

#[test]
fn failed_handshakes_are_counted_and_reported_by_the_receiver() {
    init();
    let ours = vidgear_keys("recv-ours");
    let theirs = vidgear_keys("recv-theirs");
    use SecureModeUnderTest::*;
    // A client that has another server key (its own key set).
    let (failures, counted, _) = secure_receiver_meets(
        Stone,
        &ours,
        vec![("secure", "1".into()), ("certs", theirs)],
    );
    assert!(counted >= 1);
    // libzmq reports the bad HELLO as a protocol error, or, when the peer hangs up first,
    // with no detail; never as an authentication refusal.
    assert!(
        !failures.is_empty()
            && failures.iter().all(|f| match f {
                HandshakeFailure::Protocol { .. } => f.reason().contains("CURVE keys do not match"),
                HandshakeFailure::NoDetail => true,
                _ => false,
            }),
        "{failures:?}"
    );
    // A client without security (NULL mechanism): a mechanism mismatch, or again no detail
    // when the client hangs up first (libzmq's client stops at the mismatch too).
    let (failures, counted, _) = secure_receiver_meets(Stone, &ours, vec![]);
    assert!(counted >= 1);
    assert!(
        !failures.is_empty()
            && failures.iter().all(|f| match f {
                HandshakeFailure::Protocol { .. } => f.reason().contains("mechanism mismatch"),
                HandshakeFailure::NoDetail => true,
                _ => false,
            }),
        "{failures:?}"
    );
    // IronHouse with the client's key not listed: the ZAP refusal and the failed handshake.
    let (failures, counted, refusals) = secure_receiver_meets(
        IronNobody,
        &ours,
        vec![("secure", "2".into()), ("certs", ours.clone())],
    );
    assert!(counted >= 1 && refusals >= 1);
    assert!(
        matches!(failures[0], HandshakeFailure::Auth { status: 400 }),
        "{failures:?}"
    );
}

#[test]
fn ipv6_endpoints_carry_frames_between_our_elements() {
    // The source names the address bare (as vidgear users write it), the sink bracketed.
    let port = free_port().to_string();
    let receiver = Receiver::new(&[("port", &port), ("address", "::1"), ("pattern", "req-rep")]);
    receiver.play();
    let sender = Sender::raw(
        VideoFormat::Gray8,
        32,
        8,
        &[
            ("port", &port),
            ("address", "[::1]"),
            ("pattern", "req-rep"),
            ("jpeg-compression", "false"),
        ],
    );
    sender.play();
    for i in 0..5 {
        sender
            .push_packed(&test_frame(i, 32, 8, 1, false), i as u64)
            .unwrap();
    }
    sender.finish();
    assert!(matches!(
        wait_end(&sender.pipeline, Duration::from_secs(10)),
        Outcome::Eos
    ));
    let (frames, eos) = receiver.collect(Duration::from_secs(5));
    assert!(eos);
    let indices: Vec<usize> = frames.iter().map(|f| frame_index(&f.packed())).collect();
    assert_eq!(indices, [0, 1, 2, 3, 4]);
    assert_eq!(sender.stats().get::<u64>("connects").unwrap(), 1);
}

#[test]
fn an_ephemeral_ipv6_port_is_bound_reported_and_kept_across_a_rebind() {
    init();
    let config = link_config(
        Role::Receiver,
        Pattern::ReqRep,
        vec!["tcp://[::1]:0".into()],
        300,
    );
    let mut receiver = ReceiverLink::open(config, waker(), Box::new(|_, _| {})).unwrap();
    let port = receiver.bound_port().unwrap();
    let stats = Stats::default();
    receiver.rebind(&stats).unwrap();
    assert_eq!(receiver.bound_port(), Some(port));
    let endpoint = format!("tcp://[::1]:{port}");
    assert_eq!(receiver.config().endpoints, vec![endpoint.clone()]);
    let mut sender = SenderLink::open(
        link_config(Role::Sender, Pattern::ReqRep, vec![endpoint], 5000),
        waker(),
    )
    .unwrap();
    let replier = std::thread::spawn(move || {
        let stats = Stats::default();
        match receiver.recv(Some(Duration::from_secs(10)), &stats) {
            Ok(Received::Message(parts)) => {
                let _ = receiver.reply(&[b"ok"]);
                parts.len()
            }
            _ => 0,
        }
    });
    let reply = send(&mut sender, &tiny_frame(1), &stats).unwrap();
    assert!(
        matches!(&reply, Exchanged::Reply(r) if &r[0][..] == b"ok"),
        "{reply:?}"
    );
    assert_eq!(replier.join().unwrap(), 2);
}

#[test]
fn a_dead_receiver_in_multi_client_does_not_stall_the_live_one() {
    let (live, dead) = (free_port(), free_port());
    let receiver = Receiver::new(&[
        ("port", &live.to_string()),
        ("address", "127.0.0.1"),
        ("pattern", "req-rep"),
        ("multi-client", "true"),
    ]);
    receiver.play();
    let sender = Arc::new(Sender::raw(
        VideoFormat::Gray8,
        32,
        8,
        &[
            ("ports", &format!("{live},{dead}")),
            ("address", "127.0.0.1"),
            ("multi-client", "true"),
            ("pattern", "req-rep"),
            ("request-timeout", "500"),
            ("jpeg-compression", "false"),
        ],
    ));
    sender.play();
    // 25 fps for 4 s.
    let mut pushed = 0;
    for i in 0..100usize {
        let due = Duration::from_millis(40 * i as u64);
        let started = Instant::now();
        sender
            .push_packed(&test_frame(i, 32, 8, 1, false), i as u64)
            .unwrap();
        pushed += 1;
        let _ = due;
        std::thread::sleep(Duration::from_millis(40).saturating_sub(started.elapsed()));
    }
    sender.finish();
    assert!(matches!(
        wait_end(&sender.pipeline, Duration::from_secs(10)),
        Outcome::Eos
    ));
    let (frames, eos) = receiver.collect(Duration::from_secs(3));
    assert!(eos, "the live receiver was terminated");
    assert!(
        frames.len() >= pushed * 95 / 100,
        "live receiver got {} of {pushed}",
        frames.len()
    );
    let stats = sender.stats();
    assert_eq!(stats.get::<u64>("receivers-down").unwrap(), 1, "{stats}");
}

/// tests/python/first_frame.py: a vidgear receiver that reports its first frame.
struct FirstFrame {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl FirstFrame {
    fn start(port: u16, pattern: u8) -> FirstFrame {
        use std::io::{BufRead, BufReader};
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/first_frame.py");
        let mut child = Command::new(python())
            .arg(script)
            .args([
                "--port",
                &port.to_string(),
                "--pattern",
                &pattern.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn first_frame.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        FirstFrame { child, lines }
    }

    /// Seconds from bound to first frame.
    fn first_frame_after_ready(&self) -> f64 {
        let ready = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("READY");
        assert_eq!(ready, "READY");
        let first = self
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("no first frame in 10 s");
        first
            .strip_prefix("FIRST ")
            .and_then(|t| t.parse().ok())
            .expect("FIRST line")
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for FirstFrame {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn a_pair_receiver_killed_and_restarted_gets_frames_within_one_request_timeout() {
    let port = free_port();
    let sender = Arc::new(Sender::raw(
        VideoFormat::Gray8,
        32,
        8,
        &[
            ("port", &port.to_string()),
            ("address", "127.0.0.1"),
            ("pattern", "pair"),
            ("request-timeout", "1000"),
            ("max-retries", "30"),
            ("jpeg-compression", "false"),
        ],
    ));
    sender.play();
    let running = Arc::new(AtomicBool::new(true));
    let feeder = {
        let (sender, running) = (sender.clone(), running.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while running.load(Ordering::Relaxed) {
                if sender
                    .push_packed(&test_frame(i as usize, 32, 8, 1, false), i)
                    .is_err()
                {
                    return false;
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            true
        })
    };
    let mut delays = Vec::new();
    let mut receiver = FirstFrame::start(port, 0);
    receiver.first_frame_after_ready();
    for _ in 0..5 {
        receiver.kill();
        std::thread::sleep(Duration::from_millis(300));
        receiver = FirstFrame::start(port, 0);
        delays.push(receiver.first_frame_after_ready());
    }
    running.store(false, Ordering::Relaxed);
    assert!(feeder.join().unwrap(), "the sink failed");
    eprintln!("first frame after a restart: {delays:?} s");
    assert!(delays.iter().all(|d| *d < 1.0 + 0.5), "{delays:?}");
}

#[test]
fn eos_with_nobody_listening_ends_within_one_request_timeout_and_exits_0() {
    let port = free_port();
    let plugin_path = std::env::var("GST_PLUGIN_PATH").unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/release")
            .to_string_lossy()
            .into_owned()
    });
    let mut child = Command::new("gst-launch-1.0")
        .args([
            "-e",
            "videotestsrc",
            "!",
            "video/x-raw,width=64,height=48",
            "!",
            "netgearsink",
        ])
        .arg(format!("port={port}"))
        .args(["address=127.0.0.1", "request-timeout=1000"])
        .env("GST_PLUGIN_PATH", plugin_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0");
    std::thread::sleep(Duration::from_millis(1500));
    let interrupted = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let end = interrupted + Duration::from_secs(20);
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(Instant::now() < end, "gst-launch-1.0 did not end");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = interrupted.elapsed();
    assert!(code.success(), "exit status {code}");
    assert!(took < Duration::from_millis(1000 + 700), "took {took:?}");
}
