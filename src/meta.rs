// SPDX-License-Identifier: MPL-2.0
//! `NetGearMeta`: a custom meta carrying a frame's NetGear `message` (JSON text) and the
//! sending server's `port` on buffers, so `netgearsrc ! … ! netgearsink` relays them and
//! applications can read them with `gst_buffer_get_custom_meta(buffer, "NetGearMeta")`.
//!
//! The plugin's one public Rust API, on purpose: applications that link the plugin read
//! ([`read`]) and set ([`attach`]) a buffer's message and port with [`NetGearInfo`]
//! instead of spelling the meta's structure fields.

use gst::meta::CustomMeta;

pub const NAME: &str = "NetGearMeta";

/// Between `netgearsrc` and `netgeardemux`: the custom downstream event (field `port`) that
/// says one of several servers terminated, and the custom query by which a downstream
/// element asks for such events (other consumers, e.g. `appsink`, would stop at them).
pub const SERVER_EOS: &str = "netgear-server-eos";

/// What a `NetGearMeta` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetGearInfo {
    /// The frame's message as JSON text.
    pub message: Option<String>,
    /// The server's port (multi-server mode).
    pub port: Option<u16>,
}

/// Registers the meta (once; from plugin init).
pub fn register() {
    if CustomMeta::is_registered(NAME) {
        return;
    }
    // Message and port describe the frame, not its pixels: keep them through any transform.
    CustomMeta::register_with_transform(NAME, &[], |dest, meta, _src, _kind| {
        let info = read_structure(meta.structure());
        attach(dest, &info);
        true
    });
}

fn read_structure(s: &gst::StructureRef) -> NetGearInfo {
    NetGearInfo {
        message: s.get::<String>("message").ok(),
        port: s
            .get::<u32>("port")
            .ok()
            .and_then(|p| u16::try_from(p).ok()),
    }
}

/// Attaches the meta to a buffer that has none (ours are fresh; a transform's copy may
/// already carry it).
pub fn attach(buffer: &mut gst::BufferRef, info: &NetGearInfo) {
    if CustomMeta::from_buffer(buffer, NAME).is_ok() {
        return;
    }
    let Ok(mut meta) = CustomMeta::add(buffer, NAME) else {
        return;
    };
    let s = meta.mut_structure();
    if let Some(m) = &info.message {
        s.set("message", m);
    }
    if let Some(p) = info.port {
        s.set("port", u32::from(p));
    }
}

/// Reads the meta of a buffer, if it has one.
pub fn read(buffer: &gst::BufferRef) -> Option<NetGearInfo> {
    CustomMeta::from_buffer(buffer, NAME)
        .ok()
        .map(|meta| read_structure(meta.structure()))
}
