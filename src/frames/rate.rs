// SPDX-License-Identifier: MPL-2.0
//! The frame rate `netgearsrc` announces: the `framerate` property's three meanings, and
//! the rate measured from arrival times, snapped to what the sender runs at.
//!
//! NetGear frames carry no timing. By default (`-1/1`) the rate is variable (caps 0/1);
//! when downstream refuses a variable rate (`avimux`) the source measures one as with
//! `framerate=0/1`: it holds the first frames until it has measured their rate, then
//! announces it in the caps and gives every buffer that duration. Recorders need the rate
//! in the first caps: a later change is refused.
//!
//! The measurement skips the first frame (its wait includes the connection) and fits the
//! longest steady run of arrivals, so a late start and the burst that catches up after it
//! do not skew it. It ends after `MEASURE_FRAMES` frames when the rate is clear, or once it
//! can tell a rate from its 1000/1001 twin (30/1 from 30000/1001), at the latest after
//! `MEASURE_FRAMES_MAX` frames or `MEASURE_WINDOW`.

use gst::prelude::MulDiv;
use gst::ClockTime;
use std::time::Duration;

/// Frames measured before a clear rate is announced.
pub const MEASURE_FRAMES: usize = 10;
/// The most frames measured (a rate with a 1000/1001 twin needs more to be told apart).
pub const MEASURE_FRAMES_MAX: usize = 91;
/// The longest the first frames are held while measuring.
pub const MEASURE_WINDOW: Duration = Duration::from_millis(3100);
/// How close a measured rate must be to a common one to be snapped to it.
const SNAP_TOLERANCE: f64 = 0.04;
/// Two candidate rates closer than this (relative) are twins: 30/1 and 30000/1001.
const TWIN_DISTANCE: f64 = 0.005;
/// An interval within this factor of the median one belongs to a steady run: a burst
/// catching up after a stall, or the stall, does not.
const STEADY_FACTOR: f64 = 2.0;
/// How many standard errors a fit must lie from the midpoint of twins to pick one.
const CONFIDENCE: f64 = 2.5;
/// The fewest frames that tell twins apart (a second at 30 fps): fewer fit too loosely.
const TWIN_FRAMES: usize = 31;

/// What the `framerate` property asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateMode {
    /// 0/1: measure from arrival times.
    Measure,
    /// A negative rate: variable, announced as 0/1, buffers without duration; measured
    /// when downstream refuses a variable rate.
    Auto,
    /// A positive rate, used as it is.
    Fixed(gst::Fraction),
}

impl RateMode {
    pub fn from_property(rate: gst::Fraction) -> RateMode {
        match rate.numer() {
            0 => RateMode::Measure,
            n if n < 0 => RateMode::Auto,
            _ => RateMode::Fixed(rate),
        }
    }
}

/// Common camera and video rates a measured rate snaps to, with the NTSC ones.
const COMMON_RATES: &[(i32, i32)] = &[
    (5, 1),
    (10, 1),
    (12, 1),
    (15, 1),
    (20, 1),
    (24000, 1001),
    (24, 1),
    (25, 1),
    (30000, 1001),
    (30, 1),
    (48, 1),
    (50, 1),
    (60000, 1001),
    (60, 1),
    (90, 1),
    (100, 1),
    (120, 1),
    (144, 1),
    (240, 1),
];

fn fps_of(n: i32, d: i32) -> f64 {
    f64::from(n) / f64::from(d)
}

/// The common rates nearest to `fps`, nearest first, with their relative distance.
fn nearest_common(fps: f64) -> Vec<(i32, i32, f64)> {
    let mut rates: Vec<(i32, i32, f64)> = COMMON_RATES
        .iter()
        .map(|&(n, d)| (n, d, (fps_of(n, d) - fps).abs() / fps))
        .collect();
    rates.sort_by(|a, b| a.2.total_cmp(&b.2));
    rates
}

/// A plausible fraction for a measured rate: the nearest common rate within 4 %, else the
/// nearest whole rate (at least 1/1), else a thousandth-precise fraction below 1 fps.
pub fn snap(fps: f64) -> Option<gst::Fraction> {
    if !fps.is_finite() || fps <= 0.0 {
        return None;
    }
    if let Some(&(n, d, _)) = nearest_common(fps)
        .first()
        .filter(|r| r.2 <= SNAP_TOLERANCE)
    {
        return Some(gst::Fraction::new(n, d));
    }
    if fps >= 1.0 {
        return Some(gst::Fraction::new(fps.round().min(1000.0) as i32, 1));
    }
    let thousandths = (fps * 1000.0).round().max(1.0) as i32;
    Some(gst::Fraction::new(thousandths, 1000).reduced())
}

