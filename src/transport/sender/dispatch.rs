// SPDX-License-Identifier: MPL-2.0
//! Multi-client req-rep: one REQ socket per receiver, and the frames handed out among them.
//!
//! Receivers come and go. One gets frames only while its socket has a handshaken peer, so the
//! stream starts with whichever receivers are up, and one that starts late or restarts is
//! added once its handshake succeeds (`ReceiverBack` after an outage). One that refuses
//! connections, loses its connection or leaves a frame unanswered for a request timeout is
//! reported down once per outage (`ReceiverDown`, counted in `receivers-down`) and skipped.
//!
//! Two orders:
//! - round robin, vidgear's: one frame at a time, to the next receiver in turn, waiting for
//!   its reply;
//! - load-balanced: each frame to the receiver free longest (its last frame answered), so up
//!   to one frame per receiver is in flight and each receiver is fed as fast as it answers.
//!
//! Frames leave in order. A frame is sent once, and again only when its receiver went away
//! or did not answer it within the request timeout: then it goes to another receiver before
//! any newer frame, so nothing is lost while one receiver answers. An answered frame is never
//! sent again. The receiver that failed may still have taken the frame in (one that stalls
//! after reading it, or dies between reading and answering): the frame then reaches two
//! applications at most, never none.

use super::{SenderLink, Slot};
use crate::transport::error::{socket_error, LinkError};
use crate::transport::events::{LinkEvent, Unanswered};
use crate::transport::{poll_timeout, recv_parts, Part, SharedBytes, Stats, Waker, CAT};
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::time::Instant;

/// How a multi-client req-rep sink hands frames to its receivers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// One frame at a time, to each receiver in turn (vidgear's multi-client mode).
    #[default]
    RoundRobin,
    /// Each frame to a receiver that is free, several frames in flight.
    LoadBalance,
}

/// Names a frame for its sender: the GStreamer timestamp (ns) and offset, where set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStamp {
    pub pts: Option<u64>,
    pub offset: Option<u64>,
}

/// A frame to send, owned: it may wait for a free receiver, or go again to another.
pub struct OutFrame {
    pub header: Vec<u8>,
    pub payload: SharedBytes,
    pub stamp: FrameStamp,
    /// When the frame goes stale (live input, `max-frame-age`): from then on it is given
    /// up rather than sent (see `freshness`). `None`: never.
    pub expires: Option<Instant>,
}

/// What became of a frame.
pub enum Outcome {
    /// A receiver replied (patterns 0/1).
    Answered {
        frame: OutFrame,
        reply: Vec<zmq::Message>,
    },
    /// Pattern 2: sent, no reply expected.
    Sent(OutFrame),
    /// Nobody listening: given up after one request timeout.
    Dropped(OutFrame),
    /// Given up as stale: it expired before it could be sent, or before it would have been
    /// sent again (see `freshness`).
    Stale(OutFrame),
}

/// A frame with its place in the sending order.
struct Queued {
    seq: u64,
    frame: OutFrame,
}

/// A frame sent to one receiver and not yet answered.
pub(super) struct InFlight {
    queued: Queued,
    deadline: Instant,
}

/// The frames of a multi-client req-rep link that are not settled yet.
#[derive(Default)]
pub(super) struct Dispatch {
    order: Order,
    /// Frames to send (or to send again), oldest first.
    waiting: VecDeque<Queued>,
    /// What became of frames since the caller last looked.
    outcomes: Vec<Outcome>,
    /// Unanswered attempts in a row with no other receiver to turn to; any reply resets it.
    attempts: u32,
    /// Frames queued so far: the next one's place in the order.
    queued: u64,
    /// Round robin: where the turn goes next.
    next: usize,
}

/// Why a wait for the receivers ended, short of an interruption.
#[derive(Debug, PartialEq, Eq)]
enum Woken {
    Network,
    Doorbell,
}

impl SenderLink {
    /// How frames are handed out in multi-client req-rep (round robin unless set).
    pub fn set_order(&mut self, order: Order) {
        self.dispatch.order = order;
    }

    /// Multi-client req-rep: several receivers, one socket each.
    pub(super) fn dispatches(&self) -> bool {
        self.slots.len() > 1
    }

    /// Whether frames still wait for a reply or for a receiver.
    pub fn has_in_flight(&self) -> bool {
        !self.dispatch.waiting.is_empty() || self.slots.iter().any(|s| s.in_flight.is_some())
    }

    /// Queues `frame` and sends it once a receiver takes it (round robin: and waits for its
    /// reply). Returns what became of the frames handed out so far.
    pub(super) fn dispatch(
        &mut self,
        frame: OutFrame,
        stats: &Stats,
    ) -> Result<Vec<Outcome>, LinkError> {
        let seq = self.dispatch.queued;
        self.dispatch.queued += 1;
        self.dispatch.waiting.push_back(Queued { seq, frame });
        let result = self
            .place_waiting(stats)
            .and_then(|()| match self.dispatch.order {
                Order::RoundRobin => self.finish_in_flight(None, stats),
                Order::LoadBalance => Ok(()),
            });
        self.outcomes_unless_interrupted(result, stats)
    }

