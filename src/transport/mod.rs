// SPDX-License-Identifier: MPL-2.0
//! ZeroMQ sockets for NetGear: endpoints, socket options, the sender's lazy-pirate
//! retries, the receiver's rebind, socket events from ZeroMQ's monitor, and waits that
//! `unlock()` can interrupt. GStreamer-free except for the `netgeartransport` debug
//! category, so retries, reconnects, rebinds and socket events show at
//! `GST_DEBUG=netgear*:4`.

mod address;
mod curve;
mod error;
mod events;
mod monitor;
mod probe;
mod receiver;
mod sender;
#[cfg(test)]
mod tests;

pub use crate::stats::Stats;
pub use address::endpoint;
pub use curve::{ClientPolicy, Refusal};
pub use error::LinkError;
pub use events::{EventHandler, HandshakeFailure, LinkEvent, Unanswered};
pub use probe::pattern_name;
pub use receiver::{Received, ReceiverLink};
#[cfg(test)]
pub use sender::Exchanged;
pub use sender::{FrameStamp, Order, OutFrame, Outcome, SenderLink};

use crate::config::{Pattern, Role};
use error::socket_error;
use monitor::{Monitor, Peers};
use netgear_protocol::keys::CurveKeys;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// The transport's debug category (`GST_DEBUG=netgeartransport:4`).
pub static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "netgeartransport",
        gst::DebugColorFlags::empty(),
        Some("NetGear ZeroMQ transport: connections, retries, reconnects, rebinds"),
    )
});

/// A message never has more parts than this; extra parts are read and discarded.
const MAX_PARTS: usize = 3;
/// Pattern 2 receivers: the kernel receive buffer (ZMQ_RCVBUF). See `ReceiverLink::newest`.
const SUB_RCVBUF: i32 = 256 * 1024;
/// Bounds of a link's heartbeat timeout (see `Liveness`).
const MIN_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// Between a lost (or timed-out) connection and the next connect, without back-off.
const RECONNECT_INTERVAL: Duration = Duration::from_millis(100);

