// SPDX-License-Identifier: MPL-2.0
//! `netgearsrc`'s timing state: the `framerate` mode, the frames held while their rate is
//! measured, the caps they wait for, and the rate announced (see `frames::rate`).

use crate::frames::rate::{frame_duration, RateMeter, RateMode, MEASURE_WINDOW};
use std::time::Instant;

/// Caps with `rate` as their framerate.
pub fn caps_with_rate(caps: &gst::Caps, rate: gst::Fraction) -> gst::Caps {
    let mut caps = caps.clone();
    for s in caps.make_mut().iter_mut() {
        s.set("framerate", rate);
    }
    caps
}

/// What a frame leads to once timed.
pub enum Timed {
    /// Push these (with these caps first, if any).
    Push(Option<gst::Caps>, Vec<gst::Buffer>),
    /// Held while the rate is measured.
    Held,
}

#[derive(Debug)]
pub struct Timing {
    meter: RateMeter,
    /// The rate buffers are announced with once decided (`None`: variable, 0/1).
    rate: Option<gst::Fraction>,
    decided: bool,
    held: Vec<gst::Buffer>,
    /// The caps the held frames need, set once the rate is known.
    pending_caps: Option<gst::Caps>,
    /// A frame needs other caps than the held ones: it goes after them, with these.
    next_caps: Option<gst::Caps>,
    next: Option<gst::Buffer>,
    /// The stream ended while frames were held: EOS after them.
    eos_after_held: bool,
    /// When the first frame was held: the measurement ends `MEASURE_WINDOW` later even if
    /// no other frame comes.
    held_since: Option<Instant>,
}

impl Timing {
    pub fn new(mode: RateMode) -> Timing {
        let (rate, decided) = match mode {
            RateMode::Fixed(rate) => (Some(rate), true),
            RateMode::Variable => (None, true),
            RateMode::Measure => (None, false),
        };
        Timing {
            meter: RateMeter::default(),
            rate,
            decided,
            held: Vec::new(),
            pending_caps: None,
            next_caps: None,
            next: None,
            eos_after_held: false,
            held_since: None,
        }
    }

    /// The rate announced now, if any.
    pub fn rate(&self) -> Option<gst::Fraction> {
        self.rate
    }

    pub fn is_measuring(&self) -> bool {
        !self.decided
    }

    /// The caps to set now for a frame that needs `caps`; `None`: wait (measuring).
    pub fn caps_for(&mut self, caps: &gst::Caps) -> Option<gst::Caps> {
        if self.decided {
            return Some(self.with_rate(caps));
        }
        match &self.pending_caps {
            Some(held) if held != caps && !self.held.is_empty() => {
                self.next_caps = Some(caps.clone())
            }
            _ => self.pending_caps = Some(caps.clone()),
        }
        None
    }

    fn with_rate(&self, caps: &gst::Caps) -> gst::Caps {
        match self.rate {
            Some(rate) => caps_with_rate(caps, rate),
            None => caps.clone(),
        }
    }

    /// A frame that arrived at `arrival` (running time): pushed now, or held.
    pub fn frame(&mut self, mut buffer: gst::Buffer, arrival: Option<gst::ClockTime>) -> Timed {
        if let Some(pts) = arrival {
            buffer.make_mut().set_pts(pts);
        }
        if self.decided {
            return Timed::Push(None, vec![self.with_duration(buffer)]);
        }
        if self.next_caps.is_some() {
            // Its caps differ from the held frames': decide with what was measured.
            self.next = Some(buffer);
            return self.decide();
        }
        if let Some(t) = arrival {
            self.meter.observe(t);
        }
        self.held.push(buffer);
        self.held_since.get_or_insert_with(Instant::now);
        match arrival.is_none_or(|t| self.meter.is_done(t)) {
            true => self.decide(),
            false => Timed::Held,
        }
    }

    /// When the measurement must end though no frame arrives (frames are held).
    pub fn hold_deadline(&self) -> Option<Instant> {
        match self.decided || self.held.is_empty() {
            true => None,
            false => self.held_since.map(|t| t + MEASURE_WINDOW),
        }
    }

    /// Ends the measurement if its window is over: the held frames, or nothing.
    pub fn window_over(&mut self) -> Option<Timed> {
        let over = self.hold_deadline().is_some_and(|t| Instant::now() >= t);
        over.then(|| self.decide())
    }

    /// Ends the measurement: the held frames with their caps (also at EOS).
    pub fn decide(&mut self) -> Timed {
        if self.decided {
            return Timed::Push(None, Vec::new());
        }
        self.decided = true;
        self.rate = self.meter.rate();
        let caps = self.pending_caps.take().map(|c| self.with_rate(&c));
        let held = std::mem::take(&mut self.held);
        Timed::Push(
            caps,
            held.into_iter().map(|b| self.with_duration(b)).collect(),
        )
    }

    /// The stream ended: the held frames (if any) go out, EOS comes next.
    pub fn end(&mut self) -> Timed {
        let timed = self.decide();
        if matches!(&timed, Timed::Push(_, held) if !held.is_empty()) {
            self.eos_after_held = true;
        }
        timed
    }

    /// Whether EOS is due now, after the held frames went out.
    pub fn take_eos(&mut self) -> bool {
        std::mem::take(&mut self.eos_after_held)
    }

    /// A frame kept back behind the held ones, with its caps.
    pub fn take_next(&mut self) -> Option<(Option<gst::Caps>, gst::Buffer)> {
        let buffer = self.next.take()?;
        let caps = self.next_caps.take().map(|c| self.with_rate(&c));
        Some((caps, self.with_duration(buffer)))
    }

    fn with_duration(&self, mut buffer: gst::Buffer) -> gst::Buffer {
        if let Some(duration) = self.rate.and_then(frame_duration) {
            buffer.make_mut().set_duration(duration);
        }
        buffer
    }
}