    /// Waits until every frame is answered, or given up with nobody listening (end of
    /// stream). Returns what became of them.
    pub fn settle(&mut self, stats: &Stats) -> Result<Vec<Outcome>, LinkError> {
        let result = self.finish_in_flight(None, stats);
        self.outcomes_unless_interrupted(result, stats)
    }

    /// Like `settle`, but returns as soon as `doorbell` rings (a frame waits to be sent), so
    /// replies are taken in while no frame comes.
    pub fn await_answers(
        &mut self,
        doorbell: &Waker,
        stats: &Stats,
    ) -> Result<Vec<Outcome>, LinkError> {
        let result = self.finish_in_flight(Some(doorbell), stats);
        self.outcomes_unless_interrupted(result, stats)
    }

    /// On interruption (`unlock()`), the frames not sent yet are dropped (and counted) and
    /// those in flight forgotten: REQ_RELAXED lets their sockets send again, REQ_CORRELATE
    /// discards the late replies.
    fn outcomes_unless_interrupted(
        &mut self,
        result: Result<(), LinkError>,
        stats: &Stats,
    ) -> Result<Vec<Outcome>, LinkError> {
        if let Err(LinkError::Interrupted) = result {
            Stats::add(&stats.dropped, self.dispatch.waiting.len() as u64);
            self.dispatch.waiting.clear();
            self.slots.iter_mut().for_each(|s| s.in_flight = None);
        }
        result.map(|()| std::mem::take(&mut self.dispatch.outcomes))
    }

    /// Sends every waiting frame, oldest first, each as soon as a receiver takes it. With
    /// no receiver up for a request timeout, that counts as an unanswered attempt.
    fn place_waiting(&mut self, stats: &Stats) -> Result<(), LinkError> {
        let mut nobody_since: Option<Instant> = None;
        while !self.dispatch.waiting.is_empty() {
            self.collect(stats)?;
            if let Some(idx) = self.free_receiver() {
                let queued = self.dispatch.waiting.pop_front().expect("a waiting frame");
                self.send_to(idx, queued, stats)?;
                nobody_since = None;
                continue;
            }
            let mut wake = self.earliest_deadline();
            if self.anyone_up() {
                nobody_since = None;
            } else {
                let now = Instant::now();
                let give_up = *nobody_since.get_or_insert(now) + self.config.request_timeout;
                if now >= give_up {
                    self.nobody_took(stats)?;
                    nobody_since = None;
                    continue;
                }
                wake = Some(wake.map_or(give_up, |w| w.min(give_up)));
            }
            self.wait_receivers(wake, None)?;
        }
        Ok(())
    }

    /// Waits until nothing is in flight or waiting, or (with a doorbell) it rings.
    fn finish_in_flight(
        &mut self,
        doorbell: Option<&Waker>,
        stats: &Stats,
    ) -> Result<(), LinkError> {
        loop {
            self.collect(stats)?;
            if !self.dispatch.waiting.is_empty() {
                self.place_waiting(stats)?;
                continue;
            }
            let Some(deadline) = self.earliest_deadline() else {
                return Ok(());
            };
            if self.wait_receivers(Some(deadline), doorbell)? == Woken::Doorbell {
                return Ok(());
            }
        }
    }

    /// Takes in what the receivers did since the last look: replies, frames unanswered in
    /// time or lost with their connection, receivers that came up or went down.
    fn collect(&mut self, stats: &Stats) -> Result<(), LinkError> {
        for idx in 0..self.slots.len() {
            let handler = self.config.events.clone();
            // The handshake's event is queued before any reply: report it first.
            self.slots[idx].channel.drain(stats, &handler);
            if self.slots[idx].in_flight.is_some() {
                self.check_answer(idx, stats)?;
            } else {
                self.check_presence(idx, stats)?;
            }
        }
        Ok(())
    }

