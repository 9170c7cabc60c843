//! ZeroMQ sockets for NetGear: endpoints, socket options, the sender's lazy-pirate
//! retries, the receiver's rebind, and waits that `unlock()` can interrupt.

use crate::config::{Pattern, Protocol, Role};
use crate::protocol::{parse_header, Incoming};
use crate::security::{ClientPolicy, CurveKeys, OnRefused, ZapHandler};
use crate::stats::Stats;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A message never has more parts than this; extra parts are read and discarded.
const MAX_PARTS: usize = 3;
/// How long a receiver keeps trying to bind a port that its previous socket still holds.
const REBIND_GRACE: Duration = Duration::from_secs(2);
/// Pattern 2 drops messages when its one-slot queue is full, so the termination is sent
/// this many times, spaced so the previous frame has left the queue.
const PUBSUB_TERMINATION_REPEATS: u32 = 5;
const PUBSUB_TERMINATION_GAP: Duration = Duration::from_millis(20);
/// Patterns 0/1: pause between the last acknowledged frame and the termination. vidgear's
/// receiver acknowledges a frame before decoding and queueing it, and discards what is
/// still queued when the termination arrives; this gives its recv() loop time to take it.
const TERMINATION_DELAY: Duration = Duration::from_millis(100);
/// Pattern 2: at most this many waiting messages are skipped for a newer one per frame.
const MAX_DRAINED: usize = 64;
/// How long a stopping sender lets its termination flush.
const STOP_LINGER: Duration = Duration::from_millis(100);

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

/// `protocol://address:port`, exactly as vidgear builds it (for ipc the port is part of the path).
pub fn endpoint(protocol: Protocol, address: &str, port: u16) -> String {
    format!("{}://{}:{}", protocol.scheme(), address, port)
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
}

/// Waits for `events` on `socket` (or for the waker) until `deadline` (`None`: forever).
fn wait_for(
    socket: &zmq::Socket,
    events: zmq::PollEvents,
    deadline: Option<Instant>,
    waker: &Waker,
) -> zmq::Result<Wait> {
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so a 0.5 ms remainder does not spin.
                left.as_micros().div_ceil(1000) as i64
            }
        };
        let mut items = [
            socket.as_poll_item(events),
            zmq::PollItem::from_fd(waker.readable.as_raw_fd(), zmq::POLLIN),
        ];
        match zmq::poll(&mut items, timeout_ms) {
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(e) => return Err(e),
        }
        if items[1].is_readable() {
            return Ok(Wait::Interrupted);
        }
        if !(items[0].get_revents() & events).is_empty() {
            return Ok(Wait::Ready);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Wait::TimedOut);
        }
    }
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

/// A failure the element must report.
#[derive(Debug)]
pub enum LinkError {
    /// `unlock()` was called.
    Interrupted,
    /// Patterns 0/1: no reply after every retry.
    NoReceiver {
        endpoints: String,
        attempts: u32,
        timeout: Duration,
    },
    /// Secure mode could not be set up.
    Security { endpoint: String, error: String },
    /// ZeroMQ refused an operation (bad address, port in use, …).
    Socket {
        what: &'static str,
        endpoint: String,
        error: zmq::Error,
    },
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Interrupted => write!(f, "interrupted"),
            LinkError::NoReceiver {
                endpoints,
                attempts,
                timeout,
            } => write!(
                f,
                "no receiver answered at {endpoints} after {attempts} attempts ({} ms each)",
                timeout.as_millis()
            ),
            LinkError::Socket {
                what,
                endpoint,
                error,
            } => write!(f, "could not {what} {endpoint}: {error}"),
            LinkError::Security { endpoint, error } => {
                write!(f, "secure mode on {endpoint}: {error}")
            }
        }
    }
}

impl std::error::Error for LinkError {}

fn socket_error<'a>(
    what: &'static str,
    endpoint: &'a str,
) -> impl Fn(zmq::Error) -> LinkError + 'a {
    move |error| LinkError::Socket {
        what,
        endpoint: endpoint.to_owned(),
        error,
    }
}

