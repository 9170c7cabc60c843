// SPDX-License-Identifier: MPL-2.0
//! `netgeardemux`: splits a multi-server `netgearsrc` stream into one source pad per server.
//!
//! `netgearsrc multi-server=true` interleaves the frames of every server on its one pad and
//! tags each buffer's `NetGearMeta` with the server's port. `netgeardemux` routes each
//! buffer to a sometimes pad named `src_<port>`, created when that server's first frame
//! arrives, with its own stream-start, caps and segment, so the servers can be placed side
//! by side in a `compositor` (vidgear's montage) from one gst-launch line:
//!
//! ```sh
//! gst-launch-1.0 netgearsrc multi-server=true pattern=req-rep ports=5566,5567 ! netgeardemux name=d \
//!   compositor name=mix start-time-selection=first sink_1::xpos=640 ! videoconvert ! autovideosink \
//!   d.src_5566 ! queue ! videoconvert ! mix.sink_0 \
//!   d.src_5567 ! queue ! videoconvert ! mix.sink_1
//! ```
//!
//! Servers may send frames of different sizes; each pad renegotiates only when its own
//! server's size changes. Buffers keep their `NetGearMeta` and their timestamps (the
//! running time at which netgearsrc received them), which is what `compositor` needs for a
//! live montage; `start-time-selection=first` keeps it from filling the time before the
//! first server connected with empty frames.
//!
//! A server that terminates gets EOS on its pad only (netgearsrc announces it with a
//! `netgear-server-eos` custom downstream event carrying `port`); the final EOS reaches
//! every pad. Buffers without a port are dropped and counted in `stats`.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct NetGearDemux(ObjectSubclass<imp::NetGearDemux>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "netgeardemux",
        gst::Rank::NONE,
        NetGearDemux::static_type(),
    )
}
