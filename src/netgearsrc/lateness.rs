// SPDX-License-Identifier: MPL-2.0
//! How late stamped frames arrive at `netgearsrc`. A frame's delay is its arrival in UNIX
//! time minus the capture time its sender put in the header; `stats` reports the p50 and
//! p99 of the last [`WINDOW`] delays, and `max-lateness` drops a frame whose delay is more
//! than that above the lowest delay seen from its sender. Judged against that lowest
//! delay, lateness needs no synchronised clocks: the offset between the sender's clock and
//! ours is in every delay of that sender and cancels out. Frames without a capture time
//! (from vidgear) are not judged.

use crate::sync;
use gst::glib;
use gst::prelude::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

/// 0: no frame is dropped for being late.
const DEFAULT_MAX_LATENESS_MS: u32 = 0;
/// The delays the percentiles in `stats` are taken over: the last this many stamped frames.
pub const WINDOW: usize = 1024;

/// `max-lateness`.
pub fn property() -> glib::ParamSpec {
    glib::ParamSpecUInt::builder("max-lateness")
        .nick("Maximum lateness")
        .blurb("Drop frames whose delay (arrival minus the capture time netgearsink sent) is more than this many milliseconds above the lowest delay seen from their sender, counted as 'late' in stats; needs no synchronised clocks. 0 = off. Frames without a capture time (from vidgear) are never dropped")
        .default_value(DEFAULT_MAX_LATENESS_MS)
        .mutable_playing()
        .build()
}

/// The delays of the last `WINDOW` stamped frames, in a ring allocated once.
struct DelayWindow {
    delays_ns: Box<[i64; WINDOW]>,
    next: usize,
    len: usize,
}

impl Default for DelayWindow {
    fn default() -> Self {
        DelayWindow {
            delays_ns: Box::new([0; WINDOW]),
            next: 0,
            len: 0,
        }
    }
}

impl DelayWindow {
    fn push(&mut self, delay_ns: i64) {
        self.delays_ns[self.next] = delay_ns;
        self.next = (self.next + 1) % WINDOW;
        self.len = (self.len + 1).min(WINDOW);
    }

    /// A copy of the delays in the window (only while `stats` is read, never per frame).
    fn to_vec(&self) -> Vec<i64> {
        self.delays_ns[..self.len].to_vec()
    }
}

/// The nearest-rank percentiles `ps` (in %) of `delays`, which it sorts.
fn percentiles<const N: usize>(delays: &mut [i64], ps: [u32; N]) -> Option<[i64; N]> {
    let len = delays.len();
    if len == 0 {
        return None;
    }
    delays.sort_unstable();
    let rank = |p: u32| (len * p as usize).div_ceil(100).clamp(1, len) - 1;
    Some(ps.map(|p| delays[rank(p)]))
}

/// What the streaming thread records, and `stats` reads.
#[derive(Default)]
struct Delays {
    window: DelayWindow,
    /// The lowest delay from each sender: its multi-server port, `None` for the one sender.
    lowest_ns: BTreeMap<Option<u16>, i64>,
    late: u64,
}

impl Delays {
    /// Records a delay; its lateness above the sender's lowest if that is over `max_ns`.
    fn judge(&mut self, sender: Option<u16>, delay_ns: i64, max_ns: Option<i64>) -> Option<i64> {
        self.window.push(delay_ns);
        let lowest = self.lowest_ns.entry(sender).or_insert(delay_ns);
        *lowest = (*lowest).min(delay_ns);
        let lateness = delay_ns.saturating_sub(*lowest);
        let late = max_ns.is_some_and(|max| lateness > max);
        if late {
            self.late += 1;
        }
        late.then_some(lateness)
    }
}

/// `max-lateness` and what it judged; shared by the streaming thread and `stats`.
#[derive(Default)]
pub struct Lateness {
    max_lateness_ms: AtomicU32,
    delays: Mutex<Delays>,
}