/// Creates a socket with every option its role and pattern need. Used for the first
/// socket and for every re-created one, so a reconnect never loses an option.
fn new_socket(context: &zmq::Context, config: &LinkConfig) -> Result<zmq::Socket, LinkError> {
    let all = config.endpoint_list();
    let err = socket_error("create a socket for", &all);
    let socket = context.socket(config.socket_type()).map_err(&err)?;
    // Closing must never block a state change; termination sets its own linger.
    socket.set_linger(0).map_err(&err)?;
    match (config.role, config.pattern) {
        (Role::Sender, Pattern::ReqRep) => {
            socket.set_req_relaxed(true).map_err(&err)?;
            socket.set_req_correlate(true).map_err(&err)?;
        }
        (Role::Sender, Pattern::PubSub) => {
            socket.set_sndhwm(1).map_err(&err)?;
            socket.set_rcvhwm(1).map_err(&err)?;
        }
        (Role::Receiver, Pattern::PubSub) => {
            socket.set_sndhwm(1).map_err(&err)?;
            socket.set_rcvhwm(1).map_err(&err)?;
            socket.set_subscribe(b"").map_err(&err)?;
        }
        _ => {}
    }
    // Bounds what the peer can make us allocate: frames for receivers, replies (returned
    // frames included) for senders.
    socket
        .set_maxmsgsize(config.max_message_bytes)
        .map_err(&err)?;
    // Applied to every socket, so one re-created after a timeout keeps its keys.
    if let Some(curve) = &config.curve {
        curve.apply(&socket).map_err(&err)?;
    }
    Ok(socket)
}

/// The sender's side (`netgearsink`): connects, sends, waits for replies, reconnects.
pub struct SenderLink {
    // Declared before the context: the socket must close before the context terminates.
    socket: zmq::Socket,
    context: zmq::Context,
    config: LinkConfig,
    waker: Arc<Waker>,
}

impl SenderLink {
    pub fn open(config: LinkConfig, waker: Arc<Waker>) -> Result<Self, LinkError> {
        let context = zmq::Context::new();
        let socket = Self::connect(&context, &config)?;
        Ok(SenderLink {
            socket,
            context,
            config,
            waker,
        })
    }

    fn connect(context: &zmq::Context, config: &LinkConfig) -> Result<zmq::Socket, LinkError> {
        let socket = new_socket(context, config)?;
        for endpoint in &config.endpoints {
            socket
                .connect(endpoint)
                .map_err(socket_error("connect to", endpoint))?;
        }
        Ok(socket)
    }

    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Lazy pirate: close the silent socket and open a fresh one with every option.
    fn reconnect(&mut self, stats: &Stats) -> Result<(), LinkError> {
        let fresh = Self::connect(&self.context, &self.config)?;
        // The old socket has linger 0: dropping it discards what it still queued.
        self.socket = fresh;
        Stats::bump(&stats.reconnects);
        Ok(())
    }

