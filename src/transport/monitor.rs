// SPDX-License-Identifier: MPL-2.0
//! ZeroMQ's socket monitor (zmq_socket_monitor over inproc), read without a thread: the
//! link polls the monitor beside its socket and turns raw events into `LinkEvent`s,
//! keeping track of which peers are connected.

use super::events::{EventHandler, HandshakeFailure, LinkEvent};
use super::CAT;
use crate::stats::Stats;
use std::collections::{HashMap, VecDeque};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One event as libzmq (v1 monitor format) sends it.
struct RawEvent {
    kind: u32,
    value: u32,
    endpoint: String,
}

/// The reading end of a socket's monitor.
pub(super) struct Monitor {
    socket: zmq::Socket,
}

impl Monitor {
    /// Starts monitoring `watched`. Call before it binds or connects, so no event is lost.
    pub(super) fn attach(
        context: &zmq::Context,
        watched: &mut zmq::Socket,
    ) -> zmq::Result<Monitor> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let endpoint = format!(
            "inproc://netgear-monitor-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        watched.monitor(&endpoint, zmq_sys::ZMQ_EVENT_ALL as i32)?;
        let reader = || -> zmq::Result<zmq::Socket> {
            let socket = context.socket(zmq::PAIR)?;
            socket.set_linger(0)?;
            // libzmq's I/O thread sends events with a blocking send: a full pipe would stall
            // every socket of the context. Unbounded, as events are few and small, and read
            // whenever the link waits.
            socket.set_rcvhwm(0)?;
            socket.connect(&endpoint)?;
            Ok(socket)
        };
        match reader() {
            Ok(socket) => Ok(Monitor { socket }),
            Err(e) => {
                stop_monitoring(watched);
                Err(e)
            }
        }
    }

    /// Reads and forgets every waiting event (before the watched socket stops being watched).
    pub(super) fn discard(&self) {
        while self.next().is_some() {}
    }

    pub(super) fn as_poll_item(&self) -> zmq::PollItem<'_> {
        self.socket.as_poll_item(zmq::POLLIN)
    }

    /// The next waiting event, without blocking.
    fn next(&self) -> Option<RawEvent> {
        loop {
            let head = self.socket.recv_msg(zmq::DONTWAIT).ok()?;
            let mut endpoint = String::new();
            while self.socket.get_rcvmore().unwrap_or(false) {
                match self.socket.recv_msg(zmq::DONTWAIT) {
                    Ok(part) => endpoint = String::from_utf8_lossy(&part).into_owned(),
                    Err(_) => break,
                }
            }
            // 2 bytes event, 4 bytes value, native byte order; anything else is skipped.
            let Some(bytes) = head.get(..6) else { continue };
            let kind = u32::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
            let value = u32::from_ne_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
            return Some(RawEvent {
                kind,
                value,
                endpoint,
            });
        }
    }
}

/// Stops monitoring `watched` (libzmq's documented null endpoint). Call while the monitor's
/// reader is still open: libzmq sends a last event, and its I/O thread would block forever on
/// a closed reader, stalling every socket of the context.
pub(super) fn stop_monitoring(watched: &mut zmq::Socket) {
    // SAFETY: `watched` is an open socket; a null endpoint only stops its monitor.
    unsafe {
        zmq_sys::zmq_socket_monitor(watched.as_mut_ptr(), std::ptr::null(), 0);
    }
}

/// The address of the peer on a connected socket, read while the fd is fresh.
fn peer_of(fd: u32) -> Option<String> {
    let fd = i32::try_from(fd).ok()?;
    // SAFETY: the fd belongs to libzmq; ManuallyDrop keeps us from closing it, and
    // getpeername on an fd that is no longer a socket just fails.
    let stream = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
    stream.peer_addr().ok().map(|a| a.to_string())
}

/// What happened on a socket since the link last looked, and who is connected now.
#[derive(Default)]
pub(super) struct Peers {
    /// Connections (fd, peer address) whose handshake has not finished yet, oldest first.
    handshaking: VecDeque<(u32, Option<String>)>,
    /// Handshaken connections by fd.
    connected: HashMap<u32, Option<String>>,
    /// Since `mark()`: a connect was refused / retried.
    pub(super) refused: bool,
    /// A TCP (or ipc) connection was made, handshaken or not, and no connect has been
    /// refused since. Kept across `mark()`: the socket may connect before the first attempt.
    pub(super) reached: bool,
    /// A connection was made since libzmq last scheduled a reconnect.
    connected_since_retry: bool,
    /// `LinkEvent::Refused` was sent and no handshake has succeeded since.
    refusal_reported: bool,
    /// Since `mark()`: a handshake succeeded.
    pub(super) handshaken: bool,
    /// Since `mark()`: a handshaken peer went away.
    pub(super) lost: bool,
    /// The last handshake failure, until a handshake succeeds or a connect is refused.
    /// Kept across `mark()`: libzmq does not reconnect after a refused handshake, so the
    /// failure may be the only event the socket ever reports, before the first attempt.
    pub(super) failed: Option<HandshakeFailure>,
    /// A receiver that checks no keys: a connection that closes during the handshake is
    /// someone probing the port (`nc -z`, a health check, an SSH tunnel starting), not a
    /// refused client.
    closes_are_probes: bool,
}