    /// The reply to the frame in flight on `idx`, if it came; a frame past its deadline or
    /// whose connection dropped is unanswered.
    fn check_answer(&mut self, idx: usize, stats: &Stats) -> Result<(), LinkError> {
        let slot = &mut self.slots[idx];
        match recv_parts(&slot.channel.socket) {
            Ok(reply) => {
                let in_flight = slot.in_flight.take().expect("a frame in flight");
                slot.free_since = Instant::now();
                self.dispatch.attempts = 0;
                self.silent = 0;
                let frame = in_flight.queued.frame;
                self.dispatch
                    .outcomes
                    .push(Outcome::Answered { frame, reply });
                return Ok(());
            }
            Err(zmq::Error::EAGAIN) => {}
            Err(e) => {
                let endpoint = slot.channel.endpoint_list();
                return Err(socket_error("read a reply from", &endpoint)(e));
            }
        }
        let expired = slot
            .in_flight
            .as_ref()
            .is_some_and(|f| Instant::now() >= f.deadline);
        if expired || slot.channel.peers.lost {
            let in_flight = slot.in_flight.take().expect("a frame in flight");
            self.unanswered(idx, in_flight.queued, stats)?;
        }
        Ok(())
    }

    /// A receiver with no frame in flight: back once its socket has a peer again; down
    /// (reported once) when it refuses connections, fails the handshake or its peer left.
    fn check_presence(&mut self, idx: usize, stats: &Stats) -> Result<(), LinkError> {
        let slot = &mut self.slots[idx];
        let peers = &slot.channel.peers;
        if slot.down {
            if peers.connected() > 0 {
                slot.down = false;
                slot.channel.peers.mark();
                let endpoint = slot.channel.endpoint_list();
                gst::info!(CAT, "receiver {endpoint} is back");
                self.config
                    .events
                    .emit(LinkEvent::ReceiverBack { endpoint });
            }
            return Ok(());
        }
        let refused = peers.refused && !peers.reached_anyone();
        if peers.connected() == 0 && (peers.lost || peers.failed.is_some() || refused) {
            let cause = self.cause(idx);
            self.set_down(idx, cause, stats)?;
        }
        Ok(())
    }

    /// A frame its receiver left unanswered: another receiver that is up gets it and this
    /// one is skipped; with none, it is one unanswered attempt of the lazy pirate.
    fn unanswered(&mut self, idx: usize, queued: Queued, stats: &Stats) -> Result<(), LinkError> {
        Stats::bump(&stats.retries);
        let cause = self.cause(idx);
        if self.up_besides(idx) {
            self.set_down(idx, cause, stats)?;
            self.requeue(queued);
            return Ok(());
        }
        self.dispatch.attempts += 1;
        let endpoints = self.slots[idx].channel.endpoint_list();
        let nobody = self.count_unanswered(self.dispatch.attempts, endpoints, cause)?;
        self.retry_socket(idx, stats)?;
        if nobody {
            self.dispatch.outcomes.push(Outcome::Dropped(queued.frame));
        } else {
            self.requeue(queued);
        }
        Ok(())
    }

    /// No receiver was up for a whole request timeout: one unanswered attempt for the
    /// oldest waiting frame, given up if nobody listens.
    fn nobody_took(&mut self, stats: &Stats) -> Result<(), LinkError> {
        Stats::bump(&stats.retries);
        let cause = (0..self.slots.len())
            .map(|idx| self.cause(idx))
            .find(|cause| *cause != Unanswered::NobodyListening)
            .unwrap_or(Unanswered::NobodyListening);
        self.dispatch.attempts += 1;
        let endpoints = self.config.endpoint_list();
        let nobody = self.count_unanswered(self.dispatch.attempts, endpoints, cause)?;
        // libzmq does not connect again after a refused handshake: fresh sockets do.
        for idx in 0..self.slots.len() {
            if self.slots[idx].channel.peers.failed.is_some() {
                self.reconnect(idx, stats)?;
            }
        }
        if nobody {
            let queued = self.dispatch.waiting.pop_front().expect("a waiting frame");
            self.dispatch.outcomes.push(Outcome::Dropped(queued.frame));
        }
        Ok(())
    }

    /// Skips a receiver, warns once per outage, and gives it a fresh socket that connects
    /// in the background.
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

    /// Puts a frame back among the waiting ones, in its place in the order.
    fn requeue(&mut self, queued: Queued) {
        let waiting = &mut self.dispatch.waiting;
        let at = waiting.partition_point(|q| q.seq < queued.seq);
        waiting.insert(at, queued);
    }

    /// Sends a frame to receiver `idx` and leaves it in flight there.
    fn send_to(&mut self, idx: usize, queued: Queued, stats: &Stats) -> Result<(), LinkError> {
        let deadline = Instant::now() + self.config.request_timeout;
        self.slots[idx].channel.peers.mark();
        let frame = &queued.frame;
        let parts = [Part::Copied(&frame.header), Part::Shared(&frame.payload)];
        // No room before the deadline: the frame is unanswered at the next look.
        self.send_parts(idx, &parts, deadline, stats)?;
        self.slots[idx].in_flight = Some(InFlight { queued, deadline });
        Ok(())
    }

