// SPDX-License-Identifier: MPL-2.0
//! Frames' capture times in UNIX time, between buffers and the header key
//! `capture_time_ns`: on buffers they are a `GstReferenceTimestampMeta` with caps
//! `timestamp/x-unix`, so applications on another machine can measure latency and align
//! streams; a buffer that has none is stamped from the pipeline clock ([`of_buffer`]).

use gst_base::prelude::*;
use netgear_protocol::MAX_CAPTURE_TIME_NS;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The reference of UNIX-time `GstReferenceTimestampMeta`s.
pub const UNIX_REFERENCE: &str = "timestamp/x-unix";

static UNIX_CAPS: LazyLock<gst::Caps> =
    LazyLock::new(|| gst::Caps::new_empty_simple(UNIX_REFERENCE));

/// The system's UNIX time now, in nanoseconds (0 before 1970).
pub fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The buffer's `timestamp/x-unix` reference timestamp, in nanoseconds.
pub fn read(buffer: &gst::BufferRef) -> Option<u64> {
    buffer
        .iter_meta::<gst::ReferenceTimestampMeta>()
        .find(|meta| {
            meta.reference()
                .structure(0)
                .is_some_and(|s| s.has_name(UNIX_REFERENCE))
        })
        .map(|meta| meta.timestamp().nseconds())
}

/// Attaches a capture time from the wire (at most `MAX_CAPTURE_TIME_NS`, so a valid
/// clock time) as a `timestamp/x-unix` reference timestamp.
pub fn attach(buffer: &mut gst::BufferRef, capture_time_ns: u64) {
    let timestamp = gst::ClockTime::from_nseconds(capture_time_ns.min(MAX_CAPTURE_TIME_NS));
    gst::ReferenceTimestampMeta::add(buffer, &UNIX_CAPS, timestamp, gst::ClockTime::NONE);
}

/// The capture time to send with a buffer.
///
/// Upstream's own `timestamp/x-unix` reference timestamp when it has one (an
/// application's, or a relayed frame's from `netgearsrc`), exactly. Otherwise the UNIX
/// time at which the pipeline clock showed the buffer's running time, which is when a
/// live source captured it: the clock and the system's UNIX time are read together now,
/// and the buffer's age on the clock is taken off. Its error is the clock's drift from
/// UNIX time over that age (microseconds), plus a preemption between the two reads.
/// A buffer without a running time, or one ahead of the clock (a non-live source pushing
/// faster than real time into `sync=false`), is stamped with the UNIX time now.
pub fn of_buffer(sink: &gst_base::BaseSink, buffer: &gst::BufferRef) -> u64 {
    if let Some(upstream) = read(buffer).filter(|ns| *ns <= MAX_CAPTURE_TIME_NS) {
        return upstream;
    }
    let captured_at = clock_time_of(sink, buffer);
    let clock_now = sink.clock().map(|clock| clock.time());
    let unix_now = unix_now_ns();
    match (captured_at, clock_now) {
        (Some(captured), Some(now)) => unix_time_at(captured, now, unix_now),
        _ => unix_now,
    }
}

/// The clock time at which the buffer's running time was (or will be) on the clock.
fn clock_time_of(sink: &gst_base::BaseSink, buffer: &gst::BufferRef) -> Option<gst::ClockTime> {
    let segment = sink.segment();
    let running_time = segment
        .downcast_ref::<gst::ClockTime>()?
        .to_running_time(buffer.pts()?)?;
    sink.base_time()?.checked_add(running_time)
}

/// The UNIX time when the clock showed `captured`, it showing `clock_now` at `unix_now`;
/// never later than `unix_now`.
fn unix_time_at(captured: gst::ClockTime, clock_now: gst::ClockTime, unix_now: u64) -> u64 {
    let age = clock_now.nseconds().saturating_sub(captured.nseconds());
    unix_now.saturating_sub(age).min(MAX_CAPTURE_TIME_NS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_times_map_to_unix_time_never_ahead_of_now() {
        let ms = gst::ClockTime::from_mseconds;
        let unix_now = 1_732_300_000_000_000_000;
        // Captured 40 ms ago on the clock: 40 ms before now in UNIX time.
        assert_eq!(
            unix_time_at(ms(960), ms(1000), unix_now),
            unix_now - 40_000_000
        );
        // Ahead of the clock (pushed faster than real time): now.
        assert_eq!(unix_time_at(ms(1500), ms(1000), unix_now), unix_now);
        // An age longer than UNIX time itself saturates.
        assert_eq!(unix_time_at(ms(0), ms(1000), 5), 0);
    }

    #[test]
    fn only_the_unix_reference_is_read() {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::new();
        let b = buffer.get_mut().unwrap();
        assert_eq!(read(b), None);
        let ntp = gst::Caps::new_empty_simple("timestamp/x-ntp");
        gst::ReferenceTimestampMeta::add(b, &ntp, gst::ClockTime::from_seconds(9), None);
        assert_eq!(read(b), None);
        let unix = gst::ClockTime::from_nseconds(1_732_300_000_123_456_789);
        let caps = gst::Caps::new_empty_simple(UNIX_REFERENCE);
        gst::ReferenceTimestampMeta::add(b, &caps, unix, None);
        assert_eq!(read(b), Some(1_732_300_000_123_456_789));
    }

    #[test]
    fn attached_capture_times_read_back_exactly() {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::new();
        let b = buffer.get_mut().unwrap();
        attach(b, 1_732_300_000_123_456_789);
        assert_eq!(read(b), Some(1_732_300_000_123_456_789));
        let metas: Vec<_> = b
            .iter_meta::<gst::ReferenceTimestampMeta>()
            .map(|m| (m.reference().to_string(), m.duration()))
            .collect();
        assert_eq!(metas, [(UNIX_REFERENCE.to_owned(), None)]);
        // The largest the wire allows is a valid clock time.
        attach(b, MAX_CAPTURE_TIME_NS);
        let times: Vec<u64> = b
            .iter_meta::<gst::ReferenceTimestampMeta>()
            .map(|m| m.timestamp().nseconds())
            .collect();
        assert_eq!(times, [1_732_300_000_123_456_789, MAX_CAPTURE_TIME_NS]);
    }
}
