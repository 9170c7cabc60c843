// SPDX-License-Identifier: MPL-2.0
//! Frames that went stale while the link was down are given up, not sent.
//!
//! A live frame comes with an expiry (`OutFrame::expires`, from the sink's
//! `max-frame-age`). After an outage the frames the sink held are past it, and sending them
//! would deliver a burst of old pictures before the fresh ones. So a frame is given up
//! (`Outcome::Stale`):
//! - when its turn comes and it has expired (it waited behind a frame the outage held up);
//! - when it expires while waiting for room to be sent (no receiver connected): the next
//!   frame takes its place in the same attempt, which still ends one request timeout after
//!   it started and counts once, as if one frame had waited all along;
//! - when a reply did not come and it would be sent again, expired.
//!
//! REQ queues a frame on a socket that has no connection yet (after a lazy-pirate
//! reconnect), where it would wait out the outage and arrive old: a frame that expires waits
//! for the connection first (`wait_for_peer`), as PAIR and PUB wait with `ZMQ_IMMEDIATE`.
//!
//! A frame already on the wire is waited for until its reply or the request timeout:
//! abandoning it would leave its reply to be taken for the next frame's (PAIR), or need a
//! fresh socket (REQ). Unanswered attempts in a row are counted across the frames given
//! up, so `max-retries` ends a dead link after as many request timeouts as before.

use super::{Exchanged, SenderLink};
use crate::config::Pattern;
use crate::transport::{poll_timeout, LinkError, Stats};
use std::os::fd::AsRawFd;
use std::time::Instant;

/// What an attempt carries over to the next frame when its frame is given up as stale.
#[derive(Debug, Default)]
pub(super) struct Carried {
    /// The deadline of the attempt the next frame continues.
    window: Option<Instant>,
}

/// What one attempt came to.
pub(super) enum Tried {
    Done(Exchanged),
    /// No reply in time, or the receiver's connection dropped meanwhile.
    Unanswered,
    /// The frame expired before there was room to send it.
    Stale,
}

/// Whether a frame with this expiry is stale now.
pub(super) fn expired(expires: Option<Instant>) -> bool {
    expires.is_some_and(|at| Instant::now() >= at)
}

/// The earlier of an attempt's deadline and a frame's expiry.
pub(super) fn earliest(deadline: Instant, expires: Option<Instant>) -> Instant {
    expires.map_or(deadline, |at| at.min(deadline))
}

impl SenderLink {
    /// The deadline of an attempt on slot `idx`: the one a stale frame left, or a request
    /// timeout from now, its socket's events read and a new observation window started.
    pub(super) fn attempt_deadline(&mut self, idx: usize, stats: &Stats) -> Instant {
        if let Some(deadline) = self.carried.window.take() {
            return deadline;
        }
        let handler = self.config.events.clone();
        self.slots[idx].channel.drain(stats, &handler);
        self.slots[idx].channel.peers.mark();
        Instant::now() + self.config.request_timeout
    }

    /// There was no room to send before the frame expired or the attempt ended. Before the
    /// attempt's deadline the frame was stale first: the attempt goes on with the next one.
    pub(super) fn not_sent(&mut self, deadline: Instant) -> Tried {
        if Instant::now() < deadline {
            self.carried.window = Some(deadline);
            Tried::Stale
        } else {
            Tried::Unanswered
        }
    }

    /// REQ, a frame that expires: waits until slot `idx` has a connected receiver, at most
    /// until `until`. `false`: none in time. Other patterns queue only on a connection.
    pub(super) fn wait_for_peer(
        &mut self,
        idx: usize,
        expires: Option<Instant>,
        until: Instant,
        stats: &Stats,
    ) -> Result<bool, LinkError> {
        if expires.is_none() || self.config.pattern != Pattern::ReqRep {
            return Ok(true);
        }
        let handler = self.config.events.clone();
        let channel = &mut self.slots[idx].channel;
        loop {
            channel.drain(stats, &handler);
            if channel.peers.connected() > 0 {
                return Ok(true);
            }
            if Instant::now() >= until {
                return Ok(false);
            }
            let mut items = [
                zmq::PollItem::from_fd(self.waker.readable.as_raw_fd(), zmq::POLLIN),
                channel.monitor.as_poll_item(),
            ];
            match zmq::poll(&mut items, poll_timeout(Some(until))) {
                Ok(_) | Err(zmq::Error::EINTR) => {}
                Err(e) => {
                    let all = channel.endpoint_list();
                    return Err(crate::transport::error::socket_error("send to", &all)(e));
                }
            }
            if items[0].is_readable() {
                return Err(LinkError::Interrupted);
            }
        }
    }

