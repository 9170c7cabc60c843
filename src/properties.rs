// SPDX-License-Identifier: MPL-2.0
//! The properties both elements share: their defaults, their ParamSpecs and the settings
//! struct they fill. Every default is written once, here.

use crate::config::{parse_ports, ModeError, Modes, Pattern, Protocol, Role, SecureMode};
use gst::glib;
use gst::prelude::*;
use netgear_protocol::JsonText;

pub const DEFAULT_SENDER_ADDRESS: &str = "localhost";
pub const DEFAULT_RECEIVER_ADDRESS: &str = "*";
pub const DEFAULT_PORT: u32 = 5555;
pub const DEFAULT_PROTOCOL: Protocol = Protocol::Tcp;
pub const DEFAULT_PATTERN: Pattern = Pattern::Pair;
pub const DEFAULT_SECURE_MODE: SecureMode = SecureMode::None;
pub const DEFAULT_MAX_RETRIES: u32 = 3;
pub const DEFAULT_REQUEST_TIMEOUT_MS: u32 = 4000;
/// Default largest frame: 8K RGBA is 132 MB.
pub const DEFAULT_MAX_FRAME_BYTES: u64 = 256 << 20;
/// The smallest `max-frame-bytes`: a limit below a tiny frame's size makes no sense.
pub const MIN_MAX_FRAME_BYTES: u64 = 1024;

/// The properties both elements have.
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
        Role::Sender => DEFAULT_SENDER_ADDRESS,
        Role::Receiver => DEFAULT_RECEIVER_ADDRESS,
    }
}

/// A string property's value; GStreamer hands `None` for a property set to NULL.
pub fn string_value(value: &glib::Value) -> String {
    value
        .get::<Option<String>>()
        .ok()
        .flatten()
        .unwrap_or_default()
}

impl CommonSettings {
    pub fn new(role: Role) -> Self {
        CommonSettings {
            address: default_address(role).to_owned(),
            port: DEFAULT_PORT,
            ports: String::new(),
            protocol: DEFAULT_PROTOCOL,
            pattern: DEFAULT_PATTERN,
            bidirectional: false,
            multi_server: false,
            multi_client: false,
            secure_mode: DEFAULT_SECURE_MODE,
            cert_dir: String::new(),
            max_retries: DEFAULT_MAX_RETRIES,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }

    /// Applies a shared property; `false` if `pspec` is not one of them.
    pub fn set_property(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) -> bool {
        match pspec.name() {
            "address" => self.address = string_value(value),
            "port" => self.port = value.get().unwrap_or(DEFAULT_PORT),
            "ports" => self.ports = string_value(value),
            "protocol" => self.protocol = value.get().unwrap_or(DEFAULT_PROTOCOL),
            "pattern" => self.pattern = value.get().unwrap_or(DEFAULT_PATTERN),
            "bidirectional" => self.bidirectional = value.get().unwrap_or(false),
            "multi-server" => self.multi_server = value.get().unwrap_or(false),
            "multi-client" => self.multi_client = value.get().unwrap_or(false),
            "secure-mode" => self.secure_mode = value.get().unwrap_or(DEFAULT_SECURE_MODE),
            "cert-dir" => self.cert_dir = string_value(value),
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

    pub fn modes(&self) -> Result<Modes, ModeError> {
        Ok(Modes {
            pattern: self.pattern,
            bidirectional: self.bidirectional,
            multi_server: self.multi_server,
            multi_client: self.multi_client,
            ports: parse_ports(&self.ports)?,
        })
    }

    /// The port this element names itself by in multi modes (the ParamSpec keeps it in
    /// range, so the fallback is never used).
    pub fn own_port(&self) -> u16 {
        u16::try_from(self.port).unwrap_or(DEFAULT_PORT as u16)
    }
}

/// The ParamSpecs of the shared properties, with blurbs for `role`.
pub fn common_properties(role: Role) -> Vec<glib::ParamSpec> {
    let mut props = endpoint_properties(role);
    props.extend(mode_properties());
    props.extend(reliability_properties(role));
    props
}

fn endpoint_properties(role: Role) -> Vec<glib::ParamSpec> {
    let (port_blurb, min_port) = match role {
        Role::Sender => (
            "Port number; the endpoint is protocol://address:port as vidgear builds it",
            1,
        ),
        Role::Receiver => (
            "Port number; the endpoint is protocol://address:port as vidgear builds it; 0 binds a free port (see bound-port)",
            0,
        ),
    };
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
            .blurb(port_blurb)
            .minimum(min_port)
            .maximum(65535)
            .default_value(DEFAULT_PORT)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("ports")
            .nick("Ports")
            .blurb(ports_blurb)
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("protocol", DEFAULT_PROTOCOL)
            .nick("Protocol")
            .blurb("Transport: tcp (0), or ipc (1, Unix socket at address:port)")
            .mutable_ready()
            .build(),
    ]
}

fn mode_properties() -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecEnum::builder_with_default("pattern", DEFAULT_PATTERN)
            .nick("Pattern")
            .blurb("ZeroMQ messaging pattern, vidgear's pattern: pair (0), req-rep (1) or pub-sub (2); both ends must agree")
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
        glib::ParamSpecEnum::builder_with_default("secure-mode", DEFAULT_SECURE_MODE)
            .nick("Secure mode")
            .blurb("ZeroMQ CURVE security, vidgear's secure_mode: none (0), stonehouse (1) or ironhouse (2); both ends must agree")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("cert-dir")
            .nick("Certificate directory")
            .blurb("vidgear's custom_cert_location: keys live in cert-dir/.vidgear/keys/ (empty: $HOME)")
            .mutable_ready()
            .build(),
    ]
}