    /// The receiver the next frame goes to, if one takes it now.
    fn free_receiver(&mut self) -> Option<usize> {
        let free = |slot: &Slot| is_up(slot) && slot.in_flight.is_none();
        let n = self.slots.len();
        match self.dispatch.order {
            Order::LoadBalance => (0..n)
                .filter(|idx| free(&self.slots[*idx]))
                .min_by_key(|idx| self.slots[*idx].free_since),
            Order::RoundRobin => {
                if self.slots.iter().any(|s| s.in_flight.is_some()) {
                    return None;
                }
                let start = self.dispatch.next % n;
                let idx = (0..n)
                    .map(|k| (start + k) % n)
                    .find(|idx| free(&self.slots[*idx]))?;
                self.dispatch.next = idx + 1;
                Some(idx)
            }
        }
    }

    fn anyone_up(&self) -> bool {
        self.slots.iter().any(is_up)
    }

    fn up_besides(&self, idx: usize) -> bool {
        (0..self.slots.len()).any(|other| other != idx && is_up(&self.slots[other]))
    }

    fn earliest_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| s.in_flight.as_ref().map(|f| f.deadline))
            .min()
    }

    /// Waits until `until` (`None`: forever) for a reply, a socket event, the doorbell or
    /// the waker (an `Interrupted` error).
    fn wait_receivers(
        &self,
        until: Option<Instant>,
        doorbell: Option<&Waker>,
    ) -> Result<Woken, LinkError> {
        let mut items = vec![zmq::PollItem::from_fd(
            self.waker.readable.as_raw_fd(),
            zmq::POLLIN,
        )];
        if let Some(bell) = doorbell {
            items.push(zmq::PollItem::from_fd(
                bell.readable.as_raw_fd(),
                zmq::POLLIN,
            ));
        }
        for slot in &self.slots {
            items.push(slot.channel.monitor.as_poll_item());
            if slot.in_flight.is_some() {
                items.push(slot.channel.socket.as_poll_item(zmq::POLLIN));
            }
        }
        loop {
            match zmq::poll(&mut items, poll_timeout(until)) {
                Ok(_) => break,
                Err(zmq::Error::EINTR) => continue,
                Err(e) => {
                    let all = self.config.endpoint_list();
                    return Err(socket_error("wait for replies from", &all)(e));
                }
            }
        }
        if items[0].is_readable() {
            return Err(LinkError::Interrupted);
        }
        if doorbell.is_some() && items[1].is_readable() {
            return Ok(Woken::Doorbell);
        }
        Ok(Woken::Network)
    }

    /// End of stream: the termination to every receiver that is up, all at once, then
    /// their answers until `deadline`, so a slow receiver does not hold up the others'.
    pub(super) fn terminate_receivers(
        &mut self,
        message: &[u8],
        deadline: Instant,
        stats: &Stats,
    ) -> bool {
        let grace = self.config.request_timeout / 5;
        let handler = self.config.events.clone();
        let mut listening = Vec::new();
        for idx in 0..self.slots.len() {
            self.slots[idx].channel.drain(stats, &handler);
            if self.slots[idx].channel.peers.connected() > 0 {
                listening.push(idx);
            } else {
                self.terminate_now(idx, message, grace);
            }
        }
        if listening.is_empty() || !self.pause_before_termination() {
            return false;
        }
        let mut unanswered: Vec<usize> = listening
            .iter()
            .copied()
            .filter(|idx| {
                let sent = self.send_parts(*idx, &[Part::Copied(message)], deadline, stats);
                matches!(sent, Ok(true))
            })
            .collect();
        let sent = unanswered.len();
        while !unanswered.is_empty() && self.wait_terminations(&unanswered, deadline) {
            unanswered.retain(|idx| recv_parts(&self.slots[*idx].channel.socket).is_err());
        }
        for idx in listening {
            self.linger_for_termination(idx, !unanswered.contains(&idx), deadline);
        }
        unanswered.len() < sent
    }

    /// Waits for an answer on any of `slots` until `deadline`; `false`: none came in time,
    /// or interrupted.
    fn wait_terminations(&self, slots: &[usize], deadline: Instant) -> bool {
        let mut items: Vec<_> = slots
            .iter()
            .map(|idx| self.slots[*idx].channel.socket.as_poll_item(zmq::POLLIN))
            .collect();
        items.push(zmq::PollItem::from_fd(
            self.waker.readable.as_raw_fd(),
            zmq::POLLIN,
        ));
        let woken = match zmq::poll(&mut items, poll_timeout(Some(deadline))) {
            Ok(ready) => ready > 0,
            // A signal: look again (the deadline still ends the wait).
            Err(zmq::Error::EINTR) => true,
            Err(_) => false,
        };
        woken && !items.last().is_some_and(zmq::PollItem::is_readable)
    }
}

/// A receiver that takes frames: not reported down, and a peer on its socket.
fn is_up(slot: &Slot) -> bool {
    !slot.down && slot.channel.peers.connected() > 0
}