impl Peers {
    /// The state of a fresh socket; see `closes_are_probes`.
    pub(super) fn new(closes_are_probes: bool) -> Self {
        Peers {
            closes_are_probes,
            ..Peers::default()
        }
    }

    /// How many handshaken peers are connected now.
    pub(super) fn connected(&self) -> usize {
        self.connected.len()
    }

    /// Whether something answered at the TCP level or is still mid-handshake:
    /// a peer that closes during a refused handshake may leave no failure event behind.
    pub(super) fn reached_anyone(&self) -> bool {
        self.reached || !self.handshaking.is_empty()
    }

    /// Starts a new observation window (one attempt).
    pub(super) fn mark(&mut self) {
        self.refused = false;
        self.handshaken = false;
        self.lost = false;
    }

    /// Reads every waiting event, updates the state, counts, logs and reports.
    pub(super) fn drain(&mut self, monitor: &Monitor, stats: &Stats, events: &EventHandler) {
        while let Some(raw) = monitor.next() {
            if let Some(event) = self.apply(raw, stats) {
                if event.is_routine() {
                    gst::debug!(CAT, "{event}");
                } else {
                    gst::info!(CAT, "{event}");
                }
                events.emit(event);
            }
        }
    }

    fn apply(&mut self, raw: RawEvent, stats: &Stats) -> Option<LinkEvent> {
        let endpoint = raw.endpoint;
        match raw.kind {
            zmq_sys::ZMQ_EVENT_CONNECTED => {
                self.reached = true;
                self.connected_since_retry = true;
                self.handshaking.push_back((raw.value, None));
                Some(LinkEvent::TcpConnected { endpoint })
            }
            zmq_sys::ZMQ_EVENT_ACCEPTED => {
                let peer = peer_of(raw.value);
                self.handshaking.push_back((raw.value, peer.clone()));
                Some(LinkEvent::Accepted { endpoint, peer })
            }
            zmq_sys::ZMQ_EVENT_CONNECT_RETRIED => {
                // libzmq retries after a dropped handshake too; only a retry without a
                // connection since the last one means nobody is listening any more.
                let nobody = !std::mem::take(&mut self.connected_since_retry);
                if nobody {
                    self.reached = false;
                    self.failed = None;
                }
                self.refused = true;
                if nobody && !std::mem::replace(&mut self.refusal_reported, true) {
                    return Some(LinkEvent::Refused { endpoint });
                }
                let retry_in = Duration::from_millis(u64::from(raw.value));
                Some(LinkEvent::ConnectRetried { endpoint, retry_in })
            }
            zmq_sys::ZMQ_EVENT_CONNECT_DELAYED => {
                gst::trace!(CAT, "connecting to {endpoint}");
                None
            }
            zmq_sys::ZMQ_EVENT_HANDSHAKE_SUCCEEDED => {
                let (fd, peer) = self.handshaking.pop_front().unwrap_or((u32::MAX, None));
                self.connected.insert(fd, peer.clone());
                self.handshaken = true;
                self.failed = None;
                self.refusal_reported = false;
                Stats::bump(&stats.connects);
                Some(LinkEvent::Connected { endpoint, peer })
            }
            zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL if self.closes_are_probes => {
                let peer = self.handshaking.pop_front().and_then(|(_, p)| p);
                Stats::bump(&stats.probes);
                Some(LinkEvent::Probed { endpoint, peer })
            }
            zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_AUTH => {
                let reason = match raw.kind {
                    zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_AUTH => {
                        HandshakeFailure::Auth { status: raw.value }
                    }
                    zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL => {
                        HandshakeFailure::Protocol { code: raw.value }
                    }
                    _ => HandshakeFailure::NoDetail,
                };
                let peer = self.handshaking.pop_front().and_then(|(_, p)| p);
                self.handshake_failed(endpoint, peer, reason, stats)
            }
            zmq_sys::ZMQ_EVENT_DISCONNECTED => self.disconnected(raw.value, endpoint, stats),
            zmq_sys::ZMQ_EVENT_BIND_FAILED => Some(LinkEvent::BindFailed {
                endpoint,
                error: zmq::Error::from_raw(raw.value as i32).to_string(),
            }),
            _ => {
                gst::trace!(CAT, "socket event {:#x} on {endpoint}", raw.kind);
                None
            }
        }
    }

    fn disconnected(&mut self, fd: u32, endpoint: String, stats: &Stats) -> Option<LinkEvent> {
        if let Some(at) = self.handshaking.iter().position(|(f, _)| *f == fd) {
            return self.refused_socket_type(at, endpoint, stats);
        }
        // The sender's handshake events carry no fd: fall back to any handshaken peer.
        let known = self.connected.remove(&fd).or_else(|| {
            let any = *self.connected.keys().find(|f| **f == u32::MAX)?;
            self.connected.remove(&any)
        });
        let peer = known?;
        // A peer that was up went away: libzmq's next retries tell whether anyone listens.
        self.reached = false;
        self.connected_since_retry = false;
        self.lost = true;
        Stats::bump(&stats.disconnects);
        Some(LinkEvent::Disconnected { endpoint, peer })
    }