fn reliability_properties(role: Role) -> Vec<glib::ParamSpec> {
    let max_retries_blurb = match role {
        Role::Sender => "Reconnect attempts after a reply timed out before giving up with an error (patterns 0, 1)",
        Role::Receiver => "Patterns 0, 1: end the stream (EOS, after a warning) when this many silent periods of 3 x request-timeout pass in a row with no message, as vidgear's receiver gives up after max_retries; any message starts the count again; counted only once a sender has been heard unless wait-for-sender=false; 0 never gives up",
    };
    let request_timeout_blurb = match role {
        Role::Sender => "Milliseconds (not vidgear's seconds: request_timeout=4 is request-timeout=4000; below 100 fails at start) to wait for a reply before reconnecting and sending the frame again; also sets how soon a dead connection is noticed (heartbeats)",
        Role::Receiver => "Milliseconds (not vidgear's seconds; below 100 fails at start); the source waits for no reply: patterns 0, 1 rebind after 3 x this of silence so a new sender can take over, each such period counting toward max-retries; also sets how soon a dead connection is noticed (heartbeats)",
    };
    vec![
        glib::ParamSpecUInt::builder("max-retries")
            .nick("Max retries")
            .blurb(max_retries_blurb)
            .default_value(DEFAULT_MAX_RETRIES)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("request-timeout")
            .nick("Request timeout")
            // No minimum here: a value below MIN_REQUEST_TIMEOUT_MS is taken, and start
            // fails saying it is in milliseconds (a ParamSpec minimum only makes GLib warn).
            .blurb(request_timeout_blurb)
            .default_value(DEFAULT_REQUEST_TIMEOUT_MS)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt64::builder("max-frame-bytes")
            .nick("Max frame bytes")
            .blurb("Largest frame accepted from the network, as sent or once decoded; a peer sending more is dropped (malformed)")
            .minimum(MIN_MAX_FRAME_BYTES)
            .default_value(DEFAULT_MAX_FRAME_BYTES)
            .mutable_ready()
            .build(),
        glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
            .nick("Statistics")
            .blurb("Counters: frames, bytes, retries, reconnects, dropped, malformed, duplicates, returns, terminations, refused, connects, disconnects, handshake-failures, probes, receivers-down, parallel-decodes, band-encodes, band-decodes")
            .read_only()
            .build(),
    ]
}

/// A string property whose text is sent as JSON (`message`, `return-data`): kept as set,
/// and parsed once when set rather than per frame.
#[derive(Debug, Clone, Default)]
pub struct JsonProperty {
    text: String,
    value: JsonText,
}

impl JsonProperty {
    pub fn set(&mut self, value: &glib::Value) {
        self.text = string_value(value);
        self.value = JsonText::from_user_text(&self.text);
    }

    pub fn to_value(&self) -> glib::Value {
        self.text.to_value()
    }

    /// The JSON to send: the text if it is JSON by Python's rules, else a JSON string.
    pub fn json(&self) -> &JsonText {
        &self.value
    }
}