/// Frame bytes ZeroMQ sends without copying them (e.g. a mapped GStreamer buffer). Shared,
/// so a resend after a retry costs no copy either; ZeroMQ drops its reference once sent.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// One part of an outgoing message.
#[derive(Clone, Copy)]
pub enum Part<'a> {
    /// Copied into the ZeroMQ message (small parts: headers, encoded JPEG).
    Copied(&'a [u8]),
    /// Lent to ZeroMQ without a copy.
    Shared(&'a SharedBytes),
}

unsafe extern "C" fn release_shared(_data: *mut std::ffi::c_void, hint: *mut std::ffi::c_void) {
    // SAFETY: `hint` is the box leaked by `send_part` for this message, freed once here.
    drop(unsafe { Box::from_raw(hint.cast::<SharedBytes>()) });
}

/// Sends one part; a shared part becomes a ZeroMQ message over the same memory.
fn send_part(socket: &mut zmq::Socket, part: Part<'_>, flags: i32) -> zmq::Result<()> {
    let shared = match part {
        Part::Copied(bytes) => return socket.send(bytes, flags),
        Part::Shared(shared) => shared,
    };
    let keep = Box::new(shared.clone());
    let bytes: &[u8] = (**keep).as_ref();
    let (data, len) = (bytes.as_ptr().cast_mut().cast(), bytes.len());
    let hint = Box::into_raw(keep);
    let mut msg = std::mem::MaybeUninit::<zmq_sys::zmq_msg_t>::uninit();
    // SAFETY: `data` stays valid while `hint` (a reference to its owner) lives; libzmq
    // calls `release_shared` exactly once when it is done with the message, including
    // when the message is closed unsent below. libzmq only reads the data.
    unsafe {
        if zmq_sys::zmq_msg_init_data(
            msg.as_mut_ptr(),
            data,
            len,
            Some(release_shared),
            hint.cast(),
        ) != 0
        {
            drop(Box::from_raw(hint));
            return Err(zmq::Error::from_raw(zmq_sys::zmq_errno()));
        }
        if zmq_sys::zmq_msg_send(msg.as_mut_ptr(), socket.as_mut_ptr(), flags) < 0 {
            let error = zmq::Error::from_raw(zmq_sys::zmq_errno());
            zmq_sys::zmq_msg_close(msg.as_mut_ptr());
            return Err(error);
        }
    }
    Ok(())
}

/// Lets another thread interrupt a blocking wait: `unlock()` calls `wake()`, every wait
/// polls this socket pair beside the ZeroMQ socket, and `reset()` (from `unlock_stop()`)
/// re-arms it. While woken, every wait returns at once.
#[derive(Debug)]
pub struct Waker {
    readable: UnixStream,
    writable: UnixStream,
}

impl Waker {
    pub fn new() -> io::Result<Self> {
        let (readable, writable) = UnixStream::pair()?;
        readable.set_nonblocking(true)?;
        writable.set_nonblocking(true)?;
        Ok(Waker { readable, writable })
    }

    pub fn wake(&self) {
        // A full pipe already means "woken".
        let _ = (&self.writable).write(&[1]);
    }

    pub fn reset(&self) {
        let mut sink = [0u8; 64];
        while matches!((&self.readable).read(&mut sink), Ok(n) if n > 0) {}
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Ready,
    TimedOut,
    Interrupted,
    /// A connected peer went away (only when the caller asked to stop on that).
    Lost,
}

/// Interruptible sleep.
fn pause(duration: Duration, waker: &Waker) -> bool {
    let mut item = [zmq::PollItem::from_fd(
        waker.readable.as_raw_fd(),
        zmq::POLLIN,
    )];
    let interrupted =
        zmq::poll(&mut item, duration.as_millis() as i64).is_ok() && item[0].is_readable();
    !interrupted
}

/// Milliseconds left until `deadline`, rounded up so a 0.5 ms remainder does not spin.
fn poll_timeout(deadline: Option<Instant>) -> i64 {
    match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            left.as_micros().div_ceil(1000) as i64
        }
    }
}

/// Reads every part of a message that is ready, keeping at most `MAX_PARTS`.
fn recv_parts(socket: &zmq::Socket) -> zmq::Result<Vec<zmq::Message>> {
    let mut parts = vec![socket.recv_msg(zmq::DONTWAIT)?];
    while socket.get_rcvmore()? {
        let part = socket.recv_msg(zmq::DONTWAIT)?;
        if parts.len() < MAX_PARTS {
            parts.push(part);
        }
    }
    Ok(parts)
}

/// What a link needs to know to open (and re-open) its socket.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub role: Role,
    pub pattern: Pattern,
    pub endpoints: Vec<String>,
    pub request_timeout: Duration,
    pub max_retries: u32,
    /// A peer that sends a message part larger than this is dropped.
    pub max_message_bytes: i64,
    /// Secure mode: the socket's CURVE keys.
    pub curve: Option<CurveKeys>,
    /// Secure mode, receivers: which clients the ZAP handler lets in.
    pub clients: Option<ClientPolicy>,
    /// Receivers: deliver only the newest of the messages waiting (pattern 2, one sender).
    pub newest_only: bool,
    /// Where socket events and unanswered attempts go (none: only logged).
    pub events: EventHandler,
}

impl LinkConfig {
    fn socket_type(&self) -> zmq::SocketType {
        match (self.role, self.pattern) {
            (_, Pattern::Pair) => zmq::PAIR,
            (Role::Sender, Pattern::ReqRep) => zmq::REQ,
            (Role::Receiver, Pattern::ReqRep) => zmq::REP,
            (Role::Sender, Pattern::PubSub) => zmq::PUB,
            (Role::Receiver, Pattern::PubSub) => zmq::SUB,
        }
    }

    /// Every endpoint, for messages.
    pub fn endpoint_list(&self) -> String {
        self.endpoints.join(", ")
    }
}