/// The nearest common rate's 1000/1001 twin, when the nearest is within the tolerance.
fn twins(fps: f64) -> Option<((i32, i32), (i32, i32))> {
    let near = nearest_common(fps);
    let (first, second) = (near.first()?, near.get(1)?);
    let (a, b) = (fps_of(first.0, first.1), fps_of(second.0, second.1));
    let twins = first.2 <= SNAP_TOLERANCE && (a - b).abs() / a <= TWIN_DISTANCE;
    twins.then_some(((first.0, first.1), (second.0, second.1)))
}

/// Whether a measurement of `fps` ± `stderr` fps from `frames` frames is clear: its
/// nearest common rate has no twin, or enough frames put it far enough from the midpoint
/// between them.
fn is_clear(fps: f64, stderr: f64, frames: usize) -> bool {
    let Some((a, b)) = twins(fps) else {
        return true;
    };
    if frames < TWIN_FRAMES {
        return false;
    }
    let mid = (fps_of(a.0, a.1) + fps_of(b.0, b.1)) / 2.0;
    (fps - mid).abs() > CONFIDENCE * stderr
}

/// The rate a fit shows: snapped; between twins the whole rate (30/1) unless the fit is
/// clearly nearer the other (30000/1001) and no farther below it than the twins are apart,
/// so neither jitter nor a sender a little slow makes a 30 fps sender 29.97.
fn snap_fit(fit: Fit, frames: usize) -> Option<gst::Fraction> {
    let Some((a, b)) = twins(fit.fps) else {
        return snap(fit.fps);
    };
    let (whole, other) = if a.1 == 1 { (a, b) } else { (b, a) };
    let (w, o) = (fps_of(whole.0, whole.1), fps_of(other.0, other.1));
    let nearer_other = (fit.fps - o).abs() < (fit.fps - w).abs();
    let within = (fit.fps - o).abs() <= (w - o).abs();
    let pick = match nearer_other && within && is_clear(fit.fps, fit.stderr, frames) {
        true => other,
        false => whole,
    };
    Some(gst::Fraction::new(pick.0, pick.1))
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

/// A line fitted to a steady run of arrivals: frames per second and its standard error.
#[derive(Debug, Clone, Copy)]
struct Fit {
    fps: f64,
    stderr: f64,
}

/// The line under a steady run of arrivals, as clock-skew estimation fits it: a frame
/// arrives at its send time plus a delay that is never negative (a sleep that overshoots,
/// a busy receiver), so the lower edge of the points is steadier than their middle. The
/// fitted line is the lower convex hull's edge over the middle frame number. Its error is
/// how far the two halves of the run disagree, and at least a quarter of a least-squares
/// fit's (which the lower edge betters by about that much on such delays).
fn fit(run: &[ClockTime]) -> Option<Fit> {
    let n = run.len();
    if n < 2 {
        return None;
    }
    let t0 = run[0].nseconds();
    let points: Vec<(f64, f64)> = run
        .iter()
        .enumerate()
        .map(|(i, t)| (i as f64, t.nseconds().saturating_sub(t0) as f64))
        .collect();
    let slope = hull_slope(&points)?;
    let ls = least_squares_error(&points);
    let halves = match n >= 8 {
        true => hull_slope(&points[..n / 2 + 1])
            .zip(hull_slope(&points[n / 2..]))
            .map_or(ls, |(a, b)| (a - b).abs() / 2.0),
        false => ls,
    };
    let fps = 1e9 / slope;
    Some(Fit {
        fps,
        stderr: fps * halves.max(ls / 4.0) / slope,
    })
}

/// The slope (ns per frame) of the lower convex hull's edge over the middle of `points`.
fn hull_slope(points: &[(f64, f64)]) -> Option<f64> {
    let hull = lower_hull(points);
    let mid = (points.first()?.0 + points.last()?.0) / 2.0;
    let edge = hull.windows(2).find(|e| e[0].0 <= mid && mid <= e[1].0)?;
    let slope = (edge[1].1 - edge[0].1) / (edge[1].0 - edge[0].0);
    (slope > 0.0).then_some(slope)
}

/// The standard error of a least-squares slope through `points` (ns per frame); with two
/// or three points, what a millisecond of jitter would make it.
fn least_squares_error(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let xm = points.iter().map(|p| p.0).sum::<f64>() / n;
    let ym = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - xm).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - xm) * (p.1 - ym)).sum();
    let slope = sxy / sxx;
    let residuals: f64 = points
        .iter()
        .map(|p| (p.1 - ym - slope * (p.0 - xm)).powi(2))
        .sum();
    let sigma = match points.len() {
        ..=3 => 1e6,
        k => (residuals / (k - 2) as f64).sqrt(),
    };
    sigma / sxx.sqrt()
}

