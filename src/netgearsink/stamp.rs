// SPDX-License-Identifier: MPL-2.0
//! What names a frame on `netgear-return`: its timestamp and offset travel with it to the
//! link and come back with the reply, so an application joins a receiver's result to the
//! frame it answers, even when several frames are in flight (load balancing).

use crate::transport::FrameStamp;

/// The buffer's PTS (ns) and offset, where set.
pub fn of(buffer: &gst::BufferRef) -> FrameStamp {
    let offset = buffer.offset();
    FrameStamp {
        pts: buffer.pts().map(gst::ClockTime::nseconds),
        offset: (offset != gst::format::Buffers::OFFSET_NONE).then_some(offset),
    }
}

/// Adds `pts` and `offset` (guint64) to a message, each only where the frame had it.
pub fn fields(builder: gst::structure::Builder, stamp: FrameStamp) -> gst::structure::Builder {
    builder
        .field_if_some("pts", stamp.pts)
        .field_if_some("offset", stamp.offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_buffer_has_is_named() {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::new();
        assert_eq!(of(&buffer), FrameStamp::default());
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(40));
        b.set_offset(7);
        let stamp = of(&buffer);
        assert_eq!(stamp.pts, Some(40_000_000));
        assert_eq!(stamp.offset, Some(7));
        let s = fields(gst::Structure::builder("netgear-return"), stamp).build();
        assert_eq!(s.get::<u64>("pts").unwrap(), 40_000_000);
        assert_eq!(s.get::<u64>("offset").unwrap(), 7);
        let none = fields(gst::Structure::builder("x"), FrameStamp::default()).build();
        assert!(!none.has_field("pts") && !none.has_field("offset"));
    }
}