/// How a link notices a dead connection and replaces it, before TCP's retransmission
/// back-off would (seconds after a cable comes back). Scaled to `request-timeout`: a slow
/// link needs a long request timeout and gets patient checks with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Liveness {
    /// Between two ZMTP PINGs; every libzmq peer answers them, vidgear's included.
    heartbeat_interval: Duration,
    /// Silence after a PING that closes the connection: ours, and the peer's through the
    /// PING's TTL, so a vidgear peer drops a dead connection too (libzmq arms the TTL only
    /// when a PING was the last thing it received: reliable towards a pub-sub sender, which
    /// gets nothing else from us). Also the longest our data may stay unacknowledged
    /// (ZMQ_TCP_MAXRT): the kernel then aborts the connection, so one that was given up does
    /// not go on retransmitting and deliver a stale frame when the cable is back.
    heartbeat_timeout: Duration,
    /// How long one TCP connect may take before it is tried again: a connect started
    /// while the cable is out is repeated, not left to the kernel's SYN back-off.
    connect_timeout: Duration,
}

impl Liveness {
    fn for_request_timeout(request_timeout: Duration) -> Self {
        let timeout = (request_timeout / 4).clamp(MIN_HEARTBEAT_TIMEOUT, MAX_HEARTBEAT_TIMEOUT);
        Liveness {
            heartbeat_interval: timeout / 4,
            heartbeat_timeout: timeout,
            connect_timeout: timeout / 2,
        }
    }

    fn apply(&self, socket: &mut zmq::Socket) -> zmq::Result<()> {
        let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        socket.set_heartbeat_ivl(ms(self.heartbeat_interval))?;
        socket.set_heartbeat_timeout(ms(self.heartbeat_timeout))?;
        socket.set_heartbeat_ttl(ms(self.heartbeat_timeout))?;
        socket.set_reconnect_ivl(ms(RECONNECT_INTERVAL))?;
        socket.set_connect_timeout(ms(self.connect_timeout))?;
        set_tcp_maxrt(socket, ms(self.heartbeat_timeout))
    }
}

/// ZMQ_TCP_MAXRT (TCP_USER_TIMEOUT), which the zmq crate does not wrap.
fn set_tcp_maxrt(socket: &mut zmq::Socket, ms: i32) -> zmq::Result<()> {
    let option = zmq_sys::ZMQ_TCP_MAXRT as i32;
    let size = std::mem::size_of::<i32>();
    // SAFETY: an open socket, and an int option passed with its size.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            socket.as_mut_ptr(),
            option,
            (&ms as *const i32).cast(),
            size,
        )
    };
    match rc {
        0 => Ok(()),
        // SAFETY: reads the calling thread's libzmq error number.
        _ => Err(zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() })),
    }
}

/// Sets the options a socket's role and pattern need.
fn set_pattern_options(socket: &zmq::Socket, config: &LinkConfig) -> zmq::Result<()> {
    match (config.role, config.pattern) {
        (Role::Sender, Pattern::Pair) => {
            // Queue only on a finished connection: a frame must not wait in a pipe to
            // a receiver that is gone and then arrive twice after our resend.
            socket.set_immediate(true)?;
        }
        (Role::Sender, Pattern::ReqRep) => {
            socket.set_req_relaxed(true)?;
            socket.set_req_correlate(true)?;
        }
        (Role::Sender, Pattern::PubSub) => {
            // A frame queued for a connection that died would wait there for its
            // replacement and arrive seconds old: queue only on a finished connection.
            socket.set_immediate(true)?;
            socket.set_sndhwm(1)?;
            socket.set_rcvhwm(1)?;
        }
        (Role::Receiver, Pattern::PubSub) => {
            socket.set_sndhwm(1)?;
            socket.set_rcvhwm(1)?;
            if config.newest_only {
                // Bounds what the kernel holds for us: a consumer slower than the sender
                // drains at most this much to reach the newest frame (see `newest`).
                socket.set_rcvbuf(SUB_RCVBUF)?;
            }
            socket.set_subscribe(b"")?;
        }
        _ => {}
    }
    Ok(())
}

