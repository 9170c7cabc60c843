// SPDX-License-Identifier: MPL-2.0
//! What the transport tells its element while it works: socket events from ZeroMQ's
//! monitor and the sender's unanswered attempts. Delivered through a callback the element
//! sets in `LinkConfig`; it runs on the thread that uses the link, never under an element
//! lock the link knows of.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why a CURVE (or ZMTP) handshake failed, from ZeroMQ's monitor; its text is a short,
/// user-facing reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeFailure {
    /// ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: the ZAP handler refused the key (`status` e.g. 400).
    #[error("the receiver's authentication refused the client key (status {status})")]
    Auth { status: u32 },
    /// ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: the peer spoke another mechanism or its keys
    /// did not decrypt (`code` is a ZMQ_PROTOCOL_ERROR_* value).
    #[error("{}", protocol_error_text(*.code))]
    Protocol { code: u32 },
    /// ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: the connection closed during the handshake.
    #[error("the connection closed during the handshake")]
    NoDetail,
}

impl HandshakeFailure {
    /// ZeroMQ refused the peer's socket type: the two ends use different patterns.
    pub fn is_socket_type_mismatch(&self) -> bool {
        *self
            == HandshakeFailure::Protocol {
                code: zmq_sys::ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_METADATA,
            }
    }
}

fn protocol_error_text(code: u32) -> &'static str {
    match code {
        zmq_sys::ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH => {
            "security mechanism mismatch (one side uses CURVE, the other does not)"
        }
        zmq_sys::ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC => {
            "CURVE keys do not match (wrong server key or wrong client secret)"
        }
        zmq_sys::ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE => "CURVE key exchange failed",
        zmq_sys::ZMQ_PROTOCOL_ERROR_ZAP_BAD_REQUEST_ID
        | zmq_sys::ZMQ_PROTOCOL_ERROR_ZAP_BAD_VERSION
        | zmq_sys::ZMQ_PROTOCOL_ERROR_ZAP_INVALID_STATUS_CODE
        | zmq_sys::ZMQ_PROTOCOL_ERROR_ZAP_MALFORMED_REPLY
        | zmq_sys::ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED => "the authentication handler failed",
        zmq_sys::ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_METADATA => {
            "socket type mismatch (the peer uses another pattern)"
        }
        _ => "ZMTP protocol error during the handshake",
    }
}

/// Why one attempt of the sender got no reply in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unanswered {
    /// No connection could be made: connection refused, nobody listening.
    #[error("connection refused, nobody is listening")]
    NobodyListening,
    /// Connections were made but the handshake failed; `secure`: this end uses CURVE, so
    /// keys are a likely cause.
    #[error("{}", handshake_text(reason, *secure))]
    HandshakeFailed {
        reason: HandshakeFailure,
        secure: bool,
    },
    /// What listens there does not match this sender (learned by `probe`).
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    /// The receiver's connection went away while we waited.
    #[error("the receiver's connection was lost")]
    ConnectionLost,
    /// PAIR: connected and handshaken, yet never answered; `secure`: in secure mode.
    #[error("{}", if *secure { SECURE_PAIR_SILENT } else { PAIR_SILENT })]
    PairSlotTaken { secure: bool },
    /// Connected, but no reply within the timeout.
    #[error("connected, but no reply within the timeout")]
    NoReply,
}

impl Unanswered {
    /// What the user can do about it, for the debug text of warnings and errors.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Unanswered::NobodyListening => {
                "start the receiver, or check address, port and protocol"
            }
            Unanswered::HandshakeFailed { secure: true, .. } => {
                "check secure-mode and the keys in cert-dir on both ends"
            }
            Unanswered::HandshakeFailed { secure: false, .. } => {
                "check that pattern and secure-mode match the receiver's"
            }
            Unanswered::Mismatch(_) => "make pattern and secure-mode match the receiver's",
            Unanswered::ConnectionLost => "the receiver stopped or restarted; the sink retries",
            Unanswered::PairSlotTaken { .. } => "restart the receiver, or stop the other sender",
            Unanswered::NoReply => {
                "the receiver is connected but slow or stalled; raise request-timeout or check it"
            }
        })
    }
}

const PAIR_SILENT: &str =
    "connected but never answered: the receiver's pair slot is probably taken by another sender";
/// vidgear's secure pattern-0 receiver: libzmq wakes its poll for the CURVE credential it
/// queues before a connection's first message, and vidgear takes the empty read that
/// follows for a lost session; its receive thread ends. See README, "Messages".
const SECURE_PAIR_SILENT: &str = "connected but never answered: a vidgear receiver in secure pair mode stops receiving (its thread dies with zmq.error.Again, a vidgear fault) when a connection's first frame is larger than about 8 KB; restart it and use pattern req-rep, or send a first frame under 8 KB; or another sender holds the receiver's pair slot";