    /// A connection that closed mid-handshake without a handshake event: libzmq (4.3)
    /// reports none when it refuses the peer's socket type, i.e. the other end uses
    /// another pattern.
    fn refused_socket_type(
        &mut self,
        at: usize,
        endpoint: String,
        stats: &Stats,
    ) -> Option<LinkEvent> {
        let (_, peer) = self.handshaking.remove(at)?;
        let code = zmq_sys::ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_METADATA;
        let reason = HandshakeFailure::Protocol { code };
        self.handshake_failed(endpoint, peer, reason, stats)
    }

    fn handshake_failed(
        &mut self,
        endpoint: String,
        peer: Option<String>,
        reason: HandshakeFailure,
        stats: &Stats,
    ) -> Option<LinkEvent> {
        self.failed = Some(reason.clone());
        Stats::bump(&stats.handshake_failures);
        Some(LinkEvent::HandshakeFailed {
            endpoint,
            peer,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(peers: &mut Peers, kinds: &[u32]) -> (Stats, Vec<LinkEvent>) {
        let stats = Stats::default();
        let mut events = Vec::new();
        for &kind in kinds {
            let raw = RawEvent {
                kind,
                value: 7,
                endpoint: "tcp://127.0.0.1:1".into(),
            };
            events.extend(peers.apply(raw, &stats));
        }
        (stats, events)
    }

    const PROBE: [u32; 3] = [
        zmq_sys::ZMQ_EVENT_ACCEPTED,
        zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL,
        zmq_sys::ZMQ_EVENT_DISCONNECTED,
    ];

    #[test]
    fn a_connection_closed_during_the_handshake_is_a_probe_on_a_plain_receiver() {
        let mut peers = Peers::new(true);
        let (stats, events) = feed(&mut peers, &PROBE);
        assert_eq!(stats.probes.load(Ordering::Relaxed), 1);
        assert_eq!(stats.handshake_failures.load(Ordering::Relaxed), 0);
        assert!(matches!(events[1], LinkEvent::Probed { .. }), "{events:?}");
        assert!(events.iter().all(|e| e.is_routine()), "{events:?}");
        assert!(peers.handshaking.is_empty() && peers.failed.is_none());
    }

    #[test]
    fn a_connection_closed_during_the_handshake_is_a_failure_on_a_secure_receiver() {
        let mut peers = Peers::new(false);
        let (stats, events) = feed(&mut peers, &PROBE);
        assert_eq!(stats.probes.load(Ordering::Relaxed), 0);
        assert_eq!(stats.handshake_failures.load(Ordering::Relaxed), 1);
        assert!(
            matches!(
                &events[1],
                LinkEvent::HandshakeFailed {
                    reason: HandshakeFailure::NoDetail,
                    ..
                }
            ),
            "{events:?}"
        );
        assert!(!events[1].is_routine());
    }

    #[test]
    fn a_failure_before_the_first_attempt_survives_its_mark() {
        let mut peers = Peers::default();
        feed(
            &mut peers,
            &[
                zmq_sys::ZMQ_EVENT_CONNECTED,
                zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL,
            ],
        );
        peers.mark();
        assert_eq!(peers.failed, Some(HandshakeFailure::Protocol { code: 7 }));
        assert!(peers.reached_anyone());
    }

    #[test]
    fn a_retry_after_a_dropped_handshake_still_counts_as_reached() {
        let mut peers = Peers::default();
        feed(
            &mut peers,
            &[
                zmq_sys::ZMQ_EVENT_CONNECTED,
                zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL,
                zmq_sys::ZMQ_EVENT_CONNECT_RETRIED,
            ],
        );
        assert!(peers.reached_anyone());
        assert_eq!(peers.failed, Some(HandshakeFailure::NoDetail));
    }

    #[test]
    fn a_refused_connect_clears_what_an_earlier_peer_did() {
        let mut peers = Peers::default();
        feed(
            &mut peers,
            &[
                zmq_sys::ZMQ_EVENT_CONNECTED,
                zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_AUTH,
                zmq_sys::ZMQ_EVENT_CONNECT_RETRIED,
                zmq_sys::ZMQ_EVENT_CONNECT_RETRIED,
            ],
        );
        assert!(!peers.reached_anyone());
        assert_eq!(peers.failed, None);
    }

    #[test]
    fn a_successful_handshake_clears_an_old_failure() {
        let mut peers = Peers::default();
        feed(
            &mut peers,
            &[
                zmq_sys::ZMQ_EVENT_CONNECTED,
                zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_AUTH,
                zmq_sys::ZMQ_EVENT_CONNECTED,
                zmq_sys::ZMQ_EVENT_HANDSHAKE_SUCCEEDED,
            ],
        );
        assert_eq!(peers.failed, None);
        assert_eq!(peers.connected(), 1);
    }
}
