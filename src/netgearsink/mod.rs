// SPDX-License-Identifier: MPL-2.0
//! `netgearsink`: sends frames to a vidgear NetGear receiver (vidgear's "server" role).

use gst::glib;
use gst::prelude::*;

mod bands;
mod companion;
mod freshness;
mod imp;
mod stamp;
mod tunnel;

glib::wrapper! {
    pub struct NetGearSink(ObjectSubclass<imp::NetGearSink>) @extends gst_base::BaseSink, gst::Element, gst::Object, @implements gst::URIHandler;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "netgearsink",
        gst::Rank::PRIMARY,
        NetGearSink::static_type(),
    )
}
