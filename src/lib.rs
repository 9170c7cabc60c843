// SPDX-License-Identifier: MPL-2.0
//! GStreamer elements that speak vidgear's NetGear protocol: `netgearsink` sends frames to
//! a NetGear receiver, `netgearsrc` receives them from a NetGear sender, `netgeardemux`
//! splits a multi-server stream by server.
//!
//! Where each concern lives: the wire format, JPEG codec, CURVE key files and address lists
//! in the `netgear_protocol` crate (no GStreamer, no sockets); sockets and the ZAP handler
//! in `transport`; modes and their rules in `config`; shared properties in `properties`;
//! start-up in `link_setup`; frames between wire and buffers (and the JPEG jobs for worker
//! threads) in `frames`; the format table in `formats`; the ordered worker pool in
//! `workers`; the `netgear://` URI in `uri`, vidgear's option names in it in
//! `vidgear_options`; SSH tunnels in `ssh`; the `stats` counters; locks that outlive a
//! panic in `sync`; the `NetGearMeta` in `meta`; glue both elements share in `glue`; and
//! each element's own glue in `netgearsink`, `netgearsrc` and `netgeardemux`. Only `meta`
//! is public: the rest is reached through GStreamer.

use gst::glib;

mod config;
mod formats;
mod frames;
mod glue;
mod link_setup;
pub mod meta;
mod netgeardemux;
mod netgearsink;
mod netgearsrc;
mod properties;
mod ssh;
mod stats;
mod sync;
#[cfg(test)]
mod test_support;
mod transport;
mod uri;
mod vidgear_options;
mod workers;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    meta::register();
    // So the transport's category shows in --gst-debug-help before any link exists.
    std::sync::LazyLock::force(&transport::CAT);
    netgearsink::register(plugin)?;
    netgearsrc::register(plugin)?;
    netgeardemux::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    netgear,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
