// SPDX-License-Identifier: MPL-2.0
//! The receiver's side (`netgearsrc`): binds, receives, replies, rebinds after silence.

use super::curve::{OnRefused, ZapHandler};
use super::error::{socket_error, LinkError};
use super::events::LinkEvent;
use super::{address, pause, recv_parts, Channel, LinkConfig, Stats, Wait, Waker, CAT};
use netgear_protocol::{parse_header, Incoming};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a receiver keeps trying to bind a port that its previous socket still holds.
const REBIND_GRACE: Duration = Duration::from_secs(2);
/// Pattern 2: how long one call may spend skipping waiting messages for the newest.
const DRAIN_BUDGET: Duration = Duration::from_millis(20);

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

/// The receiver's link.
pub struct ReceiverLink {
    channel: Channel,
    held: Option<Held>,
    /// Secure mode: must stop before the context terminates.
    _zap: Option<ZapHandler>,
    context: zmq::Context,
    config: LinkConfig,
    waker: Arc<Waker>,
}

impl ReceiverLink {
    /// Binds every endpoint; in secure mode the ZAP handler runs first, so no client is
    /// let in before it. `on_refused` hears of every client it turns away. A tcp endpoint
    /// with port 0 binds an ephemeral port; `config().endpoints` then name the port bound.
    pub fn open(
        mut config: LinkConfig,
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
        let channel = Self::bind(&context, &config, None)?;
        // Rebinds must take the same ports again, so senders find us.
        config.endpoints = channel.endpoints.clone();
        Ok(ReceiverLink {
            channel,
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
    ) -> Result<Channel, LinkError> {
        let mut channel = Channel::new(context, config, config.endpoints.clone())?;
        let mut bound = Vec::with_capacity(config.endpoints.len());
        for endpoint in &config.endpoints {
            let wanted = address::bind_form(endpoint);
            loop {
                match channel.socket.bind(&wanted) {
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
            bound.push(Self::bound_endpoint(&channel.socket, endpoint, &wanted));
            gst::debug!(CAT, "bound {}", bound[bound.len() - 1]);
        }
        channel.endpoints = bound;
        Ok(channel)
    }

    /// The endpoint as bound: an ephemeral port is read back (ZMQ_LAST_ENDPOINT); others
    /// keep the name they were given.
    fn bound_endpoint(socket: &zmq::Socket, asked: &str, wanted: &str) -> String {
        if asked == wanted {
            return asked.to_owned();
        }
        let last = socket.get_last_endpoint().ok().and_then(|r| r.ok());
        match last.as_deref().and_then(address::port_of) {
            // Keep the host as the user wrote it (e.g. `*`), with the port bound.
            Some(port) => format!("{}:{port}", &wanted[..wanted.len() - 2]),
            None => asked.to_owned(),
        }
    }

    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// The port the first tcp endpoint is bound to (the one chosen for port 0).
    pub fn bound_port(&self) -> Option<u16> {
        self.config
            .endpoints
            .iter()
            .find_map(|e| address::port_of(e))
    }

    /// Waits for one whole message, at most `timeout` (`None`: until one comes). Socket
    /// events seen meanwhile are counted and reported.
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
        let handler = self.config.events.clone();
        let waited = self
            .channel
            .wait(zmq::POLLIN, deadline, &self.waker, false, (stats, &handler))
            .map_err(socket_error("receive on", &all))?;
        match waited {
            Wait::Interrupted => Err(LinkError::Interrupted),
            Wait::TimedOut | Wait::Lost => Ok(Received::TimedOut),
            Wait::Ready => match recv_parts(&self.channel.socket) {
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
    /// everything ZeroMQ and the kernel hold. Messages are multipart, so ZMQ_CONFLATE
    /// cannot keep just the newest; instead the receive side holds little (ZMQ_RCVHWM 1,
    /// a small ZMQ_RCVBUF) and this takes every message already waiting, keeping the
    /// newest, so the delay stays near one consumer period plus one frame whatever the
    /// frame size. Trade-off: frames the consumer is too slow for are dropped (counted),
    /// and a small receive window limits throughput over long, fast links. A termination
    /// among them is kept for the next call, so it is never skipped.
    fn newest(&mut self, mut parts: Vec<zmq::Message>, stats: &Stats) -> zmq::Result<Received> {
        // Bounded in time, so a sender faster than we can read cannot keep us here.
        let until = Instant::now() + DRAIN_BUDGET;
        while Instant::now() < until {
            // With ZMQ_RCVHWM 1 ZeroMQ's I/O thread refills the queue from the kernel
            // just after each read: a short wait tells "caught up" from "not refilled yet".
            if self.channel.socket.poll(zmq::POLLIN, 1)? == 0 {
                break;
            }
            let next = match recv_parts(&self.channel.socket) {
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

    /// Gives back a message taken early: the next `recv()` returns it first. Patterns 0/1
    /// only (pattern 2 may keep a termination there already).
    pub fn hold(&mut self, parts: Vec<zmq::Message>) {
        debug_assert!(self.held.is_none());
        self.held = Some(Held(parts));
    }

    /// Sends a reply without blocking; a reply to a peer that is gone is dropped.
    pub fn reply(&mut self, parts: &[&[u8]]) -> Result<bool, LinkError> {
        let all = self.config.endpoint_list();
        for (i, part) in parts.iter().enumerate() {
            let more = if i + 1 < parts.len() { zmq::SNDMORE } else { 0 };
            match self.channel.socket.send(*part, more | zmq::DONTWAIT) {
                Ok(()) => {}
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EHOSTUNREACH) => return Ok(false),
                Err(e) => return Err(socket_error("reply on", &all)(e)),
            }
        }
        Ok(true)
    }

    /// Closes the socket and binds a fresh one, so a new sender can take a silent one's place.
    pub fn rebind(&mut self, stats: &Stats) -> Result<(), LinkError> {
        let endpoints = self.config.endpoint_list();
        gst::info!(CAT, "rebinding {endpoints}");
        // Release the port before binding it again: a placeholder takes the old one's place.
        let placeholder = Channel::new(&self.context, &self.config, Vec::new())?;
        drop(std::mem::replace(&mut self.channel, placeholder));
        let until = Instant::now() + REBIND_GRACE;
        self.channel = Self::bind(&self.context, &self.config, Some((&self.waker, until)))?;
        Stats::bump(&stats.reconnects);
        self.config.events.emit(LinkEvent::Rebound { endpoints });
        Ok(())
    }
}
