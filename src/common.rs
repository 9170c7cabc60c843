//! GStreamer glue shared by both elements: the properties they have in common and the
//! link configuration built from them.

use crate::config::{parse_ports, Modes, Pattern, Protocol, Role, SecureMode};
use crate::jpeg::{Colorspace, DecodeParams, Decoder};
use crate::protocol::{self, Dtype, PayloadKind, PixelMap, RawLayout};
use crate::security::{ClientPolicy, KeyDirs};
use crate::transport::{endpoint, LinkConfig, Waker};
use gst::glib;
use gst_video::prelude::*;
use gst_video::VideoFormat;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_PORT: u32 = 5555;
pub const DEFAULT_MAX_RETRIES: u32 = 3;
pub const DEFAULT_REQUEST_TIMEOUT_MS: u32 = 4000;
/// Default largest frame: 8K RGBA is 132 MB.
pub const DEFAULT_MAX_FRAME_BYTES: u64 = 256 << 20;

/// Properties of interface.md that both elements have.
#[derive(Debug, Clone)]
pub struct CommonSettings {
    pub address: String,
    pub port: u32,
    pub ports: String,
    pub protocol: Protocol,
    pub pattern: Pattern,
    pub bidirectional: bool,
    pub multi_server: bool,
    pub multi_client: bool,
    pub secure_mode: SecureMode,
    pub cert_dir: String,
    pub max_retries: u32,
    pub request_timeout_ms: u32,
    pub max_frame_bytes: u64,
}

pub fn default_address(role: Role) -> &'static str {
    match role {
        Role::Sender => "localhost",
        Role::Receiver => "*",
    }
}