    /// Gives the frame up as stale, the outage's count of unanswered attempts carrying on to the next.
    pub(super) fn give_up_stale(&mut self, attempts: u32) -> Exchanged {
        gst::debug!(
            crate::transport::CAT,
            "frame stale after {attempts} unanswered attempts: given up, not sent again"
        );
        Exchanged::Stale
    }
}

#[cfg(test)]
mod tests {
    use super::super::{OutFrame, Outcome};
    use super::*;
    use crate::config::{Pattern, Role};
    use crate::test_support::{free_port, init};
    use crate::transport::events::{EventHandler, LinkEvent};
    use crate::transport::{LinkConfig, Waker};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_frame_expires_at_its_instant_and_bounds_the_wait() {
        let now = Instant::now();
        assert!(!expired(None));
        assert!(expired(Some(now)));
        assert!(!expired(Some(now + MS(60_000))));
        let deadline = now + MS(4000);
        assert_eq!(earliest(deadline, None), deadline);
        assert_eq!(earliest(deadline, Some(now + MS(1000))), now + MS(1000));
        assert_eq!(earliest(deadline, Some(deadline + MS(1000))), deadline);
    }

    /// A PAIR sender to `endpoint` whose events go to the returned list.
    fn pair_sender(
        endpoint: &str,
        timeout: Duration,
        max_retries: u32,
    ) -> (SenderLink, Arc<Mutex<Vec<LinkEvent>>>) {
        sender(Pattern::Pair, endpoint, timeout, max_retries)
    }

    fn sender(
        pattern: Pattern,
        endpoint: &str,
        timeout: Duration,
        max_retries: u32,
    ) -> (SenderLink, Arc<Mutex<Vec<LinkEvent>>>) {
        init();
        let seen: Arc<Mutex<Vec<LinkEvent>>> = Arc::default();
        let log = seen.clone();
        let config = LinkConfig {
            role: Role::Sender,
            pattern,
            endpoints: vec![endpoint.to_owned()],
            request_timeout: timeout,
            max_retries,
            max_message_bytes: 1 << 20,
            curve: None,
            clients: None,
            newest_only: false,
            events: EventHandler::new(Arc::new(move |e| log.lock().unwrap().push(e))),
        };
        let link = SenderLink::open(config, Arc::new(Waker::new().unwrap())).unwrap();
        (link, seen)
    }

    fn frame(expires: Option<Instant>) -> OutFrame {
        marked(expires, 7)
    }

    fn marked(expires: Option<Instant>, mark: u8) -> OutFrame {
        OutFrame {
            header: b"{}".to_vec(),
            payload: Arc::new(vec![mark; 18]),
            stamp: Default::default(),
            expires,
        }
    }

    fn unanswered(seen: &Mutex<Vec<LinkEvent>>) -> Vec<u32> {
        let seen = seen.lock().unwrap();
        let attempt = |e: &LinkEvent| match e {
            LinkEvent::Unanswered { attempt, .. } => Some(*attempt),
            _ => None,
        };
        seen.iter().filter_map(attempt).collect()
    }

    fn is_stale(outcomes: &[Outcome]) -> bool {
        matches!(outcomes, [Outcome::Stale(_)])
    }