/// The lower convex hull of points sorted by x (Andrew's monotone chain).
fn lower_hull(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut hull: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for &p in points {
        while hull.len() >= 2 {
            let (a, b) = (hull[hull.len() - 2], hull[hull.len() - 1]);
            let cross = (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0);
            if cross > 0.0 {
                break;
            }
            hull.pop();
        }
        hull.push(p);
    }
    hull
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

    /// Whether the measurement is over at `now`: the rate is clear after enough frames, or
    /// the most frames arrived, or the window is over.
    pub fn is_done(&self, now: ClockTime) -> bool {
        let Some(first) = self.arrivals.first() else {
            return false;
        };
        let window = ClockTime::from_nseconds(MEASURE_WINDOW.as_nanos() as u64);
        if self.arrivals.len() >= MEASURE_FRAMES_MAX || now.saturating_sub(*first) >= window {
            return true;
        }
        self.arrivals.len() >= MEASURE_FRAMES
            && self
                .fit()
                .is_some_and(|f| is_clear(f.fps, f.stderr, self.arrivals.len()))
    }

    /// The measured rate, snapped. `None` with fewer than two frames or no time between.
    pub fn rate(&self) -> Option<gst::Fraction> {
        snap_fit(self.fit()?, self.arrivals.len())
    }

    fn fit(&self) -> Option<Fit> {
        fit(self.steady_run())
    }

    /// What was measured, for the log: frames, frames in the steady run, fps ± error.
    pub fn describe(&self) -> String {
        let run = self.steady_run().len();
        match self.fit() {
            Some(f) => format!(
                "{} frames, steady run {run}: {:.4} ± {:.4} fps",
                self.arrivals.len(),
                f.fps,
                f.stderr
            ),
            None => format!("{} frames: no rate", self.arrivals.len()),
        }
    }

    /// The longest run of arrivals whose intervals are near the median one, the first
    /// arrival left out when there are enough others.
    fn steady_run(&self) -> &[ClockTime] {
        let all = &self.arrivals[..];
        let arrivals = if all.len() > 2 { &all[1..] } else { all };
        let intervals: Vec<u64> = arrivals
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]).nseconds())
            .collect();
        let mut sorted = intervals.clone();
        sorted.sort_unstable();
        let Some(&median) = sorted.get(sorted.len() / 2) else {
            return arrivals;
        };
        let steady = |i: u64| {
            let (i, m) = (i as f64, median as f64);
            i * STEADY_FACTOR >= m && i <= m * STEADY_FACTOR
        };
        // (start, length) of the longest run of steady intervals.
        let (mut best, mut run_start, mut run_len) = ((0, 0), 0, 0);
        for (k, interval) in intervals.iter().enumerate() {
            match steady(*interval) {
                true => {
                    if run_len == 0 {
                        run_start = k;
                    }
                    run_len += 1;
                    if run_len > best.1 {
                        best = (run_start, run_len);
                    }
                }
                false => run_len = 0,
            }
        }
        match best.1 {
            0 => arrivals,
            len => &arrivals[best.0..=best.0 + len],
        }
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
            RateMode::Auto
        );
        assert_eq!(
            RateMode::from_property(gst::Fraction::new(25, 1)),
            RateMode::Fixed(gst::Fraction::new(25, 1))
        );
    }

    #[test]
    fn measured_rates_snap_to_common_ones() {
        assert_eq!(snap(30.0), f(30, 1));
        assert_eq!(snap(29.97), f(30000, 1001));
        assert_eq!(snap(23.98), f(24000, 1001));
        assert_eq!(snap(24.9), f(25, 1));
        assert_eq!(snap(59.5), f(60000, 1001));
        assert_eq!(snap(61.0), f(60, 1));
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

    /// A meter fed `n` frames at `fps` from 1 s on, each late by a jitter in 0..`jitter_us`
    /// µs (a fixed pseudo-random sequence), the first one `first_late_ms` later still.
    fn paced(fps: f64, n: usize, jitter_us: u64, first_late_ms: u64) -> RateMeter {
        let mut meter = RateMeter::default();
        let mut x: u64 = 12345;
        for i in 0..n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let jitter = if jitter_us == 0 {
                0
            } else {
                (x >> 33) % jitter_us
            };
            let late = if i == 0 { first_late_ms * 1_000_000 } else { 0 };
            let t = 1e9 + i as f64 * 1e9 / fps;
            meter.observe(ClockTime::from_nseconds(t as u64 + jitter * 1000 + late));
        }
        meter
    }

    #[test]
    fn the_meter_snaps_to_what_the_sender_runs_at() {
        for (fps, rate) in [
            (30.0, f(30, 1)),
            (30000.0 / 1001.0, f(30000, 1001)),
            (25.0, f(25, 1)),
            (24.0, f(24, 1)),
            (24000.0 / 1001.0, f(24000, 1001)),
            (15.0, f(15, 1)),
            (60.0, f(60, 1)),
            (60000.0 / 1001.0, f(60000, 1001)),
        ] {
            // 0.5 ms of jitter, over the most frames the meter takes.
            let meter = paced(fps, MEASURE_FRAMES_MAX, 500, 0);
            assert_eq!(meter.rate(), rate, "{fps} fps");
        }
    }

    /// The frame count at which the measurement ends, and the rate it says then.
    fn decided(fps: f64, jitter_us: u64) -> (usize, Option<gst::Fraction>) {
        (2..=MEASURE_FRAMES_MAX)
            .map(|n| (n, paced(fps, n, jitter_us, 0)))
            .find(|(_, meter)| meter.is_done(*meter.arrivals.last().unwrap()))
            .map(|(n, meter)| (n, meter.rate()))
            .unwrap()
    }

    #[test]
    fn a_clear_rate_is_decided_early_and_twins_take_longer() {
        assert_eq!(decided(25.0, 1000), (MEASURE_FRAMES, f(25, 1)));
        assert_eq!(decided(15.0, 1000), (MEASURE_FRAMES, f(15, 1)));
        for jitter in [300, 1000, 2000] {
            let (n, rate) = decided(30.0, jitter);
            assert_eq!(rate, f(30, 1), "30 fps, {jitter} µs: {n} frames");
            let (n, rate) = decided(30000.0 / 1001.0, jitter);
            assert_eq!(rate, f(30000, 1001), "29.97 fps, {jitter} µs: {n} frames");
        }
        let (n, _) = decided(30.0, 2000);
        assert!(n > MEASURE_FRAMES, "{n}");
    }

    #[test]
    fn jitter_never_makes_a_whole_rate_its_twin() {
        // 3 ms of jitter over few frames: too unsure to call it 29.97.
        for n in [5, 10, 15, 30] {
            assert_eq!(paced(30.0, n, 3000, 0).rate(), f(30, 1), "{n} frames");
        }
        // A sender that cannot quite keep up is still a 30 fps one.
        assert_eq!(paced(29.5, 30, 300, 0).rate(), f(30, 1));
        assert_eq!(paced(59.0, 30, 300, 0).rate(), f(60, 1));
    }

    #[test]
    fn a_late_first_frame_and_its_catch_up_burst_do_not_skew_it() {
        // The first frame waited for the connection: 400 ms late.
        assert_eq!(paced(30.0, 20, 500, 400).rate(), f(30, 1));
        // Frames held up, then a burst catching up, then a steady 25 fps.
        let mut late = RateMeter::default();
        for ms in [0, 200, 201, 202, 203, 240, 280, 320, 360, 400, 440, 480] {
            late.observe(ClockTime::from_mseconds(ms));
        }
        assert_eq!(late.rate(), f(25, 1));
        // A steady run broken by a stall: the longer run counts.
        let mut stalled = RateMeter::default();
        for ms in [0, 33, 67, 100, 500, 540, 580, 620, 660, 700, 740, 780] {
            stalled.observe(ClockTime::from_mseconds(ms));
        }
        assert_eq!(stalled.rate(), f(25, 1));
    }

    #[test]
    fn few_frames_and_the_window() {
        let mut slow = RateMeter::default();
        assert!(!slow.is_done(ClockTime::ZERO));
        slow.observe(ClockTime::from_seconds(1));
        assert_eq!(slow.rate(), None);
        let window = MEASURE_WINDOW.as_millis() as u64;
        assert!(!slow.is_done(ClockTime::from_mseconds(1000 + window - 1)));
        assert!(slow.is_done(ClockTime::from_mseconds(1000 + window)));
        slow.observe(ClockTime::from_mseconds(1100));
        assert_eq!(slow.rate(), f(10, 1));
    }
}
