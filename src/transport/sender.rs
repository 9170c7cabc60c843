// SPDX-License-Identifier: MPL-2.0
//! The sender's side (`netgearsink`): connects, sends, waits for replies, reconnects.
//!
//! Patterns 0/1 follow vidgear's lazy pirate: a reply that does not come within the
//! request timeout costs a retry on a fresh socket. Three refinements:
//! - a receiver whose connection drops while we wait is retried at once (its request is
//!   lost), so a restarted receiver gets frames within one request timeout;
//! - with nobody listening at all, a frame is dropped after one timeout and the retries
//!   are counted across frames, so no render (and no EOS behind it) waits longer than one
//!   request timeout while the error still comes after `max_retries + 1` timeouts;
//! - multi-client req-rep gives each receiver its own REQ socket (see `dispatch`);
//! - secure pair mode connects only when the first frame is ready, so that frame, not a
//!   heartbeat, is the first message on the connection: a vidgear receiver's thread dies
//!   on a PING that comes first (see `Unanswered::PairSlotTaken`);
//! - a failed handshake is explained by `probe`: which pattern or mechanism the receiver
//!   uses, or that it is no ZeroMQ peer at all.
//! - a live frame that went stale while the link was down is given up, not sent
//!   (see `freshness`).

mod dispatch;
mod freshness;

pub use dispatch::{FrameStamp, Order, OutFrame, Outcome};

use super::error::{socket_error, LinkError};
use super::events::{HandshakeFailure, LinkEvent, Unanswered};
use super::probe;
use super::{pause, recv_parts, send_part, Channel, LinkConfig, Part, Stats, Wait, Waker, CAT};
use crate::config::Pattern;
use dispatch::{Dispatch, InFlight};
use freshness::{earliest, expired, Carried, Tried};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pattern 2 drops messages when its one-slot queue is full, so the termination is sent
/// this many times, spaced so the previous frame has left the queue.
const PUBSUB_TERMINATION_REPEATS: u32 = 5;
const PUBSUB_TERMINATION_GAP: Duration = Duration::from_millis(20);
/// Patterns 0/1: pause between the last acknowledged frame and the termination. vidgear's
/// receiver acknowledges a frame before decoding and queueing it, and discards what is
/// still queued when the termination arrives; this gives its recv() loop time to take it.
const TERMINATION_DELAY: Duration = Duration::from_millis(100);
/// How long a stopping sender lets its termination flush.
const STOP_LINGER: Duration = Duration::from_millis(100);
/// The longest a probe of a receiver that refused our handshake waits for each answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// How an exchange ended, short of an error.
#[derive(Debug)]
pub enum Exchanged {
    /// Patterns 0/1: the receiver's reply (its parts).
    Reply(Vec<zmq::Message>),
    /// Pattern 2: sent, no reply expected.
    Sent,
    /// Nobody is listening: the frame was dropped after one request timeout (a
    /// `LinkEvent::Unanswered` said so); the error follows after `max_retries + 1` such
    /// timeouts in a row.
    Dropped,
    /// The frame expired before it could be sent, or before it would be sent again.
    Stale,
}

/// One socket: every endpoint, or (multi-client req-rep) one receiver.
struct Slot {
    channel: Channel,
    /// Secure pair mode: not connected yet; connects before its first frame.
    deferred: bool,
    /// Multi-client: reported down, skipped until its socket reports a handshake again.
    down: bool,
    /// Multi-client: the frame sent to this receiver and not yet answered.
    in_flight: Option<InFlight>,
    /// Multi-client: when its last frame was answered (load balancing feeds the receiver
    /// free longest first).
    free_since: Instant,
}

impl Slot {
    fn new(channel: Channel) -> Slot {
        Slot {
            channel,
            deferred: false,
            down: false,
            in_flight: None,
            free_since: Instant::now(),
        }
    }
}

