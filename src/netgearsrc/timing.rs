// SPDX-License-Identifier: MPL-2.0
//! `netgearsrc`'s timing state: the `framerate` mode, the frames held while their rate is
//! measured, the caps they wait for, the rate announced (see `frames::rate`), and the
//! trial of the first pushes after caps with a rate: downstream may refuse them only when
//! the buffers flow (`avimux` refuses a variable rate in its caps handler, a parser's peer
//! refuses at the parser's push), so the source looks at the flow of those pushes.

use crate::frames::rate::{frame_duration, RateMeter, RateMode, MEASURE_WINDOW};
use std::time::Instant;

/// Pushes after new caps whose flow result is looked at.
const TRIAL_PUSHES: u32 = 3;
/// The most bytes of frames held while measuring (ten 1080p BGR frames): large raw frames
/// end the measurement sooner.
const MAX_HELD_BYTES: usize = 64 << 20;

/// The pushes under trial: how many are left, and the buffers of the last one, whose flow
/// result is not known yet.
#[derive(Debug)]
struct Trial {
    left: u32,
    pending: Option<Vec<gst::Buffer>>,
}

impl Trial {
    fn new() -> Trial {
        Trial {
            left: TRIAL_PUSHES,
            pending: None,
        }
    }
}

/// What the flow of a push under trial says.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// No push under trial: a reconfigure from downstream.
    NoTrial,
    /// The push went through.
    Passed,
    /// Downstream refused a variable rate: the refused frames are held, a rate is measured.
    Measuring,
    /// Downstream refused the caps with this rate (`None`: variable) for good.
    Refused(Option<gst::Fraction>),
}

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
    mode: RateMode,
    /// Downstream refused the variable rate (`RateMode::Auto`): measured since.
    fell_back: bool,
    trial: Option<Trial>,
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
            RateMode::Auto => (None, true),
            RateMode::Measure => (None, false),
        };
        Timing {
            mode,
            fell_back: false,
            trial: decided.then(Trial::new),
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
            // DTS too: the base class would stamp a held frame's DTS when it is pushed.
            let b = buffer.make_mut();
            b.set_pts(pts);
            b.set_dts(pts);
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
        let held_bytes: usize = self.held.iter().map(|b| b.size()).sum();
        match held_bytes >= MAX_HELD_BYTES || arrival.is_none_or(|t| self.meter.is_done(t)) {
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
        self.trial = Some(Trial::new());
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

    /// Buffers about to be pushed: `true` if their push is under trial (the caller marks
    /// the pad for reconfigure, so the base class asks `verdict` before the next frame).
    pub fn pushing(&mut self, buffers: &[gst::Buffer]) -> bool {
        let Some(trial) = self.trial.as_mut().filter(|_| !buffers.is_empty()) else {
            return false;
        };
        trial.pending = Some(buffers.to_vec());
        true
    }

    /// The flow result of the last push under trial; `caps` are the caps it was pushed with.
    pub fn verdict(
        &mut self,
        flow: Result<gst::FlowSuccess, gst::FlowError>,
        caps: Option<gst::Caps>,
    ) -> Verdict {
        let Some(trial) = self.trial.as_mut() else {
            return Verdict::NoTrial;
        };
        let Some(pushed) = trial.pending.take() else {
            return Verdict::NoTrial;
        };
        if flow != Err(gst::FlowError::NotNegotiated) {
            trial.left = trial.left.saturating_sub(1);
            if trial.left == 0 {
                self.trial = None;
            }
            return Verdict::Passed;
        }
        self.trial = None;
        if self.mode != RateMode::Auto || self.fell_back || self.rate.is_some() {
            return Verdict::Refused(self.rate);
        }
        self.measure_refused(pushed, caps);
        Verdict::Measuring
    }

    /// Downstream refused a variable rate: measure one, the refused frames first.
    fn measure_refused(&mut self, pushed: Vec<gst::Buffer>, caps: Option<gst::Caps>) {
        self.fell_back = true;
        self.decided = false;
        for arrival in pushed.iter().filter_map(|b| b.pts()) {
            self.meter.observe(arrival);
        }
        self.held = pushed;
        self.held_since = Some(Instant::now());
        self.pending_caps = caps;
    }

    /// What the rate was measured from, for the log.
    pub fn measurement(&self) -> String {
        self.meter.describe()
    }

    /// Whether downstream refused a variable rate and the rate is measured since.
    pub fn fell_back(&self) -> bool {
        self.fell_back
    }

    fn with_duration(&self, mut buffer: gst::Buffer) -> gst::Buffer {
        if let Some(duration) = self.rate.and_then(frame_duration) {
            buffer.make_mut().set_duration(duration);
        }
        buffer
    }
}
