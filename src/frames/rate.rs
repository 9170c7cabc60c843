// SPDX-License-Identifier: MPL-2.0
//! The frame rate `netgearsrc` announces: the `framerate` property's three meanings, and
//! the rate measured from arrival times, snapped to a plausible fraction.
//!
//! NetGear frames carry no timing. By default (`-1/1`) the rate is variable; with
//! `framerate=0/1` the source holds the first frames until it has measured their rate (at
//! most `MEASURE_FRAMES` frames or `MEASURE_WINDOW`), then announces it in the caps and
//! gives every buffer that duration. Recorders (`mp4mux`, …) need the rate in the first
//! caps: a later change is refused.

use gst::prelude::MulDiv;
use gst::ClockTime;
use std::time::Duration;

/// Frames measured before the rate is announced.
pub const MEASURE_FRAMES: usize = 10;
/// The longest the first frames are held while measuring.
pub const MEASURE_WINDOW: Duration = Duration::from_millis(500);
/// How close a measured rate must be to a common one to be snapped to it.
const SNAP_TOLERANCE: f64 = 0.04;

/// What the `framerate` property asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateMode {
    /// 0/1: measure from arrival times.
    Measure,
    /// A negative rate: variable, announced as 0/1, buffers without duration.
    Variable,
    /// A positive rate, used as it is.
    Fixed(gst::Fraction),
}

impl RateMode {
    pub fn from_property(rate: gst::Fraction) -> RateMode {
        match rate.numer() {
            0 => RateMode::Measure,
            n if n < 0 => RateMode::Variable,
            _ => RateMode::Fixed(rate),
        }
    }
}

/// Common camera and video rates a measured rate snaps to. Arrival times cannot tell
/// 30000/1001 from 30/1 (0.1 % apart); those rates are for the `framerate` property.
const COMMON_RATES: &[(i32, i32)] = &[
    (5, 1),
    (10, 1),
    (12, 1),
    (15, 1),
    (20, 1),
    (24, 1),
    (25, 1),
    (30, 1),
    (48, 1),
    (50, 1),
    (60, 1),
    (90, 1),
    (100, 1),
    (120, 1),
    (144, 1),
    (240, 1),
];

/// A plausible fraction for a measured rate: the nearest common rate within 4 %, else the
/// nearest whole rate (at least 1/1), else a thousandth-precise fraction below 1 fps.
pub fn snap(fps: f64) -> Option<gst::Fraction> {
    if !fps.is_finite() || fps <= 0.0 {
        return None;
    }
    let nearest = COMMON_RATES
        .iter()
        .map(|&(n, d)| (n, d, (f64::from(n) / f64::from(d) - fps).abs() / fps))
        .min_by(|a, b| a.2.total_cmp(&b.2));
    if let Some((n, d, _)) = nearest.filter(|r| r.2 <= SNAP_TOLERANCE) {
        return Some(gst::Fraction::new(n, d));
    }
    if fps >= 1.0 {
        return Some(gst::Fraction::new(fps.round().min(1000.0) as i32, 1));
    }
    let thousandths = (fps * 1000.0).round().max(1.0) as i32;
    Some(gst::Fraction::new(thousandths, 1000).reduced())
}

trait Reduced {
    fn reduced(self) -> Self;
}

impl Reduced for gst::Fraction {
    fn reduced(self) -> Self {
        let (mut a, mut b) = (self.numer().abs(), self.denom().abs());
        while b != 0 {
            (a, b) = (b, a % b);
        }
        let g = a.max(1);
        gst::Fraction::new(self.numer() / g, self.denom() / g)
    }
}

/// The duration of one frame at `rate` (none for 0/1 or an absurd rate).
pub fn frame_duration(rate: gst::Fraction) -> Option<ClockTime> {
    let (n, d) = (
        u64::try_from(rate.numer()).ok()?,
        u64::try_from(rate.denom()).ok()?,
    );
    if n == 0 {
        return None;
    }
    ClockTime::SECOND.mul_div_round(d, n)
}

/// Arrival times of the first frames, and the rate they show once there are enough.
#[derive(Debug, Default)]
pub struct RateMeter {
    arrivals: Vec<ClockTime>,
}

