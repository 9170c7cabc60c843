// SPDX-License-Identifier: MPL-2.0
//! The clock `netgearsrc` provides: the system's monotonic clock, held still from the
//! source's start until a sender connects or its first message arrives. A pipeline that
//! runs on it (a capture pipeline picks its source's clock) starts its running time with
//! the stream, so a recording has no leading gap for the wait, while live sinks stay in
//! sync with buffers stamped at arrival. An audio source's clock holds the same way until
//! capture starts.

use crate::sync;
use gst::glib;
use gst::subclass::prelude::*;
use gst::ClockTime;
use std::sync::Mutex;

glib::wrapper! {
    pub struct StartClock(ObjectSubclass<imp::StartClock>)
        @extends gst::SystemClock, gst::Clock, gst::Object;
}

impl Default for StartClock {
    fn default() -> Self {
        glib::Object::builder()
            .property("name", "netgearsrc-clock")
            .build()
    }
}

impl StartClock {
    /// Holds the clock still until `run` (the source starts; no sender yet).
    pub fn hold(&self) {
        self.imp().hold();
    }

    /// Lets the clock run on from where it stood (a sender is there).
    pub fn run(&self) {
        self.imp().run();
    }
}

/// Where the clock stands: the system time it was held at, and the time it stood still
/// so far, which its time leaves out.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    since: Option<ClockTime>,
    stood: ClockTime,
}

impl Held {
    /// The clock's time at system time `now`.
    fn time(&self, now: ClockTime) -> ClockTime {
        self.since.unwrap_or(now).saturating_sub(self.stood)
    }

    fn hold(&mut self, now: ClockTime) {
        self.since.get_or_insert(now);
    }

    fn run(&mut self, now: ClockTime) {
        if let Some(since) = self.since.take() {
            self.stood += now.saturating_sub(since);
        }
    }
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct StartClock {
        held: Mutex<Held>,
    }

    impl StartClock {
        pub(super) fn hold(&self) {
            let now = self.parent_internal_time();
            sync::lock(&self.held).hold(now);
        }

        pub(super) fn run(&self) {
            let now = self.parent_internal_time();
            let mut held = sync::lock(&self.held);
            if held.since.is_some() {
                held.run(now);
                gst::info!(super::super::CAT, "the clock runs: a sender is there");
            }
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for StartClock {
        const NAME: &'static str = "GstNetGearStartClock";
        type Type = super::StartClock;
        type ParentType = gst::SystemClock;
    }

    impl ObjectImpl for StartClock {}
    impl GstObjectImpl for StartClock {}
    impl SystemClockImpl for StartClock {}

    impl ClockImpl for StartClock {
        fn internal_time(&self) -> ClockTime {
            let now = self.parent_internal_time();
            sync::lock(&self.held).time(now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst::prelude::*;

    #[test]
    fn held_time_stands_still_and_runs_on_from_there() {
        let ms = ClockTime::from_mseconds;
        let mut held = Held::default();
        assert_eq!(held.time(ms(100)), ms(100));
        held.hold(ms(100));
        assert_eq!(held.time(ms(900)), ms(100));
        held.hold(ms(500)); // held already: the first hold stands
        held.run(ms(1000));
        assert_eq!(held.time(ms(1000)), ms(100));
        assert_eq!(held.time(ms(1050)), ms(150));
        held.run(ms(2000)); // running already: nothing changes
        assert_eq!(held.time(ms(2000)), ms(1100));
        held.hold(ms(2000));
        held.run(ms(2500));
        assert_eq!(held.time(ms(2600)), ms(1200));
    }

    #[test]
    fn the_clock_holds_until_it_runs() {
        gst::init().unwrap();
        let clock = StartClock::default();
        clock.hold();
        let t0 = clock.time();
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert_eq!(clock.time(), t0);
        clock.run();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let ran = clock.time() - t0;
        assert!(ran >= ClockTime::from_mseconds(30) && ran < ClockTime::from_mseconds(200));
    }
}
