// SPDX-License-Identifier: MPL-2.0
//! `netgearsrc`: receives frames from a vidgear NetGear sender (vidgear's "client" role).
//!
//! `imp` is the GStreamer glue (properties, state, the base class' virtual methods);
//! `receiver` turns messages into frames and replies; `negotiation` decides what the
//! source pad carries; `decode_ahead` overlaps a frame's decode with receiving the next;
//! `returns` holds what goes back with the replies; `timing` the measured frame rate;
//! `clock` the clock it provides, held until a sender is there;
//! `lateness` the delays of stamped frames and `max-lateness`; `probes` tells a health
//! check from a retrying sender of another pattern.

use gst::glib;
use gst::prelude::*;
use std::sync::LazyLock;

mod clock;
mod decode_ahead;
mod imp;
mod lateness;
mod negotiation;
mod probes;
mod receiver;
mod returns;
mod timing;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "netgearsrc",
        gst::DebugColorFlags::empty(),
        Some("NetGear receiver"),
    )
});

glib::wrapper! {
    pub struct NetGearSrc(ObjectSubclass<imp::NetGearSrc>) @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object, @implements gst::URIHandler;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "netgearsrc",
        gst::Rank::PRIMARY,
        NetGearSrc::static_type(),
    )
}