fn handshake_text(reason: &HandshakeFailure, secure: bool) -> String {
    let key_related = matches!(
        reason,
        HandshakeFailure::Auth { .. }
            | HandshakeFailure::NoDetail
            | HandshakeFailure::Protocol {
                code: zmq_sys::ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
                    | zmq_sys::ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE
            }
    );
    match (secure, key_related) {
        (true, true) => format!("CURVE handshake failed ({reason}); check that the sender uses the receiver's server public key"),
        (true, false) => format!("CURVE handshake failed ({reason})"),
        (false, _) => format!("the ZeroMQ handshake failed ({reason})"),
    }
}

/// How the receiver at an endpoint differs from what this sender expects, from `probe`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// Both speak NetGear, in different patterns.
    #[error("pattern mismatch: the receiver uses pattern {theirs}, this sender pattern {ours}; set the same pattern on both ends")]
    Pattern {
        theirs: &'static str,
        ours: &'static str,
    },
    /// A ZeroMQ socket of a type no NetGear receiver uses.
    #[error("the receiver is a ZeroMQ {0} socket, not a NetGear receiver")]
    SocketType(String),
    /// The receiver uses CURVE, this sender does not.
    #[error("the receiver uses secure mode (CURVE) and this sender does not: set secure-mode and cert-dir as on the receiver")]
    ReceiverSecure,
    /// This sender uses CURVE, the receiver does not.
    #[error("this sender uses secure mode (CURVE) and the receiver does not: set secure-mode=none, or start the receiver in secure mode")]
    ReceiverPlain,
    /// A ZeroMQ mechanism NetGear never uses (PLAIN, GSSAPI).
    #[error("the receiver uses the ZeroMQ {0} mechanism, which no NetGear receiver uses")]
    Mechanism(String),
    /// Something that does not speak ZeroMQ.
    #[error(
        "what listens there is not a ZeroMQ/NetGear receiver (it answered with no ZeroMQ greeting)"
    )]
    NotZeroMq,
    /// Something that accepted the connection and said nothing.
    #[error("what listens there is not a NetGear receiver (it accepted the connection but sent no ZeroMQ greeting)")]
    Silent,
}

/// Something the element may want to post, log or count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A ZMTP peer is ready (handshake succeeded). `endpoint` is the receiver's endpoint on
    /// the sender, the bound endpoint on the receiver; `peer` the sender's address there.
    Connected {
        endpoint: String,
        peer: Option<String>,
    },
    /// A peer that had connected went away.
    Disconnected {
        endpoint: String,
        peer: Option<String>,
    },
    /// Sender: the TCP (or ipc) connection was made; the handshake follows.
    TcpConnected { endpoint: String },
    /// Receiver: a sender's TCP connection was accepted; the handshake follows.
    Accepted {
        endpoint: String,
        peer: Option<String>,
    },
    /// A handshake failed (counted in `handshake-failures`). On the receiver `Auth` failures
    /// were already reported through the ZAP handler's refusal callback.
    HandshakeFailed {
        endpoint: String,
        peer: Option<String>,
        reason: HandshakeFailure,
    },
    /// Receiver without CURVE: a connection closed before its handshake finished (a port
    /// check, a health probe, an SSH tunnel starting); counted in `probes`.
    Probed {
        endpoint: String,
        peer: Option<String>,
    },
    /// Sender: a connect was refused with no connection made since the one before, so
    /// nobody listens at `endpoint`: sent once per outage, as soon as it is certain.
    Refused { endpoint: String },
    /// Sender: connecting failed (nobody listening); ZeroMQ retries after `retry_in`.
    ConnectRetried {
        endpoint: String,
        retry_in: Duration,
    },
    /// Receiver: ZeroMQ could not bind (reported by the monitor; `bind` errors also fail).
    BindFailed { endpoint: String, error: String },
    /// Sender: attempt `attempt` (1-based) of at most `attempts` had no reply within
    /// `timeout`. The first one is worth a warning.
    Unanswered {
        endpoints: String,
        attempt: u32,
        attempts: u32,
        timeout: Duration,
        cause: Unanswered,
    },
    /// Sender, multi-client req-rep: a receiver stopped answering; frames go to the others
    /// while it is retried in the background. Sent once per outage.
    ReceiverDown { endpoint: String, cause: Unanswered },
    /// Sender, multi-client req-rep: a receiver that was down is connected again.
    ReceiverBack { endpoint: String },
    /// Sender: the socket was closed and opened again (lazy pirate).
    Reconnected { endpoints: String },
    /// Receiver: the socket was closed and bound again after silence.
    Rebound { endpoints: String },
}