/// The sender's link.
pub struct SenderLink {
    // Declared before the context: sockets must close before the context terminates.
    slots: Vec<Slot>,
    context: zmq::Context,
    config: LinkConfig,
    waker: Arc<Waker>,
    /// Multi-client req-rep: the frames handed out among the receivers.
    dispatch: Dispatch,
    /// Unanswered attempts in a row, across frames and causes: one count per outage.
    silent: u32,
    /// What a frame given up as stale leaves to the next.
    carried: Carried,
}

impl SenderLink {
    pub fn open(config: LinkConfig, waker: Arc<Waker>) -> Result<Self, LinkError> {
        let context = zmq::Context::new();
        // Req-rep to several receivers: one socket each, so a dead one cannot hold a
        // frame meant for the others (a single REQ socket round-robins into it).
        let groups: Vec<Vec<String>> =
            if config.pattern == Pattern::ReqRep && config.endpoints.len() > 1 {
                config.endpoints.iter().map(|e| vec![e.clone()]).collect()
            } else {
                vec![config.endpoints.clone()]
            };
        let mut slots = Vec::with_capacity(groups.len());
        let defer = config.pattern == Pattern::Pair && config.curve.is_some();
        for endpoints in groups {
            let mut slot = if defer {
                Slot::new(Channel::new(&context, &config, endpoints)?)
            } else {
                Slot::new(Self::connect(&context, &config, endpoints)?)
            };
            slot.deferred = defer;
            slots.push(slot);
        }
        Ok(SenderLink {
            slots,
            context,
            config,
            waker,
            dispatch: Dispatch::default(),
            silent: 0,
            carried: Carried::default(),
        })
    }

    fn connect(
        context: &zmq::Context,
        config: &LinkConfig,
        endpoints: Vec<String>,
    ) -> Result<Channel, LinkError> {
        let channel = Channel::new(context, config, endpoints)?;
        Self::connect_channel(&channel)?;
        Ok(channel)
    }

    fn connect_channel(channel: &Channel) -> Result<(), LinkError> {
        for endpoint in &channel.endpoints {
            channel
                .socket
                .connect(endpoint)
                .map_err(socket_error("connect to", endpoint))?;
            gst::debug!(CAT, "connecting to {endpoint}");
        }
        Ok(())
    }

    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Lazy pirate: close the silent socket and open a fresh one with every option.
    fn reconnect(&mut self, idx: usize, stats: &Stats) -> Result<(), LinkError> {
        let endpoints = self.slots[idx].channel.endpoints.clone();
        let fresh = Self::connect(&self.context, &self.config, endpoints)?;
        // The old socket has linger 0: dropping it discards what it still queued.
        self.slots[idx].channel = fresh;
        Stats::bump(&stats.reconnects);
        let endpoints = self.slots[idx].channel.endpoint_list();
        gst::info!(CAT, "reconnecting to {endpoints}");
        self.config
            .events
            .emit(LinkEvent::Reconnected { endpoints });
        Ok(())
    }

