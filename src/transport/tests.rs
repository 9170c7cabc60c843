// SPDX-License-Identifier: MPL-2.0
//! The links against real peers: errors that name the cause (unresolvable host, nobody
//! listening, no reply, a taken pair slot, a wrong server key), socket events in order,
//! failed handshakes counted, an ephemeral IPv6 port kept across a rebind, and the options
//! every socket gets.

use super::*;
use crate::test_support::{free_port, init, peer_args, vidgear_keys, Peer};
use netgear_protocol::keys::KeyDirs;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

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
        matches!(
            error,
            LinkError::Unanswered {
                attempts: 2,
                cause: Unanswered::NobodyListening,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("no receiver answered at {endpoint} after 2 attempts (300 ms each): connection refused, nobody is listening")
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, LinkEvent::ConnectRetried { endpoint: p, .. } if *p == endpoint)));
    // The first refusal of each socket is said at once.
    assert!(matches!(
        events.iter().find(|e| matches!(e, LinkEvent::Refused { .. } | LinkEvent::ConnectRetried { .. })),
        Some(LinkEvent::Refused { endpoint: p }) if *p == endpoint
    ));
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
        matches!(
            error,
            LinkError::Unanswered {
                attempts: 2,
                cause: Unanswered::NoReply,
                ..
            }
        ),
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
        matches!(
            error,
            LinkError::Unanswered {
                cause: Unanswered::PairSlotTaken { secure: false },
                ..
            }
        ),
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
        matches!(
            error,
            LinkError::Unanswered {
                cause: Unanswered::HandshakeFailed { secure: true, .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("CURVE handshake failed (")
            && error
                .to_string()
                .ends_with("check that the sender uses the receiver's server public key"),
        "{error}"
    );
    assert!(
        matches!(
            first_unanswered(&events),
            Some((1, Unanswered::HandshakeFailed { .. }))
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
                HandshakeFailure::Protocol { .. } =>
                    f.to_string().contains("CURVE keys do not match"),
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
                HandshakeFailure::Protocol { .. } => f.to_string().contains("mechanism mismatch"),
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

/// The options every socket gets, read back from libzmq.
mod socket_option_tests {
    use super::*;

    fn config(role: Role, pattern: Pattern, request_timeout: Duration) -> LinkConfig {
        let endpoints = vec!["tcp://127.0.0.1:1".into()];
        link_config(role, pattern, endpoints, request_timeout.as_millis() as u64)
    }

    fn tcp_maxrt(socket: &mut zmq::Socket) -> i32 {
        let mut value = 0i32;
        let mut size = std::mem::size_of::<i32>();
        let option = zmq_sys::ZMQ_TCP_MAXRT as i32;
        let out = (&mut value as *mut i32).cast();
        // SAFETY: an open socket, and an int option read with its size.
        let rc = unsafe { zmq_sys::zmq_getsockopt(socket.as_mut_ptr(), option, out, &mut size) };
        assert_eq!(rc, 0);
        value
    }

    #[test]
    fn liveness_scales_with_the_request_timeout_within_bounds() {
        let default = Liveness::for_request_timeout(Duration::from_millis(4000));
        assert_eq!(
            default,
            Liveness {
                heartbeat_interval: Duration::from_millis(250),
                heartbeat_timeout: Duration::from_secs(1),
                connect_timeout: Duration::from_millis(500),
            }
        );
        let short = Liveness::for_request_timeout(Duration::from_millis(10));
        assert_eq!(short, default);
        let long = Liveness::for_request_timeout(Duration::from_secs(600));
        assert_eq!(long.heartbeat_timeout, MAX_HEARTBEAT_TIMEOUT);
        assert_eq!(long.heartbeat_interval, MAX_HEARTBEAT_TIMEOUT / 4);
    }

    #[test]
    fn every_socket_gets_heartbeats_and_a_connect_timeout() {
        let context = zmq::Context::new();
        for role in [Role::Sender, Role::Receiver] {
            for pattern in [Pattern::Pair, Pattern::ReqRep, Pattern::PubSub] {
                let config = config(role, pattern, Duration::from_millis(8000));
                let mut channel = Channel::new(&context, &config, Vec::new()).unwrap();
                assert_eq!(tcp_maxrt(&mut channel.socket), 2000);
                let socket = &channel.socket;
                assert_eq!(socket.get_heartbeat_ivl().unwrap(), 500);
                assert_eq!(socket.get_heartbeat_timeout().unwrap(), 2000);
                assert_eq!(socket.get_heartbeat_ttl().unwrap(), 2000);
                assert_eq!(socket.get_connect_timeout().unwrap(), 1000);
                assert_eq!(socket.get_reconnect_ivl().unwrap(), 100);
            }
        }
    }

    #[test]
    fn a_pub_sender_queues_only_on_a_finished_connection() {
        let context = zmq::Context::new();
        let config = config(Role::Sender, Pattern::PubSub, Duration::from_secs(4));
        let channel = Channel::new(&context, &config, Vec::new()).unwrap();
        assert!(channel.socket.is_immediate().unwrap());
    }
}
