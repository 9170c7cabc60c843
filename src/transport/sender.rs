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
//! - multi-client req-rep gives each receiver its own REQ socket: one that stops
//!   answering is skipped after one timeout and retried in the background.

use super::error::{socket_error, LinkError};
use super::events::{HandshakeFailure, LinkEvent, Unanswered};
use super::{pause, recv_parts, send_part, Channel, LinkConfig, Part, Stats, Wait, Waker, CAT};
use crate::config::Pattern;
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
}

/// One socket: every endpoint, or (multi-client req-rep) one receiver.
struct Slot {
    channel: Channel,
    /// Multi-client: skipped until its socket reports a handshake again.
    down: bool,
}

/// The sender's link.
pub struct SenderLink {
    // Declared before the context: sockets must close before the context terminates.
    slots: Vec<Slot>,
    context: zmq::Context,
    config: LinkConfig,
    waker: Arc<Waker>,
    /// Multi-client: where the round-robin goes next.
    next: usize,
    /// Request timeouts in a row with nobody listening, across frames.
    silent: u32,
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
        for endpoints in groups {
            let channel = Self::connect(&context, &config, endpoints)?;
            slots.push(Slot {
                channel,
                down: false,
            });
        }
        Ok(SenderLink {
            slots,
            context,
            config,
            waker,
            next: 0,
            silent: 0,
        })
    }

    fn connect(
        context: &zmq::Context,
        config: &LinkConfig,
        endpoints: Vec<String>,
    ) -> Result<Channel, LinkError> {
        let channel = Channel::new(context, config, endpoints)?;
        for endpoint in &channel.endpoints {
            channel
                .socket
                .connect(endpoint)
                .map_err(socket_error("connect to", endpoint))?;
            gst::debug!(CAT, "connecting to {endpoint}");
        }
        Ok(channel)
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

    /// One attempt on one slot: send, then (patterns 0/1) wait for the reply. `None`: no
    /// reply in time, or the receiver's connection dropped meanwhile.
    fn attempt(
        &mut self,
        idx: usize,
        parts: &[Part<'_>],
        stats: &Stats,
    ) -> Result<Option<Exchanged>, LinkError> {
        let deadline = Instant::now() + self.config.request_timeout;
        let handler = self.config.events.clone();
        self.slots[idx].channel.drain(stats, &handler);
        self.slots[idx].channel.peers.mark();
        if !self.send_parts(idx, parts, deadline, stats)? {
            return Ok(None);
        }
        if !self.config.pattern.is_acknowledged() {
            return Ok(Some(Exchanged::Sent));
        }
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
                    .map(|reply| Some(Exchanged::Reply(reply)))
                    .map_err(socket_error("read a reply from", &all))
            }
            Wait::Interrupted => Err(LinkError::Interrupted),
            Wait::TimedOut | Wait::Lost => Ok(None),
        }
    }

    /// Why the last attempt on a slot went unanswered, from its socket's events.
    fn cause(&self, idx: usize) -> Unanswered {
        let peers = &self.slots[idx].channel.peers;
        if peers.lost {
            Unanswered::ConnectionLost
        } else if let Some(reason) = &peers.failed {
            Unanswered::HandshakeFailed(reason.clone())
        } else if peers.connected() == 0 && !peers.handshaken && !peers.reached_anyone() {
            Unanswered::NobodyListening
        } else if peers.connected() == 0 && !peers.handshaken {
            // A connection was made but never became a ZMTP peer.
            Unanswered::HandshakeFailed(HandshakeFailure::NoDetail)
        } else if self.config.pattern == Pattern::Pair {
            Unanswered::PairSlotTaken
        } else {
            Unanswered::NoReply
        }
    }

    /// Multi-client: the next slot in turn that is not down (any slot if all are).
    fn pick(&mut self) -> usize {
        let n = self.slots.len();
        let start = self.next % n;
        let idx = (0..n)
            .map(|k| (start + k) % n)
            .find(|i| !self.slots[*i].down)
            .unwrap_or(start);
        self.next = idx + 1;
        idx
    }

    /// Multi-client: brings back receivers whose fresh socket has handshaken again.
    fn revive(&mut self, stats: &Stats) {
        let handler = self.config.events.clone();
        for slot in self.slots.iter_mut().filter(|s| s.down) {
            slot.channel.drain(stats, &handler);
            if slot.channel.peers.connected() > 0 {
                slot.down = false;
                let endpoint = slot.channel.endpoint_list();
                gst::info!(CAT, "receiver {endpoint} is back");
                handler.emit(LinkEvent::ReceiverBack { endpoint });
            }
        }
    }

    /// Multi-client: skips a receiver that did not answer, warns once, and gives it a
    /// fresh socket that reconnects in the background.
    fn set_down(&mut self, idx: usize, cause: Unanswered, stats: &Stats) -> Result<(), LinkError> {
        let endpoint = self.slots[idx].channel.endpoint_list();
        gst::warning!(
            CAT,
            "receiver {endpoint} does not answer ({cause}): skipping it"
        );
        Stats::bump(&stats.receivers_down);
        self.config
            .events
            .emit(LinkEvent::ReceiverDown { endpoint, cause });
        self.reconnect(idx, stats)?;
        self.slots[idx].down = true;
        Ok(())
    }

    /// Sends one message. In patterns 0/1 waits for the reply, retrying as the module
    /// documentation says.
    pub fn exchange(&mut self, parts: &[Part<'_>], stats: &Stats) -> Result<Exchanged, LinkError> {
        self.revive(stats);
        let mut attempts = 0u32;
        loop {
            let idx = self.pick();
            if let Some(done) = self.attempt(idx, parts, stats)? {
                self.silent = 0;
                if std::mem::replace(&mut self.slots[idx].down, false) {
                    let endpoint = self.slots[idx].channel.endpoint_list();
                    self.config
                        .events
                        .emit(LinkEvent::ReceiverBack { endpoint });
                }
                return Ok(done);
            }
            let cause = self.cause(idx);
            Stats::bump(&stats.retries);
            let others_up = (0..self.slots.len()).any(|i| i != idx && !self.slots[i].down);
            if others_up {
                // Skipping a dead receiver does not use up this frame's retries.
                self.set_down(idx, cause, stats)?;
                continue;
            }
            let nobody = cause == Unanswered::NobodyListening;
            attempts += 1;
            let attempt = if nobody {
                self.silent += 1;
                self.silent
            } else {
                attempts
            };
            self.report_unanswered(idx, attempt, cause.clone());
            if attempt > self.config.max_retries {
                let endpoints = self.slots[idx].channel.endpoint_list();
                let timeout = self.config.request_timeout;
                return Err(LinkError::unanswered(cause, endpoints, attempt, timeout));
            }
            self.retry_socket(idx, stats)?;
            if nobody {
                return Ok(Exchanged::Dropped);
            }
        }
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

    fn report_unanswered(&self, idx: usize, attempt: u32, cause: Unanswered) {
        let event = LinkEvent::Unanswered {
            endpoints: self.slots[idx].channel.endpoint_list(),
            attempt,
            attempts: self.config.max_retries + 1,
            timeout: self.config.request_timeout,
            cause,
        };
        gst::info!(CAT, "{event}");
        self.config.events.emit(event);
    }

    /// Sends the termination message without retries; `copies` is one per receiver owed
    /// one on a shared multi-client socket. With `wait` (end of stream), patterns 0/1
    /// wait at most `request_timeout / 5` for the pattern-1 answer, as vidgear does, and
    /// pattern 2 repeats the message because a full one-slot queue drops it; a socket
    /// with no receiver connected is not waited for. Without `wait` (stopping without
    /// EOS) it is one send that never blocks. Returns whether a receiver answered.
    pub fn terminate(&mut self, message: &[u8], copies: usize, wait: bool) -> bool {
        let grace = self.config.request_timeout / 5;
        let deadline = Instant::now() + grace;
        // Events seen now are not counted: the element reads its stats before this.
        let scratch = Stats::default();
        let handler = self.config.events.clone();
        let copies = if self.slots.len() > 1 { 1 } else { copies };
        let acknowledged = self.config.pattern.is_acknowledged();
        let mut waited = false;
        let mut answered = false;
        for idx in 0..self.slots.len() {
            self.slots[idx].channel.drain(&scratch, &handler);
            let listening = self.slots[idx].channel.peers.connected() > 0;
            if !wait || (acknowledged && !listening) {
                gst::debug!(
                    CAT,
                    "termination to {} without waiting",
                    self.slots[idx].channel.endpoint_list()
                );
                self.terminate_now(idx, message, copies, grace);
                continue;
            }
            if acknowledged && !waited {
                waited = true;
                if !pause(TERMINATION_DELAY.min(grace / 2), &self.waker) {
                    return false;
                }
            }
            answered |= self.terminate_waiting(idx, message, copies, deadline, &scratch);
        }
        answered
    }

    /// One send per copy that never blocks; the socket keeps a moment to flush it.
    fn terminate_now(&mut self, idx: usize, message: &[u8], copies: usize, grace: Duration) {
        let socket = &self.slots[idx].channel.socket;
        let _ = socket.set_linger(grace.min(STOP_LINGER).as_millis() as i32);
        for _ in 0..copies {
            let _ = socket.send(message, zmq::DONTWAIT);
        }
    }

    fn terminate_waiting(
        &mut self,
        idx: usize,
        message: &[u8],
        copies: usize,
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
                    for _ in 0..copies {
                        let _ = socket.send(message, zmq::DONTWAIT);
                    }
                }
            }
            Pattern::Pair => {
                let _ = self.send_parts(idx, &[Part::Copied(message)], deadline, stats);
            }
            Pattern::ReqRep => {
                let handler = self.config.events.clone();
                for _ in 0..copies {
                    if !matches!(
                        self.send_parts(idx, &[Part::Copied(message)], deadline, stats),
                        Ok(true)
                    ) {
                        break;
                    }
                    let channel = &mut self.slots[idx].channel;
                    let waited = channel.wait(
                        zmq::POLLIN,
                        Some(deadline),
                        &self.waker,
                        true,
                        (stats, &handler),
                    );
                    if waited != Ok(Wait::Ready) {
                        break;
                    }
                    answered |= recv_parts(&channel.socket).is_ok();
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = self.slots[idx].channel.socket.set_linger(if answered {
            0
        } else {
            left.as_millis() as i32
        });
        answered
    }
}
