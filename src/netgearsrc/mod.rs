// SPDX-License-Identifier: MPL-2.0
//! `netgearsrc`: receives frames from a vidgear NetGear sender (vidgear's "client" role).

use gst::glib;
use gst::prelude::*;

mod imp;
mod timing;

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