    /// Sends all parts, waiting at most until `deadline` for room (PAIR and REQ block
    /// while no peer is connected). `Ok(false)`: no room in time.
    fn send_parts(&mut self, parts: &[Part<'_>], deadline: Instant) -> Result<bool, LinkError> {
        let all = self.config.endpoint_list();
        for (i, part) in parts.iter().enumerate() {
            let more = if i + 1 < parts.len() { zmq::SNDMORE } else { 0 };
            loop {
                match send_part(&mut self.socket, *part, more | zmq::DONTWAIT) {
                    Ok(()) => break,
                    Err(zmq::Error::EAGAIN) => {}
                    Err(zmq::Error::EINTR) => continue,
                    Err(e) => return Err(socket_error("send to", &all)(e)),
                }
                // Only the first part can find the queue full: a message is queued whole.
                match wait_for(&self.socket, zmq::POLLOUT, Some(deadline), &self.waker)
                    .map_err(socket_error("send to", &all))?
                {
                    Wait::Ready => {}
                    Wait::TimedOut => return Ok(false),
                    Wait::Interrupted => return Err(LinkError::Interrupted),
                }
            }
        }
        Ok(true)
    }

    /// Sends one message. In patterns 0/1 waits for the reply; a reply that does not come
    /// within the request timeout costs a retry: the socket is re-created and the message
    /// sent again. Returns the reply's parts (none in pattern 2).
    pub fn exchange(
        &mut self,
        parts: &[Part<'_>],
        stats: &Stats,
    ) -> Result<Vec<zmq::Message>, LinkError> {
        let timeout = self.config.request_timeout;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let deadline = Instant::now() + timeout;
            if self.send_parts(parts, deadline)? {
                if !self.config.pattern.is_acknowledged() {
                    return Ok(Vec::new());
                }
                let all = self.config.endpoint_list();
                match wait_for(&self.socket, zmq::POLLIN, Some(deadline), &self.waker)
                    .map_err(socket_error("wait for a reply from", &all))?
                {
                    Wait::Ready => {
                        return recv_parts(&self.socket)
                            .map_err(socket_error("read a reply from", &all));
                    }
                    Wait::Interrupted => return Err(LinkError::Interrupted),
                    Wait::TimedOut => {}
                }
            }
            Stats::bump(&stats.retries);
            if attempts > self.config.max_retries {
                return Err(LinkError::NoReceiver {
                    endpoints: self.config.endpoint_list(),
                    attempts,
                    timeout,
                });
            }
            self.reconnect(stats)?;
        }
    }

    /// Sends the termination message without retries; `copies` is one per receiver owed
    /// one (multi-client REQ round-robins them). With `wait` (end of stream), patterns
    /// 0/1 wait at most `request_timeout / 5` for the pattern-1 answer, as vidgear does,
    /// and pattern 2 repeats the message because a full one-slot queue drops it. Without
    /// `wait` (stopping without EOS) it is one send that never blocks. The socket keeps
    /// as long to flush it. Returns whether a receiver answered.
    pub fn terminate(&mut self, message: &[u8], copies: usize, wait: bool) -> bool {
        let grace = self.config.request_timeout / 5;
        if !wait {
            let _ = self
                .socket
                .set_linger(grace.min(STOP_LINGER).as_millis() as i32);
            for _ in 0..copies {
                let _ = self.socket.send(message, zmq::DONTWAIT);
            }
            return false;
        }
        // Everything, including the time the socket may linger to flush, fits in `grace`.
        let deadline = Instant::now() + grace;
        let acknowledged = self.config.pattern.is_acknowledged();
        if acknowledged && !pause(TERMINATION_DELAY.min(grace / 2), &self.waker) {
            return false;
        }
        let mut answered = false;
        match self.config.pattern {
            Pattern::PubSub => {
                for round in 0..PUBSUB_TERMINATION_REPEATS {
                    let late = Instant::now() + PUBSUB_TERMINATION_GAP >= deadline;
                    if round > 0 && (late || !pause(PUBSUB_TERMINATION_GAP, &self.waker)) {
                        break;
                    }
                    for _ in 0..copies {
                        let _ = self.socket.send(message, zmq::DONTWAIT);
                    }
                }
            }
            Pattern::Pair => {
                let _ = self.send_parts(&[Part::Copied(message)], deadline);
            }
            Pattern::ReqRep => {
                for _ in 0..copies {
                    if !matches!(
                        self.send_parts(&[Part::Copied(message)], deadline),
                        Ok(true)
                    ) {
                        break;
                    }
                    if wait_for(&self.socket, zmq::POLLIN, Some(deadline), &self.waker)
                        != Ok(Wait::Ready)
                    {
                        break;
                    }
                    answered |= recv_parts(&self.socket).is_ok();
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = self
            .socket
            .set_linger(if answered { 0 } else { left.as_millis() as i32 });
        answered
    }
}

/// What a receive returned.
pub enum Received {
    Message(Vec<zmq::Message>),
    TimedOut,
}

/// A received message kept for the next `recv()`.
struct Held(Vec<zmq::Message>);

// SAFETY: ZeroMQ messages own their bytes and may move between threads; only sockets may not
// be shared. The link (and so this) is used by one thread at a time.
unsafe impl Send for Held {}

/// The receiver's side (`netgearsrc`): binds, receives, replies, rebinds after silence.
pub struct ReceiverLink {
    socket: zmq::Socket,
    held: Option<Held>,
    /// Secure mode: must stop before the context terminates.
    _zap: Option<ZapHandler>,
    context: zmq::Context,
    config: LinkConfig,
    waker: Arc<Waker>,
}

impl ReceiverLink {
    /// Binds every endpoint; in secure mode the ZAP handler runs first, so no client is
    /// let in before it. `on_refused` hears of every client it turns away.
    pub fn open(
        config: LinkConfig,
        waker: Arc<Waker>,
        on_refused: OnRefused,
    ) -> Result<Self, LinkError> {
        let context = zmq::Context::new();
        let zap = match &config.clients {
            Some(policy) => Some(
                ZapHandler::start(&context, policy.clone(), on_refused).map_err(|error| {
                    LinkError::Security {
                        endpoint: config.endpoint_list(),
                        error,
                    }
                })?,
            ),
            None => None,
        };
        let socket = Self::bind(&context, &config, None)?;
        Ok(ReceiverLink {
            socket,
            held: None,
            _zap: zap,
            context,
            config,
            waker,
        })
    }

    /// Binds every endpoint. After a close, libzmq releases the port asynchronously, so
    /// `retry` keeps retrying "address in use" for a moment.
    fn bind(
        context: &zmq::Context,
        config: &LinkConfig,
        retry: Option<(&Waker, Instant)>,
    ) -> Result<zmq::Socket, LinkError> {
        let socket = new_socket(context, config)?;
        for endpoint in &config.endpoints {
            loop {
                match socket.bind(endpoint) {
                    Ok(()) => break,
                    Err(zmq::Error::EADDRINUSE)
                        if retry.is_some_and(|(_, until)| Instant::now() < until) =>
                    {
                        if let Some((waker, _)) = retry {
                            if !pause(Duration::from_millis(10), waker) {
                                return Err(LinkError::Interrupted);
                            }
                        }
                    }
                    Err(e) => return Err(socket_error("bind", endpoint)(e)),
                }
            }
        }
        Ok(socket)
    }

    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Waits for one whole message, at most `timeout` (`None`: until one comes).
    pub fn recv(
        &mut self,
        timeout: Option<Duration>,
        stats: &Stats,
    ) -> Result<Received, LinkError> {
        if let Some(Held(parts)) = self.held.take() {
            return Ok(Received::Message(parts));
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let all = self.config.endpoint_list();
        match wait_for(&self.socket, zmq::POLLIN, deadline, &self.waker)
            .map_err(socket_error("receive on", &all))?
        {
            Wait::Interrupted => Err(LinkError::Interrupted),
            Wait::TimedOut => Ok(Received::TimedOut),
            Wait::Ready => match recv_parts(&self.socket) {
                Ok(parts) if self.config.newest_only => self
                    .newest(parts, stats)
                    .map_err(socket_error("receive on", &all)),
                Ok(parts) => Ok(Received::Message(parts)),
                // A wake-up without a whole message (e.g. a peer that went away).
                Err(zmq::Error::EAGAIN) => Ok(Received::TimedOut),
                Err(e) => Err(socket_error("receive on", &all)(e)),
            },
        }
    }

    /// Pattern 2: a consumer slower than the sender would otherwise see frames as old as
    /// everything ZeroMQ and the kernel hold (hundreds of frames). Takes every message
    /// already waiting and keeps the newest; a termination among them is kept for the next
    /// call, so it is never skipped.
    fn newest(&mut self, mut parts: Vec<zmq::Message>, stats: &Stats) -> zmq::Result<Received> {
        // Bounded, so a sender faster than we can read cannot keep us here forever.
        for _ in 0..MAX_DRAINED {
            if self.socket.poll(zmq::POLLIN, 0)? == 0 {
                break;
            }
            let next = match recv_parts(&self.socket) {
                Ok(next) => next,
                Err(zmq::Error::EAGAIN) => break,
                Err(e) => return Err(e),
            };
            let terminates = next
                .first()
                .is_some_and(|h| matches!(parse_header(h), Ok(Incoming::Terminate { .. })));
            if terminates {
                self.held = Some(Held(next));
                break;
            }
            Stats::bump(&stats.dropped);
            parts = next;
        }
        Ok(Received::Message(parts))
    }

    /// Sends a reply without blocking; a reply to a peer that is gone is dropped.
    pub fn reply(&mut self, parts: &[&[u8]]) -> Result<bool, LinkError> {
        let all = self.config.endpoint_list();
        for (i, part) in parts.iter().enumerate() {
            let more = if i + 1 < parts.len() { zmq::SNDMORE } else { 0 };
            match self.socket.send(*part, more | zmq::DONTWAIT) {
                Ok(()) => {}
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EHOSTUNREACH) => return Ok(false),
                Err(e) => return Err(socket_error("reply on", &all)(e)),
            }
        }
        Ok(true)
    }

    /// Closes the socket and binds a fresh one, so a new sender can take a silent one's place.
    pub fn rebind(&mut self, stats: &Stats) -> Result<(), LinkError> {
        // Release the port before binding it again.
        let placeholder = self.context.socket(zmq::PAIR).map_err(socket_error(
            "create a socket for",
            &self.config.endpoint_list(),
        ))?;
        drop(std::mem::replace(&mut self.socket, placeholder));
        let until = Instant::now() + REBIND_GRACE;
        self.socket = Self::bind(&self.context, &self.config, Some((&self.waker, until)))?;
        Stats::bump(&stats.reconnects);
        Ok(())
    }
}