impl Lateness {
    fn delays(&self) -> MutexGuard<'_, Delays> {
        sync::lock(&self.delays)
    }

    /// Applies `max-lateness`; `false` for any other property.
    pub fn set_property(&self, value: &glib::Value, pspec: &glib::ParamSpec) -> bool {
        if pspec.name() != "max-lateness" {
            return false;
        }
        let ms = value.get().unwrap_or(DEFAULT_MAX_LATENESS_MS);
        self.max_lateness_ms.store(ms, Ordering::Relaxed);
        true
    }

    pub fn property(&self, pspec: &glib::ParamSpec) -> Option<glib::Value> {
        (pspec.name() == "max-lateness")
            .then(|| self.max_lateness_ms.load(Ordering::Relaxed).to_value())
    }

    /// A new stream: no delays seen yet.
    pub fn reset(&self) {
        *self.delays() = Delays::default();
    }

    /// Records the delay of a frame from `sender` captured at `capture_ns` that arrived
    /// at `arrival_ns` (both UNIX time); its lateness if it is to be dropped.
    pub fn judge(
        &self,
        sender: Option<u16>,
        capture_ns: u64,
        arrival_ns: u64,
    ) -> Option<std::time::Duration> {
        let delay = i128::from(arrival_ns) - i128::from(capture_ns);
        let delay_ns = delay.clamp(i64::MIN.into(), i64::MAX.into()) as i64;
        let max_ms = self.max_lateness_ms.load(Ordering::Relaxed);
        let max_ns = (max_ms > 0).then(|| i64::from(max_ms) * 1_000_000);
        let lateness = self.delays().judge(sender, delay_ns, max_ns)?;
        Some(std::time::Duration::from_nanos(lateness.max(0) as u64))
    }

    /// Adds `late` and, once a stamped frame arrived, `delay-p50-ms` and `delay-p99-ms`
    /// (over the last `WINDOW` stamped frames, every sender together) to `stats`.
    pub fn add_to_stats(&self, stats: &mut gst::StructureRef) {
        // Copied, so the streaming thread does not wait for the sort.
        let (late, mut window) = {
            let delays = self.delays();
            (delays.late, delays.window.to_vec())
        };
        stats.set("late", late);
        if let Some([p50, p99]) = percentiles(&mut window, [50, 99]) {
            stats.set("delay-p50-ms", p50 as f64 / 1e6);
            stats.set("delay-p99-ms", p99 as f64 / 1e6);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn percentiles_are_over_the_last_window_of_delays() {
        let mut window = DelayWindow::default();
        assert_eq!(percentiles(&mut window.to_vec(), [50, 99]), None);
        window.push(7);
        assert_eq!(percentiles(&mut window.to_vec(), [50, 99]), Some([7, 7]));
        // 1..=100: the nearest rank of p50 is the 50th, of p99 the 99th.
        let mut window = DelayWindow::default();
        for d in (1..=100).rev() {
            window.push(d);
        }
        let ranks = [50, 99, 100];
        assert_eq!(
            percentiles(&mut window.to_vec(), ranks),
            Some([50, 99, 100])
        );
        // After WINDOW more, the first ones are gone.
        for _ in 0..WINDOW {
            window.push(-3);
        }
        assert_eq!(window.len, WINDOW);
        assert_eq!(percentiles(&mut window.to_vec(), ranks), Some([-3, -3, -3]));
        window.push(5 * MS);
        assert_eq!(
            percentiles(&mut window.to_vec(), [99, 100]),
            Some([-3, 5 * MS])
        );
    }

    #[test]
    fn lateness_is_judged_against_each_senders_lowest_delay() {
        let mut delays = Delays::default();
        let max = Some(100 * MS);
        // The first frame sets the lowest delay; a sender whose clock is 5 s behind ours
        // has its own.
        assert_eq!(delays.judge(None, 40 * MS, max), None);
        assert_eq!(delays.judge(Some(5566), 5_000 * MS, max), None);
        assert_eq!(delays.judge(None, 140 * MS, max), None);
        assert_eq!(delays.judge(None, 141 * MS, max), Some(101 * MS));
        assert_eq!(delays.judge(Some(5566), 5_101 * MS, max), Some(101 * MS));
        // A lower delay lowers the bar; it is never late itself.
        assert_eq!(delays.judge(None, 10 * MS, max), None);
        assert_eq!(delays.judge(None, 111 * MS, max), Some(101 * MS));
        assert_eq!(delays.late, 3);
        // Off: nothing is late, however far.
        assert_eq!(delays.judge(None, 10_000 * MS, None), None);
        assert_eq!(delays.late, 3);
        assert_eq!(delays.window.len, 8);
    }

    #[test]
    fn hostile_capture_times_saturate() {
        gst::init().unwrap();
        let lateness = Lateness::default();
        lateness.max_lateness_ms.store(1, Ordering::Relaxed);
        // Captured "now" by a clock far behind, then far ahead: no overflow, and the
        // second is not late (its delay is the lowest).
        assert_eq!(lateness.judge(None, 0, u64::MAX), None);
        assert_eq!(lateness.judge(None, u64::MAX, 0), None);
        assert_eq!(
            lateness.judge(None, 0, u64::MAX),
            Some(std::time::Duration::from_nanos(i64::MAX as u64))
        );
        let mut stats = gst::Structure::new_empty("s");
        lateness.add_to_stats(&mut stats);
        assert_eq!(stats.get::<u64>("late"), Ok(1));
        assert_eq!(stats.get::<f64>("delay-p50-ms"), Ok(i64::MAX as f64 / 1e6));
        lateness.reset();
        let mut stats = gst::Structure::new_empty("s");
        lateness.add_to_stats(&mut stats);
        assert_eq!(stats.get::<u64>("late"), Ok(0));
        assert!(!stats.has_field("delay-p50-ms"));
    }
}
