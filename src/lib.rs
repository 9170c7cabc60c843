//! GStreamer elements that speak vidgear's NetGear protocol: `netgearsink` sends frames to
//! a NetGear receiver, `netgearsrc` receives them from a NetGear sender.

use gst::glib;

mod common;
pub mod config;
pub mod jpeg;
pub mod meta;
mod netgearsink;
mod netgearsrc;
pub mod protocol;
pub mod security;
pub mod ssh;
mod stats;
pub mod transport;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    meta::register();
    netgearsink::register(plugin)?;
    netgearsrc::register(plugin)?;
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