    #[test]
    fn a_stale_frame_is_not_sent_again_and_its_attempt_counts_for_the_next() {
        let port = free_port();
        let endpoint = format!("tcp://127.0.0.1:{port}");
        let context = zmq::Context::new();
        // A receiver that reads frames and never answers.
        let receiver = context.socket(zmq::PAIR).unwrap();
        receiver.bind(&endpoint).unwrap();
        let (mut link, seen) = pair_sender(&endpoint, MS(300), 1);
        let stats = Stats::default();
        let outcomes = link.send(frame(Some(Instant::now() + MS(150))), &stats);
        assert!(is_stale(&outcomes.unwrap()));
        assert_eq!(unanswered(&seen), [1]);
        // Sent once, not again.
        assert!(receiver.poll(zmq::POLLIN, 1000).unwrap() > 0);
        assert_eq!(receiver.recv_multipart(0).unwrap().len(), 2);
        assert_eq!(receiver.poll(zmq::POLLIN, 500).unwrap(), 0);
        // The next frame's attempt is the second in a row: max-retries=1 ends the link.
        let error = link.send(frame(None), &stats).err().expect("an error");
        assert!(error.to_string().contains("after 2 attempts"), "{error}");
        assert_eq!(unanswered(&seen), [1, 2]);
    }

    #[test]
    fn frames_that_find_no_room_take_turns_in_one_attempt() {
        let endpoint = format!("tcp://127.0.0.1:{}", free_port());
        let (mut link, seen) = pair_sender(&endpoint, MS(600), 5);
        let stats = Stats::default();
        let started = Instant::now();
        for _ in 0..3 {
            let expires = Some(Instant::now() + MS(100));
            assert!(is_stale(&link.send(frame(expires), &stats).unwrap()));
        }
        assert!(started.elapsed() < MS(450), "{:?}", started.elapsed());
        assert_eq!(unanswered(&seen), Vec::<u32>::new());
        // The attempt the three took turns in ends one request timeout after it started.
        let outcomes = link.send(frame(None), &stats).unwrap();
        assert!(matches!(outcomes[..], [Outcome::Dropped(_)]));
        let took = started.elapsed();
        assert!(took >= MS(590) && took < MS(850), "{took:?}");
        assert_eq!(unanswered(&seen), [1]);
    }

    #[test]
    fn a_frame_expired_before_its_turn_is_never_sent() {
        let endpoint = format!("tcp://127.0.0.1:{}", free_port());
        let context = zmq::Context::new();
        let receiver = context.socket(zmq::PAIR).unwrap();
        receiver.bind(&endpoint).unwrap();
        let (mut link, _) = pair_sender(&endpoint, MS(2000), 1);
        let stats = Stats::default();
        let outcomes = link.send(frame(Some(Instant::now())), &stats).unwrap();
        assert!(is_stale(&outcomes));
        assert_eq!(receiver.poll(zmq::POLLIN, 300).unwrap(), 0);
    }

    /// REQ would queue the frame until a receiver connects and deliver it old.
    #[test]
    fn req_does_not_queue_a_frame_that_expires_before_a_receiver_connects() {
        let endpoint = format!("tcp://127.0.0.1:{}", free_port());
        let (mut link, seen) = sender(Pattern::ReqRep, &endpoint, MS(2000), 1);
        let stats = Stats::default();
        let started = Instant::now();
        let outcomes = link.send(marked(Some(Instant::now() + MS(100)), 1), &stats);
        assert!(is_stale(&outcomes.unwrap()));
        assert!(started.elapsed() < MS(400), "{:?}", started.elapsed());
        let context = zmq::Context::new();
        let receiver = context.socket(zmq::REP).unwrap();
        receiver.bind(&endpoint).unwrap();
        let answer = std::thread::spawn(move || {
            let request = receiver.recv_multipart(0).unwrap();
            receiver.send("ok", 0).unwrap();
            request
        });
        let outcomes = link.send(marked(None, 2), &stats).unwrap();
        assert!(matches!(outcomes[..], [Outcome::Answered { .. }]));
        assert_eq!(answer.join().unwrap()[1], vec![2u8; 18]);
        assert_eq!(unanswered(&seen), Vec::<u32>::new());
    }
}