impl RateMeter {
    pub fn observe(&mut self, arrival: ClockTime) {
        self.arrivals.push(arrival);
    }

    /// Whether enough frames arrived, or the window is over, at `now`.
    pub fn is_done(&self, now: ClockTime) -> bool {
        let Some(first) = self.arrivals.first() else {
            return false;
        };
        let window = ClockTime::from_nseconds(MEASURE_WINDOW.as_nanos() as u64);
        self.arrivals.len() >= MEASURE_FRAMES || now.saturating_sub(*first) >= window
    }

    /// The measured rate, snapped: the mean of the intervals near the median one, so a
    /// late first frame and the burst that catches up after it do not skew it. `None`
    /// with fewer than two frames or no time between them.
    pub fn rate(&self) -> Option<gst::Fraction> {
        let mut intervals: Vec<u64> = self
            .arrivals
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]).nseconds())
            .collect();
        intervals.sort_unstable();
        let median = *intervals.get(intervals.len() / 2)?;
        let typical: Vec<u64> = intervals
            .into_iter()
            .filter(|i| *i >= median / 2 && *i <= median.saturating_mul(2))
            .collect();
        let mean = typical.iter().sum::<u64>() as f64 / typical.len().max(1) as f64;
        if mean <= 0.0 {
            return None;
        }
        snap(1e9 / mean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(n: i32, d: i32) -> Option<gst::Fraction> {
        Some(gst::Fraction::new(n, d))
    }

    #[test]
    fn modes_from_the_property() {
        assert_eq!(
            RateMode::from_property(gst::Fraction::new(0, 1)),
            RateMode::Measure
        );
        assert_eq!(
            RateMode::from_property(gst::Fraction::new(-1, 1)),
            RateMode::Variable
        );
        assert_eq!(
            RateMode::from_property(gst::Fraction::new(25, 1)),
            RateMode::Fixed(gst::Fraction::new(25, 1))
        );
    }

    #[test]
    fn measured_rates_snap_to_common_ones() {
        assert_eq!(snap(30.0), f(30, 1));
        assert_eq!(snap(29.2), f(30, 1));
        assert_eq!(snap(29.97), f(30, 1));
        assert_eq!(snap(24.9), f(25, 1));
        assert_eq!(snap(59.5), f(60, 1));
        assert_eq!(snap(37.3), f(37, 1));
        assert_eq!(snap(0.5), f(1, 2));
        assert_eq!(snap(0.0), None);
        assert_eq!(snap(f64::NAN), None);
    }

    #[test]
    fn durations_of_rates() {
        assert_eq!(
            frame_duration(gst::Fraction::new(30, 1)),
            Some(ClockTime::from_nseconds(33_333_333))
        );
        assert_eq!(
            frame_duration(gst::Fraction::new(30000, 1001)),
            Some(ClockTime::from_nseconds(33_366_667))
        );
        assert_eq!(frame_duration(gst::Fraction::new(0, 1)), None);
    }

    #[test]
    fn the_meter_measures_arrivals() {
        let mut meter = RateMeter::default();
        assert!(!meter.is_done(ClockTime::ZERO));
        for i in 0..MEASURE_FRAMES as u64 {
            // 30 fps with a few ms of jitter.
            let jitter = [0, 3, 1, 4, 0, 2, 5, 1, 0, 3][i as usize % 10];
            meter.observe(ClockTime::from_mseconds(1000 + i * 100 / 3 + jitter));
        }
        assert!(meter.is_done(ClockTime::from_mseconds(1300)));
        assert_eq!(meter.rate(), f(30, 1));
        // A late first frame, then a burst catching up, then 25 fps.
        let mut late = RateMeter::default();
        for ms in [0, 200, 201, 202, 203, 240, 280, 320, 360, 400] {
            late.observe(ClockTime::from_mseconds(ms));
        }
        assert_eq!(late.rate(), f(25, 1));
        let mut slow = RateMeter::default();
        slow.observe(ClockTime::from_seconds(1));
        assert_eq!(slow.rate(), None);
        assert!(!slow.is_done(ClockTime::from_mseconds(1400)));
        assert!(slow.is_done(ClockTime::from_mseconds(1500)));
    }
}