/// One ZeroMQ socket with its monitor and what the monitor said about its peers.
struct Channel {
    // Declared first: the socket closes before its monitor's reading end.
    socket: zmq::Socket,
    monitor: Monitor,
    peers: Peers,
    endpoints: Vec<String>,
}

impl Drop for Channel {
    fn drop(&mut self) {
        // Stop the monitor while its reader is still open (see `stop_monitoring`); read what
        // waits first, so the last event has room.
        self.monitor.discard();
        monitor::stop_monitoring(&mut self.socket);
    }
}

impl Channel {
    /// Creates a socket with every option its role and pattern need, monitored, not yet
    /// bound or connected. Used for every re-created socket too, so none loses an option.
    fn new(
        context: &zmq::Context,
        config: &LinkConfig,
        endpoints: Vec<String>,
    ) -> Result<Channel, LinkError> {
        let all = endpoints.join(", ");
        let err = socket_error("create a socket for", &all);
        let mut ipv6 = false;
        for endpoint in &endpoints {
            ipv6 |= address::needs_ipv6(endpoint).map_err(|e| LinkError::Unresolvable {
                endpoint: endpoint.clone(),
                host: e.host,
                error: e.error,
            })?;
        }
        let mut socket = context.socket(config.socket_type()).map_err(&err)?;
        // Closing must never block a state change; termination sets its own linger.
        socket.set_linger(0).map_err(&err)?;
        socket.set_ipv6(ipv6).map_err(&err)?;
        set_pattern_options(&socket, config).map_err(&err)?;
        Liveness::for_request_timeout(config.request_timeout)
            .apply(&mut socket)
            .map_err(&err)?;
        // Bounds what the peer can make us allocate: frames for receivers, replies
        // (returned frames included) for senders.
        socket
            .set_maxmsgsize(config.max_message_bytes)
            .map_err(&err)?;
        // Applied to every socket, so one re-created after a timeout keeps its keys.
        if let Some(curve) = &config.curve {
            curve::apply_keys(curve, &socket).map_err(&err)?;
        }
        let monitor = Monitor::attach(context, &mut socket).map_err(&err)?;
        Ok(Channel {
            socket,
            monitor,
            // Only a receiver that checks keys can refuse anyone.
            peers: Peers::new(config.role == Role::Receiver && config.curve.is_none()),
            endpoints,
        })
    }

    fn endpoint_list(&self) -> String {
        self.endpoints.join(", ")
    }

    /// Reads the monitor's waiting events.
    fn drain(&mut self, stats: &Stats, events: &EventHandler) {
        self.peers.drain(&self.monitor, stats, events);
    }

    /// Waits for `wanted` on the socket (or for the waker) until `deadline` (`None`:
    /// forever), handling socket events meanwhile. With `stop_on_loss`, a handshaken peer
    /// going away ends the wait (a request sent to it will never be answered).
    fn wait(
        &mut self,
        wanted: zmq::PollEvents,
        deadline: Option<Instant>,
        waker: &Waker,
        stop_on_loss: bool,
        (stats, events): (&Stats, &EventHandler),
    ) -> zmq::Result<Wait> {
        loop {
            let mut items = [
                self.socket.as_poll_item(wanted),
                zmq::PollItem::from_fd(waker.readable.as_raw_fd(), zmq::POLLIN),
                self.monitor.as_poll_item(),
            ];
            match zmq::poll(&mut items, poll_timeout(deadline)) {
                Ok(_) => {}
                Err(zmq::Error::EINTR) => continue,
                Err(e) => return Err(e),
            }
            if items[1].is_readable() {
                return Ok(Wait::Interrupted);
            }
            let ready = !(items[0].get_revents() & wanted).is_empty();
            if items[2].is_readable() {
                self.drain(stats, events);
            }
            if ready {
                return Ok(Wait::Ready);
            }
            if stop_on_loss && self.peers.lost {
                return Ok(Wait::Lost);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Wait::TimedOut);
            }
        }
    }
}