impl LinkEvent {
    /// The bus message name the elements use for connection changes, if this is one.
    pub fn message_name(&self) -> Option<&'static str> {
        match self {
            LinkEvent::Connected { .. } | LinkEvent::ReceiverBack { .. } => {
                Some("netgear-connected")
            }
            LinkEvent::Disconnected { .. } | LinkEvent::ReceiverDown { .. } => {
                Some("netgear-disconnected")
            }
            _ => None,
        }
    }

    /// Whether the event is only worth a debug line: connections accepted and probes
    /// happen all the time on a reachable port.
    pub fn is_routine(&self) -> bool {
        matches!(self, LinkEvent::Accepted { .. } | LinkEvent::Probed { .. })
    }

    /// The endpoint the event is about.
    pub fn endpoint(&self) -> &str {
        match self {
            LinkEvent::Connected { endpoint, .. }
            | LinkEvent::Disconnected { endpoint, .. }
            | LinkEvent::TcpConnected { endpoint }
            | LinkEvent::Accepted { endpoint, .. }
            | LinkEvent::HandshakeFailed { endpoint, .. }
            | LinkEvent::Probed { endpoint, .. }
            | LinkEvent::Refused { endpoint }
            | LinkEvent::ConnectRetried { endpoint, .. }
            | LinkEvent::BindFailed { endpoint, .. }
            | LinkEvent::ReceiverDown { endpoint, .. }
            | LinkEvent::ReceiverBack { endpoint } => endpoint,
            LinkEvent::Unanswered { endpoints, .. }
            | LinkEvent::Reconnected { endpoints }
            | LinkEvent::Rebound { endpoints } => endpoints,
        }
    }

    /// The peer's address, where known (receiver side).
    pub fn peer(&self) -> Option<&str> {
        match self {
            LinkEvent::Connected { peer, .. }
            | LinkEvent::Disconnected { peer, .. }
            | LinkEvent::Accepted { peer, .. }
            | LinkEvent::HandshakeFailed { peer, .. }
            | LinkEvent::Probed { peer, .. } => peer.as_deref(),
            _ => None,
        }
    }

    /// The port of `endpoint`, where it has one.
    pub fn port(&self) -> Option<u16> {
        super::address::port_of(self.endpoint())
    }
}

impl fmt::Display for LinkEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = |peer: &Option<String>| {
            peer.as_ref()
                .map(|p| format!(" (peer {p})"))
                .unwrap_or_default()
        };
        match self {
            LinkEvent::Connected { endpoint, peer } => {
                write!(f, "connected on {endpoint}{}", from(peer))
            }
            LinkEvent::Disconnected { endpoint, peer } => {
                write!(f, "disconnected on {endpoint}{}", from(peer))
            }
            LinkEvent::TcpConnected { endpoint } => write!(f, "TCP connection to {endpoint}"),
            LinkEvent::Accepted { endpoint, peer } => {
                write!(f, "accepted a connection on {endpoint}{}", from(peer))
            }
            LinkEvent::HandshakeFailed {
                endpoint,
                peer,
                reason,
            } => write!(f, "handshake on {endpoint}{} failed: {reason}", from(peer)),
            LinkEvent::Probed { endpoint, peer } => write!(
                f,
                "a connection to {endpoint}{} closed before its handshake (a probe)",
                from(peer)
            ),
            LinkEvent::Refused { endpoint } => write!(
                f,
                "connection refused: nobody is listening at {endpoint}"
            ),
            LinkEvent::ConnectRetried { endpoint, retry_in } => write!(
                f,
                "could not connect to {endpoint}; retrying in {} ms",
                retry_in.as_millis()
            ),
            LinkEvent::BindFailed { endpoint, error } => {
                write!(f, "could not bind {endpoint}: {error}")
            }
            LinkEvent::Unanswered {
                endpoints,
                attempt,
                attempts,
                timeout,
                cause,
            } => write!(
                f,
                "no reply from {endpoints} within {} ms (attempt {attempt} of {attempts}): {cause}",
                timeout.as_millis()
            ),
            LinkEvent::ReceiverDown { endpoint, cause } => write!(
                f,
                "receiver {endpoint} does not answer ({cause}); sending to the others and retrying it in the background"
            ),
            LinkEvent::ReceiverBack { endpoint } => write!(f, "receiver {endpoint} is back"),
            LinkEvent::Reconnected { endpoints } => write!(f, "reconnected to {endpoints}"),
            LinkEvent::Rebound { endpoints } => write!(f, "bound {endpoints} again"),
        }
    }
}

/// The element's callback for link events.
pub type OnEvent = Arc<dyn Fn(LinkEvent) + Send + Sync>;

/// Holds the optional event callback inside `LinkConfig` (which is `Debug` and `Clone`).
#[derive(Clone, Default)]
pub struct EventHandler(Option<OnEvent>);

impl EventHandler {
    pub fn new(callback: OnEvent) -> Self {
        EventHandler(Some(callback))
    }

    pub(super) fn emit(&self, event: LinkEvent) {
        if let Some(callback) = &self.0 {
            callback(event);
        }
    }
}

impl fmt::Debug for EventHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "EventHandler(set)"
        } else {
            "EventHandler(none)"
        })
    }
}