    /// Sends all parts on one slot, waiting at most until `deadline` for room (PAIR and
    /// REQ block while no peer is connected). `Ok(false)`: no room in time.
    fn send_parts(
        &mut self,
        idx: usize,
        parts: &[Part<'_>],
        deadline: Instant,
        stats: &Stats,
    ) -> Result<bool, LinkError> {
        let channel = &mut self.slots[idx].channel;
        let all = channel.endpoint_list();
        for (i, part) in parts.iter().enumerate() {
            let more = if i + 1 < parts.len() { zmq::SNDMORE } else { 0 };
            loop {
                match send_part(&mut channel.socket, *part, more | zmq::DONTWAIT) {
                    Ok(()) => break,
                    Err(zmq::Error::EAGAIN) => {}
                    Err(zmq::Error::EINTR) => continue,
                    Err(e) => return Err(socket_error("send to", &all)(e)),
                }
                // Only the first part can find the queue full: a message is queued whole.
                let handler = self.config.events.clone();
                match channel
                    .wait(
                        zmq::POLLOUT,
                        Some(deadline),
                        &self.waker,
                        false,
                        (stats, &handler),
                    )
                    .map_err(socket_error("send to", &all))?
                {
                    Wait::Ready | Wait::Lost => {}
                    Wait::TimedOut => return Ok(false),
                    Wait::Interrupted => return Err(LinkError::Interrupted),
                }
            }
        }
        Ok(true)
    }

    /// One attempt on one slot: send (waiting for room until the frame `expires` at the
    /// latest), then (patterns 0/1) wait for the reply.
    fn attempt(
        &mut self,
        idx: usize,
        parts: &[Part<'_>],
        expires: Option<Instant>,
        stats: &Stats,
    ) -> Result<Tried, LinkError> {
        if std::mem::take(&mut self.slots[idx].deferred) {
            Self::connect_channel(&self.slots[idx].channel)?;
        }
        let deadline = self.attempt_deadline(idx, stats);
        let until = earliest(deadline, expires);
        if !self.wait_for_peer(idx, expires, until, stats)?
            || !self.send_parts(idx, parts, until, stats)?
        {
            return Ok(self.not_sent(deadline));
        }
        if !self.config.pattern.is_acknowledged() {
            return Ok(Tried::Done(Exchanged::Sent));
        }
        let handler = self.config.events.clone();
        let channel = &mut self.slots[idx].channel;
        let all = channel.endpoint_list();
        match channel
            .wait(
                zmq::POLLIN,
                Some(deadline),
                &self.waker,
                true,
                (stats, &handler),
            )
            .map_err(socket_error("wait for a reply from", &all))?
        {
            Wait::Ready => {
                // The handshake's event is queued before any reply: report it first.
                channel.drain(stats, &handler);
                recv_parts(&channel.socket)
                    .map(|reply| Tried::Done(Exchanged::Reply(reply)))
                    .map_err(socket_error("read a reply from", &all))
            }
            Wait::Interrupted => Err(LinkError::Interrupted),
            Wait::TimedOut | Wait::Lost => Ok(Tried::Unanswered),
        }
    }

    /// Why the last attempt on a slot went unanswered, from its socket's events; a failed
    /// handshake is explained by probing the receiver where the probe can tell more.
    fn cause(&self, idx: usize) -> Unanswered {
        let secure = self.config.curve.is_some();
        let channel = &self.slots[idx].channel;
        let peers = &channel.peers;
        let reason = if peers.lost {
            return Unanswered::ConnectionLost;
        } else if let Some(reason) = &peers.failed {
            reason.clone()
        } else if peers.connected() == 0 && !peers.handshaken && !peers.reached_anyone() {
            return Unanswered::NobodyListening;
        } else if peers.connected() == 0 && !peers.handshaken {
            // A connection was made but never became a ZMTP peer.
            HandshakeFailure::NoDetail
        } else if self.config.pattern == Pattern::Pair {
            return Unanswered::PairSlotTaken { secure };
        } else {
            return Unanswered::NoReply;
        };
        let timeout = PROBE_TIMEOUT.min(self.config.request_timeout / 4);
        let explained = channel.endpoints.iter().find_map(|endpoint| {
            let found = probe::probe(endpoint, timeout)?;
            gst::info!(CAT, "probed {endpoint}: {found:?}");
            probe::mismatch(found, self.config.pattern, secure)
        });
        match explained {
            Some(mismatch) => Unanswered::Mismatch(mismatch),
            None => Unanswered::HandshakeFailed { reason, secure },
        }
    }

    /// Sends one frame and tells what became of it, or (multi-client req-rep) of the frames
    /// handed out so far; see `dispatch`.
    pub fn send(&mut self, frame: OutFrame, stats: &Stats) -> Result<Vec<Outcome>, LinkError> {
        if expired(frame.expires) {
            return Ok(vec![Outcome::Stale(frame)]);
        }
        if self.dispatches() {
            return self.dispatch(frame, stats);
        }
        let parts = [Part::Copied(&frame.header), Part::Shared(&frame.payload)];
        let exchanged = match self.exchange_until(&parts, frame.expires, stats) {
            Err(LinkError::Interrupted) => {
                Stats::bump(&stats.dropped);
                return Err(LinkError::Interrupted);
            }
            other => other?,
        };
        Ok(vec![match exchanged {
            Exchanged::Reply(reply) => Outcome::Answered { frame, reply },
            Exchanged::Sent => Outcome::Sent(frame),
            Exchanged::Dropped => Outcome::Dropped(frame),
            Exchanged::Stale => Outcome::Stale(frame),
        }])
    }

    /// `exchange_until` for a message that never goes stale (the link's tests).
    #[cfg(test)]
    pub fn exchange(&mut self, parts: &[Part<'_>], stats: &Stats) -> Result<Exchanged, LinkError> {
        self.exchange_until(parts, None, stats)
    }

    /// Sends one message on a link with one socket (every mode but multi-client req-rep).
    /// In patterns 0/1 waits for the reply, retrying as the module documentation says,
    /// unless the frame `expires` first (see `freshness`).
    fn exchange_until(
        &mut self,
        parts: &[Part<'_>],
        expires: Option<Instant>,
        stats: &Stats,
    ) -> Result<Exchanged, LinkError> {
        debug_assert!(
            !self.dispatches(),
            "multi-client req-rep sends through send()"
        );
        loop {
            match self.attempt(0, parts, expires, stats)? {
                Tried::Done(done) => {
                    self.silent = 0;
                    return Ok(done);
                }
                Tried::Stale => return Ok(self.give_up_stale(self.silent)),
                Tried::Unanswered => {}
            }
            let cause = self.cause(0);
            Stats::bump(&stats.retries);
            self.silent += 1;
            let endpoints = self.slots[0].channel.endpoint_list();
            let nobody = self.count_unanswered(self.silent, endpoints, cause)?;
            self.retry_socket(0, stats)?;
            if nobody {
                return Ok(Exchanged::Dropped);
            }
            if expired(expires) {
                return Ok(self.give_up_stale(self.silent));
            }
        }
    }

    /// An attempt went unanswered with no other receiver to turn to: reports it and fails
    /// after `max_retries + 1` in a row. `attempt` counts the whole outage, whatever the
    /// cause of each. Returns whether nobody listens: the frame is then given up.
    fn count_unanswered(
        &mut self,
        attempt: u32,
        endpoints: String,
        cause: Unanswered,
    ) -> Result<bool, LinkError> {
        let nobody = cause == Unanswered::NobodyListening;
        self.report_unanswered(endpoints.clone(), attempt, cause.clone());
        if attempt > self.config.max_retries {
            return Err(LinkError::Unanswered {
                endpoints,
                attempts: attempt,
                timeout: self.config.request_timeout,
                cause,
            });
        }
        Ok(nobody)
    }

    /// Before a retry. REQ: lazy pirate, a fresh socket (its state machine may be stuck).
    /// PAIR keeps its socket, which reconnects by itself: a bound PAIR accepts one
    /// connection and silently parks any other, so closing ours and connecting a fresh
    /// one races with the receiver noticing the close, and the fresh one was often
    /// parked for good: a restarted receiver then never got a frame.
    fn retry_socket(&mut self, idx: usize, stats: &Stats) -> Result<(), LinkError> {
        if self.config.pattern == Pattern::ReqRep {
            return self.reconnect(idx, stats);
        }
        let endpoints = self.slots[idx].channel.endpoint_list();
        gst::info!(CAT, "retrying on the same socket to {endpoints}");
        Ok(())
    }

    fn report_unanswered(&self, endpoints: String, attempt: u32, cause: Unanswered) {
        let event = LinkEvent::Unanswered {
            endpoints,
            attempt,
            attempts: self.config.max_retries + 1,
            timeout: self.config.request_timeout,
            cause,
        };
        gst::info!(CAT, "{event}");
        self.config.events.emit(event);
    }

    /// Sends the termination message without retries. With `wait` (end of stream),
    /// patterns 0/1 wait at most `request_timeout / 5` for the pattern-1 answer, as vidgear
    /// does, and pattern 2 repeats the message because a full one-slot queue drops it; a
    /// socket with no receiver connected is not waited for. Without `wait` (stopping
    /// without EOS) it is one send that never blocks. Returns whether a receiver answered.
    pub fn terminate(&mut self, message: &[u8], wait: bool) -> bool {
        let grace = self.config.request_timeout / 5;
        let deadline = Instant::now() + grace;
        // Events seen now are not counted: the element reads its stats before this.
        let scratch = Stats::default();
        if !wait {
            for idx in 0..self.slots.len() {
                self.terminate_now(idx, message, grace);
            }
            return false;
        }
        if self.dispatches() {
            return self.terminate_receivers(message, deadline, &scratch);
        }
        let handler = self.config.events.clone();
        self.slots[0].channel.drain(&scratch, &handler);
        let acknowledged = self.config.pattern.is_acknowledged();
        if acknowledged && self.slots[0].channel.peers.connected() == 0 {
            self.terminate_now(0, message, grace);
            return false;
        }
        if acknowledged && !self.pause_before_termination() {
            return false;
        }
        self.terminate_waiting(0, message, deadline, &scratch)
    }

    /// Patterns 0/1: gives a vidgear receiver's recv() loop time to take the last frame
    /// (see `TERMINATION_DELAY`). `false`: interrupted.
    fn pause_before_termination(&self) -> bool {
        let grace = self.config.request_timeout / 5;
        pause(TERMINATION_DELAY.min(grace / 2), &self.waker)
    }

    /// One send that never blocks; the socket keeps a moment to flush it.
    fn terminate_now(&mut self, idx: usize, message: &[u8], grace: Duration) {
        let socket = &self.slots[idx].channel.socket;
        gst::debug!(
            CAT,
            "termination to {} without waiting",
            self.slots[idx].channel.endpoint_list()
        );
        let _ = socket.set_linger(grace.min(STOP_LINGER).as_millis() as i32);
        let _ = socket.send(message, zmq::DONTWAIT);
    }

    fn terminate_waiting(
        &mut self,
        idx: usize,
        message: &[u8],
        deadline: Instant,
        stats: &Stats,
    ) -> bool {
        let mut answered = false;
        match self.config.pattern {
            Pattern::PubSub => {
                let socket = &self.slots[idx].channel.socket;
                for round in 0..PUBSUB_TERMINATION_REPEATS {
                    let late = Instant::now() + PUBSUB_TERMINATION_GAP >= deadline;
                    if round > 0 && (late || !pause(PUBSUB_TERMINATION_GAP, &self.waker)) {
                        break;
                    }
                    let _ = socket.send(message, zmq::DONTWAIT);
                }
            }
            Pattern::Pair => {
                let _ = self.send_parts(idx, &[Part::Copied(message)], deadline, stats);
            }
            Pattern::ReqRep => {
                let handler = self.config.events.clone();
                if let Ok(true) = self.send_parts(idx, &[Part::Copied(message)], deadline, stats) {
                    let channel = &mut self.slots[idx].channel;
                    let waited = channel.wait(
                        zmq::POLLIN,
                        Some(deadline),
                        &self.waker,
                        true,
                        (stats, &handler),
                    );
                    answered = waited == Ok(Wait::Ready) && recv_parts(&channel.socket).is_ok();
                }
            }
        }
        self.linger_for_termination(idx, answered, deadline);
        answered
    }

    /// A termination not yet answered keeps what is left of the grace period to leave.
    fn linger_for_termination(&self, idx: usize, answered: bool, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        let linger = if answered { 0 } else { left.as_millis() as i32 };
        let _ = self.slots[idx].channel.socket.set_linger(linger);
    }
}
