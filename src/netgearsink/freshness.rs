// SPDX-License-Identifier: MPL-2.0
//! `max-frame-age`: a live frame older than this is dropped rather than sent, so a
//! receiver sees no burst of old pictures after an outage.
//!
//! A frame's age is how long ago the pipeline clock showed its running time plus the
//! latency upstream announces: when a live source captured it, or (`sync=true`) when it was
//! due. It is judged when the buffer reaches `render` (frames a blocked render left queued
//! upstream) and, through the expiry the frame carries, by the link when its turn comes, while
//! it waits for room and before it is sent again (see `transport::sender::freshness`).
//!
//! Input that is neither live nor synchronised (a file pushed as fast as the receiver
//! answers, `sync=false`) has no age: its frames are never dropped.

use gst::glib;
use gst_base::prelude::*;
use std::time::{Duration, Instant};

/// Half a second: frames held while the link was down are sent at most this old, so with
/// transit they arrive well within the second a live picture is worth; on a healthy link a
/// frame waits one exchange at most, far less.
pub const DEFAULT_MAX_FRAME_AGE_MS: u32 = 500;

/// `max-frame-age`.
pub fn property() -> glib::ParamSpec {
    glib::ParamSpecUInt::builder("max-frame-age")
        .nick("Maximum frame age")
        .blurb("Live or synchronised input: drop frames older than this many milliseconds (since the clock showed their running time) instead of sending them, when they reach the sink, when their turn comes after an outage, and when they would be sent again; counted as 'stale' in stats. 0 = off. Non-live input with sync=false is never dropped")
        .default_value(DEFAULT_MAX_FRAME_AGE_MS)
        .mutable_playing()
        .build()
}

/// Whether and how a stream's frames are aged, found once per caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ageing {
    /// Not found yet: the next buffer asks upstream.
    Unknown,
    /// Neither live nor synchronised: frames have no age.
    Never,
    /// Frames are aged; `latency` (upstream's minimum) is not counted against them.
    By { latency: gst::ClockTime },
}

impl Ageing {
    /// Asks upstream (the latency query) whether it is live.
    pub fn of(sink: &gst_base::BaseSink) -> Ageing {
        let (upstream_live, latency) = match sink.query_latency() {
            Ok((_, live, min, _)) => (live, min.unwrap_or(gst::ClockTime::ZERO)),
            Err(_) => (false, gst::ClockTime::ZERO),
        };
        if upstream_live || sink.is_sync() {
            Ageing::By { latency }
        } else {
            Ageing::Never
        }
    }
}

/// What `max-frame-age` says of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it; it goes stale at this instant (`None`: never).
    Send(Option<Instant>),
    /// Too old already: this old.
    Stale(Duration),
}

/// Judges `buffer` by `max_age` (`None`: off).
pub fn judge(
    sink: &gst_base::BaseSink,
    buffer: &gst::BufferRef,
    ageing: Ageing,
    max_age: Option<Duration>,
) -> Verdict {
    let (Ageing::By { latency }, Some(max_age)) = (ageing, max_age) else {
        return Verdict::Send(None);
    };
    match age(sink, buffer, latency) {
        Some(age) => verdict(age, max_age, Instant::now()),
        None => Verdict::Send(None),
    }
}

/// `max-frame-age` in milliseconds as the bound it sets.
pub fn max_age(ms: u32) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms.into()))
}

fn verdict(age: Duration, max_age: Duration, now: Instant) -> Verdict {
    match max_age.checked_sub(age) {
        Some(left) if !left.is_zero() => Verdict::Send(Some(now + left)),
        _ => Verdict::Stale(age),
    }
}

/// How long ago the clock showed the buffer's running time plus `latency`; `None` without
/// a timestamp, a segment in time or a clock.
fn age(
    sink: &gst_base::BaseSink,
    buffer: &gst::BufferRef,
    latency: gst::ClockTime,
) -> Option<Duration> {
    let running_time = sink
        .segment()
        .downcast_ref::<gst::ClockTime>()?
        .to_running_time(buffer.pts()?)?;
    let due = sink
        .base_time()?
        .checked_add(running_time)?
        .checked_add(latency)?;
    let now = sink.clock()?.time();
    Some(Duration::from_nanos(
        now.nseconds().saturating_sub(due.nseconds()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_stale_from_its_maximum_age_on() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(
            verdict(ms(300), ms(1000), now),
            Verdict::Send(Some(now + ms(700)))
        );
        assert_eq!(verdict(ms(1000), ms(1000), now), Verdict::Stale(ms(1000)));
        assert_eq!(verdict(ms(5000), ms(1000), now), Verdict::Stale(ms(5000)));
        assert_eq!(max_age(0), None);
        assert_eq!(max_age(1000), Some(ms(1000)));
    }
}