impl CommonSettings {
    pub fn new(role: Role) -> Self {
        CommonSettings {
            address: default_address(role).to_owned(),
            port: DEFAULT_PORT,
            ports: String::new(),
            protocol: Protocol::Tcp,
            pattern: Pattern::Pair,
            bidirectional: false,
            multi_server: false,
            multi_client: false,
            secure_mode: SecureMode::None,
            cert_dir: String::new(),
            max_retries: DEFAULT_MAX_RETRIES,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }

    pub fn properties(role: Role) -> Vec<glib::ParamSpec> {
        let (address_blurb, ports_blurb) = match role {
            Role::Sender => (
                "Host name or IP of the receiver to connect to; with protocol=ipc, a path prefix",
                "Comma-separated receiver ports for multi-client mode, e.g. \"5577,5578\"",
            ),
            Role::Receiver => (
                "Interface to bind (\"*\" for all); with protocol=ipc, a path prefix",
                "Comma-separated ports to bind in multi-server mode, e.g. \"5566,5567\"",
            ),
        };
        vec![
            glib::ParamSpecString::builder("address")
                .nick("Address")
                .blurb(address_blurb)
                .default_value(Some(default_address(role)))
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("port")
                .nick("Port")
                .blurb("Port number; the endpoint is protocol://address:port as vidgear builds it")
                .minimum(1)
                .maximum(65535)
                .default_value(DEFAULT_PORT)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("ports")
                .nick("Ports")
                .blurb(ports_blurb)
                .mutable_ready()
                .build(),
            glib::ParamSpecEnum::builder_with_default("protocol", Protocol::Tcp)
                .nick("Protocol")
                .blurb("Transport: tcp, or ipc (Unix socket at address:port)")
                .mutable_ready()
                .build(),
            glib::ParamSpecEnum::builder_with_default("pattern", Pattern::Pair)
                .nick("Pattern")
                .blurb("ZeroMQ messaging pattern, vidgear's pattern 0/1/2; both ends must agree")
                .mutable_ready()
                .build(),
            glib::ParamSpecBoolean::builder("bidirectional")
                .nick("Bidirectional")
                .blurb("vidgear's bidirectional_mode: messages go with frames, data comes back in replies (patterns 0, 1)")
                .mutable_ready()
                .build(),
            glib::ParamSpecBoolean::builder("multi-server")
                .nick("Multi-server")
                .blurb("vidgear's multiserver_mode: many senders into one receiver, each sender tagged by its port (patterns 1, 2)")
                .mutable_ready()
                .build(),
            glib::ParamSpecBoolean::builder("multi-client")
                .nick("Multi-client")
                .blurb("vidgear's multiclient_mode: one sender to many receivers listed in ports (patterns 1, 2)")
                .mutable_ready()
                .build(),
            glib::ParamSpecEnum::builder_with_default("secure-mode", SecureMode::None)
                .nick("Secure mode")
                .blurb("ZeroMQ CURVE security: none, stonehouse or ironhouse")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("cert-dir")
                .nick("Certificate directory")
                .blurb("vidgear's custom_cert_location: keys live in cert-dir/.vidgear/keys/ (empty: $HOME)")
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("max-retries")
                .nick("Max retries")
                .blurb("Reconnect attempts after a reply timed out before giving up with an error (patterns 0, 1)")
                .default_value(DEFAULT_MAX_RETRIES)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("request-timeout")
                .nick("Request timeout")
                .blurb("Milliseconds to wait for a reply before reconnecting; a receiver rebinds after 3x this of silence")
                .minimum(10)
                .default_value(DEFAULT_REQUEST_TIMEOUT_MS)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt64::builder("max-frame-bytes")
                .nick("Max frame bytes")
                .blurb("Largest frame accepted from the network, as sent or once decoded; a peer sending more is dropped (malformed)")
                .minimum(1024)
                .default_value(DEFAULT_MAX_FRAME_BYTES)
                .mutable_ready()
                .build(),
            glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                .nick("Statistics")
                .blurb("Counters: frames, bytes, retries, reconnects, dropped, malformed, returns, terminations, refused")
                .read_only()
                .build(),
        ]
    }

    /// Applies a shared property; `false` if `pspec` is not one of them.
    pub fn set_property(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) -> bool {
        match pspec.name() {
            "address" => {
                self.address = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
            "port" => self.port = value.get().unwrap_or(DEFAULT_PORT),
            "ports" => {
                self.ports = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
            "protocol" => self.protocol = value.get().unwrap_or_default(),
            "pattern" => self.pattern = value.get().unwrap_or_default(),
            "bidirectional" => self.bidirectional = value.get().unwrap_or(false),
            "multi-server" => self.multi_server = value.get().unwrap_or(false),
            "multi-client" => self.multi_client = value.get().unwrap_or(false),
            "secure-mode" => self.secure_mode = value.get().unwrap_or_default(),
            "cert-dir" => {
                self.cert_dir = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
            "max-retries" => self.max_retries = value.get().unwrap_or(DEFAULT_MAX_RETRIES),
            "request-timeout" => {
                self.request_timeout_ms = value.get().unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS)
            }
            "max-frame-bytes" => {
                self.max_frame_bytes = value.get().unwrap_or(DEFAULT_MAX_FRAME_BYTES)
            }
            _ => return false,
        }
        true
    }

    /// Reads a shared property other than `stats`.
    pub fn property(&self, pspec: &glib::ParamSpec) -> Option<glib::Value> {
        Some(match pspec.name() {
            "address" => self.address.to_value(),
            "port" => self.port.to_value(),
            "ports" => self.ports.to_value(),
            "protocol" => self.protocol.to_value(),
            "pattern" => self.pattern.to_value(),
            "bidirectional" => self.bidirectional.to_value(),
            "multi-server" => self.multi_server.to_value(),
            "multi-client" => self.multi_client.to_value(),
            "secure-mode" => self.secure_mode.to_value(),
            "cert-dir" => self.cert_dir.to_value(),
            "max-retries" => self.max_retries.to_value(),
            "request-timeout" => self.request_timeout_ms.to_value(),
            "max-frame-bytes" => self.max_frame_bytes.to_value(),
            _ => return None,
        })
    }

    pub fn modes(&self) -> Result<Modes, String> {
        Ok(Modes {
            pattern: self.pattern,
            bidirectional: self.bidirectional,
            multi_server: self.multi_server,
            multi_client: self.multi_client,
            ports: parse_ports(&self.ports)?,
        })
    }

    /// The port this element names itself by in multi modes.
    pub fn own_port(&self) -> u16 {
        u16::try_from(self.port).unwrap_or(5555)
    }

    /// Checks the settings and builds what the transport needs; errors are user-facing.
    /// In secure mode it loads the keys, making a vidgear-compatible set first if the set
    /// is missing or incomplete (or `overwrite_keys`). Returns whether it made one.
    pub fn link_config(
        &self,
        role: Role,
        overwrite_keys: bool,
    ) -> Result<(LinkConfig, bool), String> {
        let modes = self.modes()?;
        modes.validate(role)?;
        let (curve, clients, generated) = match self.secure_mode {
            SecureMode::None => (None, None, false),
            mode => {
                let dirs = KeyDirs::new(&self.cert_dir)?;
                let generated = dirs.ensure(overwrite_keys)?;
                match role {
                    Role::Sender => (Some(dirs.client_keys()?), None, generated),
                    Role::Receiver => {
                        let policy = if mode == SecureMode::IronHouse {
                            ClientPolicy::Listed(dirs.allowed_clients()?)
                        } else {
                            ClientPolicy::AnyKey
                        };
                        (Some(dirs.server_keys()?), Some(policy), generated)
                    }
                }
            }
        };
        if self.address.is_empty() {
            return Err("address is empty".into());
        }
        let endpoints = modes
            .active_ports(role, self.own_port())
            .into_iter()
            .map(|port| endpoint(self.protocol, &self.address, port))
            .collect();
        let config = LinkConfig {
            role,
            pattern: self.pattern,
            endpoints,
            request_timeout: Duration::from_millis(u64::from(self.request_timeout_ms)),
            max_retries: self.max_retries,
            // Headers may be larger than a tiny frame limit.
            max_message_bytes: i64::try_from(
                self.max_frame_bytes.max(protocol::MAX_HEADER_BYTES as u64),
            )
            .unwrap_or(i64::MAX),
            curve,
            clients,
            // Several servers share the socket: skipping would starve all but the busiest.
            newest_only: role == Role::Receiver
                && self.pattern == Pattern::PubSub
                && !self.multi_server,
            events: Default::default(),
        };
        Ok((config, generated))
    }
}

/// An 8-character `[A-Z0-9]` id like vidgear's, for the receiver's acknowledgement.
pub fn device_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    // RandomState is seeded from the OS's randomness; no need for a rand crate.
    let mut bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (0..8)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char;
            bits /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// The JSON text of a value for bus messages and metas, as Python would print it.
pub fn json_text(value: &serde_json::Value) -> String {
    crate::protocol::python_json_text(value)
}

/// Raw formats we accept, how their pixels map to OpenCV's BGR / BGRA / gray, the numpy
/// layout they are sent as, and the colorspace JPEG encodes them from (None: no JPEG).
pub type RawFormat = (VideoFormat, PixelMap, Dtype, usize, Option<&'static str>);
pub const SEND_FORMATS: &[RawFormat] = &[
    (
        VideoFormat::Bgr,
        PixelMap {
            in_bytes: 3,
            picks: &[0, 1, 2],
        },
        Dtype::U8,
        3,
        Some("BGR"),
    ),
    (
        VideoFormat::Rgb,
        PixelMap {
            in_bytes: 3,
            picks: &[2, 1, 0],
        },
        Dtype::U8,
        3,
        Some("RGB"),
    ),
    (
        VideoFormat::Bgrx,
        PixelMap {
            in_bytes: 4,
            picks: &[0, 1, 2],
        },
        Dtype::U8,
        3,
        Some("BGRX"),
    ),
    (
        VideoFormat::Rgbx,
        PixelMap {
            in_bytes: 4,
            picks: &[2, 1, 0],
        },
        Dtype::U8,
        3,
        Some("RGBX"),
    ),
    (
        VideoFormat::Xbgr,
        PixelMap {
            in_bytes: 4,
            picks: &[1, 2, 3],
        },
        Dtype::U8,
        3,
        Some("XBGR"),
    ),
    (
        VideoFormat::Xrgb,
        PixelMap {
            in_bytes: 4,
            picks: &[3, 2, 1],
        },
        Dtype::U8,
        3,
        Some("XRGB"),
    ),
    (
        VideoFormat::Bgra,
        PixelMap {
            in_bytes: 4,
            picks: &[0, 1, 2, 3],
        },
        Dtype::U8,
        4,
        Some("BGRA"),
    ),
    (
        VideoFormat::Rgba,
        PixelMap {
            in_bytes: 4,
            picks: &[2, 1, 0, 3],
        },
        Dtype::U8,
        4,
        Some("RGBA"),
    ),
    (
        VideoFormat::Abgr,
        PixelMap {
            in_bytes: 4,
            picks: &[1, 2, 3, 0],
        },
        Dtype::U8,
        4,
        Some("ABGR"),
    ),
    (
        VideoFormat::Argb,
        PixelMap {
            in_bytes: 4,
            picks: &[3, 2, 1, 0],
        },
        Dtype::U8,
        4,
        Some("ARGB"),
    ),
    (
        VideoFormat::Gray8,
        PixelMap {
            in_bytes: 1,
            picks: &[0],
        },
        Dtype::U8,
        1,
        Some("GRAY"),
    ),
    (
        VideoFormat::Gray16Le,
        PixelMap {
            in_bytes: 2,
            picks: &[0, 1],
        },
        Dtype::U16,
        1,
        None,
    ),
];

/// The GStreamer format of a raw NetGear layout (OpenCV's BGR, BGRA and gray).
pub fn raw_format(layout: &RawLayout) -> VideoFormat {
    match (layout.dtype, layout.channels) {
        (Dtype::U16, _) => VideoFormat::Gray16Le,
        (Dtype::U8, 3) => VideoFormat::Bgr,
        (Dtype::U8, 4) => VideoFormat::Bgra,
        _ => VideoFormat::Gray8,
    }
}

/// The raw format a JPEG decodes to for a header's colorspace (CMYK and unknown: BGR).
pub fn decoded_format(colorspace: &str) -> (Colorspace, VideoFormat) {
    let known = SEND_FORMATS.iter().find_map(|(format, _, _, _, name)| {
        let name = (*name)?;
        name.eq_ignore_ascii_case(colorspace)
            .then(|| Colorspace::from_name(name).map(|cs| (cs, *format)))
            .flatten()
    });
    known.unwrap_or_else(|| {
        let bgr = Colorspace::from_name("BGR").expect("BGR is a known colorspace");
        (bgr, VideoFormat::Bgr)
    })
}

/// The raw video info of a frame of `format`, `width` × `height`, variable framerate.
pub fn video_info(
    format: VideoFormat,
    width: usize,
    height: usize,
) -> Result<gst_video::VideoInfo, String> {
    let too_big = || format!("{width}x{height} is too large");
    gst_video::VideoInfo::builder(
        format,
        u32::try_from(width).map_err(|_| too_big())?,
        u32::try_from(height).map_err(|_| too_big())?,
    )
    .fps(gst::Fraction::new(0, 1))
    .build()
    .map_err(|e| e.to_string())
}

/// Turns a frame that came with a reply (vidgear's ndarray return) into a sample: raw rows
/// re-padded for GStreamer, JPEG decoded to its colorspace.
pub fn frame_sample(
    kind: &PayloadKind,
    payload: &[u8],
    decoder: &mut Option<Decoder>,
    max_bytes: u64,
) -> Result<gst::Sample, String> {
    let jpeg = match kind {
        PayloadKind::Raw(layout) => {
            protocol::check_raw_payload(layout, payload.len()).map_err(|e| e.to_string())?;
            None
        }
        PayloadKind::Jpeg(compression) => {
            let decoder = match decoder {
                Some(d) => d,
                None => decoder.insert(Decoder::new().map_err(|e| e.to_string())?),
            };
            let info = decoder
                .info(payload)
                .map_err(|e| format!("corrupt JPEG: {e}"))?;
            if info.width > protocol::MAX_DIMENSION || info.height > protocol::MAX_DIMENSION {
                return Err(format!(
                    "JPEG of {}x{} is too large",
                    info.width, info.height
                ));
            }
            Some((decoder, info, compression))
        }
    };
    let info = match (kind, &jpeg) {
        (PayloadKind::Raw(layout), _) => {
            video_info(raw_format(layout), layout.width, layout.height)?
        }
        (_, Some((_, info, compression))) => video_info(
            decoded_format(&compression.colorspace).1,
            info.width,
            info.height,
        )?,
        _ => return Err("no frame".into()),
    };
    check_decoded_size(&info, max_bytes)?;
    let stride = usize::try_from(info.stride()[0]).map_err(|e| e.to_string())?;
    let mut buffer = gst::Buffer::with_size(info.size()).map_err(|e| e.to_string())?;
    {
        let buffer = buffer.get_mut().ok_or("buffer not writable")?;
        let mut out = buffer.map_writable().map_err(|e| e.to_string())?;
        match (kind, jpeg) {
            (PayloadKind::Raw(l), _) => {
                protocol::copy_rows(
                    payload,
                    l.row_bytes(),
                    &mut out,
                    stride,
                    l.row_bytes(),
                    l.height,
                )
                .ok_or("frame does not fit")?;
            }
            (_, Some((decoder, jpeg, compression))) => {
                let params = DecodeParams {
                    fast_dct: compression.dct,
                    fast_upsample: compression.ups,
                };
                let colorspace = decoded_format(&compression.colorspace).0;
                decoder
                    .decode(payload, jpeg, colorspace, stride, params, &mut out)
                    .map_err(|e| format!("corrupt JPEG: {e}"))?;
            }
            _ => return Err("no frame".into()),
        }
    }
    let caps = info.to_caps().map_err(|e| e.to_string())?;
    Ok(gst::Sample::builder().buffer(&buffer).caps(&caps).build())
}

/// A tiny JPEG can claim a huge picture: refuse to allocate more than the limit for it.
pub fn check_decoded_size(info: &gst_video::VideoInfo, max_bytes: u64) -> Result<(), String> {
    if info.size() as u64 > max_bytes {
        return Err(format!(
            "a {}x{} frame needs {} bytes, over max-frame-bytes={max_bytes}",
            info.width(),
            info.height(),
            info.size()
        ));
    }
    Ok(())
}

/// Packs a raw buffer into the wire's layout (a returned frame): tight rows, OpenCV order.
pub fn pack_frame(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
) -> Result<(PayloadKind, Vec<u8>), String> {
    let (_, map, dtype, channels, _) = SEND_FORMATS
        .iter()
        .find(|(f, ..)| *f == info.format())
        .ok_or_else(|| format!("{} cannot be returned", info.format().to_str()))?;
    let layout = RawLayout::new(
        *dtype,
        info.height() as usize,
        info.width() as usize,
        *channels,
    );
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info)
        .map_err(|e| e.to_string())?;
    let stride = usize::try_from(frame.plane_stride()[0]).map_err(|e| e.to_string())?;
    let data = frame.plane_data(0).map_err(|e| e.to_string())?;
    let mut out = vec![0u8; layout.frame_bytes()];
    protocol::pack_pixels(data, stride, layout.width, layout.height, *map, &mut out)
        .ok_or_else(|| "buffer too small for its caps".to_owned())?;
    Ok((PayloadKind::Raw(layout), out))
}

/// `video/x-raw` in `formats`, or `image/jpeg`: the caps of every pad of ours.
pub fn raw_or_jpeg_caps(formats: impl IntoIterator<Item = VideoFormat>) -> gst::Caps {
    let mut caps = gst_video::VideoCapsBuilder::new()
        .format_list(formats)
        .build();
    caps.merge(gst::Caps::builder("image/jpeg").build());
    caps
}

/// What both elements' `start()` does first: check the settings, load (or make) the keys,
/// and create the waker `unlock()` uses. Errors are ready to return from `start()`.
pub fn prepare_start(
    settings: &CommonSettings,
    role: Role,
    overwrite_keys: bool,
    cat: gst::DebugCategory,
    element: &gst::Element,
) -> Result<(LinkConfig, Arc<Waker>), gst::ErrorMessage> {
    let (config, generated) = settings
        .link_config(role, overwrite_keys)
        .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ["Invalid settings: {}", e]))?;
    if generated {
        gst::info!(
            cat,
            obj = element,
            "made a new CURVE key set under cert-dir '{}'",
            settings.cert_dir
        );
    }
    let waker = Waker::new().map_err(|e| {
        gst::error_msg!(
            gst::ResourceError::Failed,
            ["Could not create a wake-up pipe: {}", e]
        )
    })?;
    Ok((config, Arc::new(waker)))
}
