// SPDX-License-Identifier: MPL-2.0
//! The `netgear://` URI both elements take (GstURIHandler, the `uri` property):
//!
//! - `netgear://HOST:PORT?key=value&…` — TCP; an IPv6 host goes in brackets
//!   (`netgear://[::1]:5555`); an empty host is the element's default address (`*` for
//!   `netgearsrc`, `localhost` for `netgearsink`), a missing port is 5555.
//! - `netgear+ipc:///PATH:PORT?…` — IPC: the endpoint becomes `ipc:///PATH:PORT`, exactly
//!   as vidgear builds it from `address=/PATH port=PORT protocol=ipc`.
//!
//! Every other property is a query key with its gst-launch spelling and value
//! (`?pattern=req-rep&secure-mode=ironhouse&cert-dir=/keys&jpeg-compression=false`), and
//! vidgear's option names are keys in vidgear's units (`?request_timeout=4`, seconds; see
//! `crate::vidgear_options`); keys and values are percent-decoded. Parsing and formatting
//! here are pure; `set_uri`, `set_uri_property`, `check_refused` and `element_uri` are the
//! glue both elements' URI handlers, `uri` properties and start call.

use crate::config::{Protocol, Role};
use crate::properties::default_address;
use gst::glib;
use gst::prelude::*;
use netgear_protocol::addresses;

pub const SCHEME_TCP: &str = "netgear";
pub const SCHEME_IPC: &str = "netgear+ipc";
/// The URI protocols both elements handle.
pub const PROTOCOLS: &[&str] = &[SCHEME_TCP, SCHEME_IPC];
/// Set by the URI itself, not by a query key.
const URI_KEYS: &[&str] = &["address", "port", "protocol", "uri"];
/// Never part of a URI: per-instance, read-only, or secret.
const NOT_IN_URI: &[&str] = &["name", "parent", "stats", "ssh-password"];
const DEFAULT_PORT: u16 = crate::properties::DEFAULT_PORT as u16;

/// A parsed netgear URI; `address`/`port` `None` leave the element's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetGearUri {
    pub protocol: Protocol,
    pub address: Option<String>,
    pub port: Option<u16>,
    /// Decoded `key=value` pairs in their order.
    pub query: Vec<(String, String)>,
}

/// Why a URI was refused; each names the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("not a netgear URI: it must start with netgear:// or netgear+ipc://")]
    Scheme,
    #[error("the port '{0}' is not a number from 1 to 65535")]
    Port(String),
    #[error(
        "the host '{0}' is not valid (an IPv6 address goes in brackets: netgear://[::1]:5555)"
    )]
    Host(String),
    #[error(
        "the path '{0}' is not allowed in a TCP URI (IPC endpoints: netgear+ipc:///path:port)"
    )]
    Path(String),
    #[error("an IPC URI needs a path: netgear+ipc:///path:port")]
    EmptyPath,
    #[error("'{0}' has a bad percent-escape")]
    Escape(String),
    #[error("the query part '{0}' is not key=value")]
    QueryPair(String),
    #[error("the query key '{0}' is set by the URI itself (host, port and scheme)")]
    UriKey(String),
    #[error("the query key '{0}' is given twice")]
    Duplicate(String),
    #[error("a fragment ('#{0}') has no meaning in a netgear URI")]
    Fragment(String),
}

/// Strips `scheme://` (case-insensitive) from the start of `uri`.
fn strip_scheme<'a>(uri: &'a str, scheme: &str) -> Option<&'a str> {
    let head = uri.get(..scheme.len() + 3)?;
    let expected = format!("{scheme}://");
    head.eq_ignore_ascii_case(&expected)
        .then(|| &uri[scheme.len() + 3..])
}

impl NetGearUri {
    pub fn parse(uri: &str) -> Result<NetGearUri, UriError> {
        let (protocol, rest) = match strip_scheme(uri, SCHEME_IPC) {
            Some(rest) => (Protocol::Ipc, rest),
            None => (
                Protocol::Tcp,
                strip_scheme(uri, SCHEME_TCP).ok_or(UriError::Scheme)?,
            ),
        };
        if let Some((_, fragment)) = rest.split_once('#') {
            return Err(UriError::Fragment(fragment.to_owned()));
        }
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (address, port) = match protocol {
            Protocol::Tcp => parse_authority(location)?,
            Protocol::Ipc => parse_ipc_path(location)?,
        };
        Ok(NetGearUri {
            protocol,
            address,
            port,
            query: parse_query(query)?,
        })
    }

    /// The URI text; the port is always written, the query in the order given.
    pub fn format(&self) -> String {
        let port = self.port.unwrap_or(DEFAULT_PORT);
        let address = self.address.as_deref().unwrap_or("");
        let mut out = match self.protocol {
            Protocol::Tcp if address.contains(':') => {
                format!("{SCHEME_TCP}://[{}]:{port}", encode(address, ":"))
            }
            Protocol::Tcp => format!("{SCHEME_TCP}://{}:{port}", encode(address, "*")),
            Protocol::Ipc => format!("{SCHEME_IPC}://{}:{port}", encode(address, "/")),
        };
        for (i, (key, value)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(&encode(key, ""));
            out.push('=');
            out.push_str(&encode(value, ",/:"));
        }
        out
    }
}

/// `host[:port]`, `[v6][:port]` or empty, with an optional trailing `/`.
fn parse_authority(location: &str) -> Result<(Option<String>, Option<u16>), UriError> {
    let authority = location.strip_suffix('/').unwrap_or(location);
    if let Some(slash) = authority.find('/') {
        return Err(UriError::Path(authority[slash..].to_owned()));
    }
    if authority.contains('@') {
        return Err(UriError::Host(authority.to_owned()));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| UriError::Host(authority.to_owned()))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| UriError::Host(authority.to_owned()))?,
                ),
            };
            if host.is_empty() || !host.contains(':') {
                return Err(UriError::Host(authority.to_owned()));
            }
            (decode(host)?, port)
        }
        None => {
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            let host = decode(host)?;
            if host.contains(':') || host.contains('[') || host.contains(']') {
                return Err(UriError::Host(host));
            }
            (host, port)
        }
    };
    let port = port.map(parse_port).transpose()?;
    Ok(((!host.is_empty()).then_some(host), port))
}

/// `/path[:port]` of an IPC URI.
fn parse_ipc_path(location: &str) -> Result<(Option<String>, Option<u16>), UriError> {
    let (path, port) = match location.rsplit_once(':') {
        Some((path, port)) if !port.contains('/') => (path, Some(parse_port(port)?)),
        _ => (location, None),
    };
    let path = decode(path)?;
    if path.is_empty() {
        return Err(UriError::EmptyPath);
    }
    Ok((Some(path), port))
}

fn parse_port(text: &str) -> Result<u16, UriError> {
    addresses::parse_port(text).ok_or_else(|| UriError::Port(text.to_owned()))
}

fn parse_query(query: &str) -> Result<Vec<(String, String)>, UriError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| UriError::QueryPair(part.to_owned()))?;
        let key = decode(key)?;
        if key.is_empty() {
            return Err(UriError::QueryPair(part.to_owned()));
        }
        if URI_KEYS.contains(&key.as_str()) {
            return Err(UriError::UriKey(key));
        }
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(UriError::Duplicate(key));
        }
        pairs.push((key, decode(value)?));
    }
    Ok(pairs)
}

/// Percent-decodes `text` (a `+` stays a `+`: this is a URI, not a form).
pub fn decode(text: &str) -> Result<String, UriError> {
    let bad = || UriError::Escape(text.to_owned());
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let hex = text.get(i + 1..i + 3).ok_or_else(bad)?;
        out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Percent-encodes everything but unreserved characters and `keep`.
pub fn encode(text: &str, keep: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || b"-._~".contains(&b)
            || (b.is_ascii() && keep.as_bytes().contains(&b));
        match plain {
            true => out.push(char::from(b)),
            false => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The `uri` property of both elements.
pub fn uri_property() -> glib::ParamSpec {
    glib::ParamSpecString::builder("uri")
        .nick("URI")
        .blurb("netgear://host:port?property=value&… or netgear+ipc:///path:port?…; reads back the endpoint and every property not at its default")
        .mutable_ready()
        .build()
}

/// A refused URI as the GLib error GstURIHandler reports, naming the bad part.
fn uri_error(uri: &str, why: &dyn std::fmt::Display, kind: gst::URIError) -> glib::Error {
    glib::Error::new(kind, &format!("Invalid URI '{uri}': {why}"))
}

/// GstURIHandler's `set_uri` of both elements: sets `element`'s properties from `uri`.
///
/// The `URIHandlerImpl` of an element: the same for both but for the direction, the role
/// and the debug category; playbin and uridecodebin find the elements by it.
macro_rules! uri_handler {
    ($element:ty, $uri_type:ident, $role:expr, $category:expr) => {
        impl URIHandlerImpl for $element {
            const URI_TYPE: gst::URIType = gst::URIType::$uri_type;

            fn protocols() -> &'static [&'static str] {
                $crate::uri::PROTOCOLS
            }

            fn uri(&self) -> Option<String> {
                Some($crate::uri::element_uri(self.obj().upcast_ref()))
            }

            fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
                $crate::uri::set_uri(self.obj().upcast_ref(), $category, $role, uri)
            }
        }
    };
}
pub(crate) use uri_handler;

/// Only a URI that is not ours (scheme) or a change while running fails here. A netgear
/// URI with a bad part changes nothing and is kept, so that starting fails with an element
/// error naming the bad part: gst-launch-1.0's `! netgear://… !` drops set_uri's error
/// (it prints only "no sink element for URI"), while every tool shows element errors.
pub fn set_uri(
    element: &gst::Element,
    cat: gst::DebugCategory,
    role: Role,
    uri: &str,
) -> Result<(), glib::Error> {
    gst::debug!(cat, obj = element, "setting URI {uri}");
    match apply(element, role, uri) {
        Ok(()) => set_refused(element, None),
        Err(e) if e.matches(gst::URIError::UnsupportedProtocol) => return Err(e),
        Err(e) if e.matches(gst::URIError::BadState) => return Err(e),
        Err(e) => defer(element, cat, &e),
    }
    Ok(())
}

/// The `uri` property of both elements (setters cannot fail): a bad URI changes nothing
/// and makes starting fail naming the bad part; an empty one changes nothing.
pub fn set_uri_property(
    element: &gst::Element,
    cat: gst::DebugCategory,
    role: Role,
    value: &glib::Value,
) {
    let uri = crate::properties::string_value(value);
    if uri.is_empty() {
        return set_refused(element, None);
    }
    match apply(element, role, &uri) {
        Ok(()) => set_refused(element, None),
        Err(e) if e.matches(gst::URIError::BadState) => gst::error!(cat, obj = element, "{}", e),
        Err(e) => defer(element, cat, &e),
    }
}

/// Where an element keeps the text of the URI it could not apply, until a good one comes.
const REFUSED: &str = "netgear-refused-uri";
/// REFUSED's data is only replaced or read under this lock, so no reader sees it freed.
static REFUSED_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn set_refused(element: &gst::Element, why: Option<String>) {
    let _guard = crate::sync::lock(&REFUSED_LOCK);
    // SAFETY: only this module uses the key, always with an Option<String>, under the lock.
    unsafe { element.set_data(REFUSED, why) };
}

fn refused(element: &gst::Element) -> Option<String> {
    let _guard = crate::sync::lock(&REFUSED_LOCK);
    // SAFETY: as in set_refused; the value is cloned before the lock is released.
    unsafe {
        element
            .data::<Option<String>>(REFUSED)
            .and_then(|why| why.as_ref().clone())
    }
}

fn defer(element: &gst::Element, cat: gst::DebugCategory, error: &glib::Error) {
    gst::warning!(
        cat,
        obj = element,
        "{}; starting will fail",
        error.message()
    );
    set_refused(element, Some(error.message().to_owned()));
}

/// What both elements' start checks first: the last URI given was applied.
pub fn check_refused(element: &gst::Element) -> Result<(), gst::ErrorMessage> {
    match refused(element) {
        Some(why) => Err(gst::error_msg!(gst::ResourceError::Settings, ["{}", why])),
        None => Ok(()),
    }
}

/// Sets `element`'s properties from `uri`. Every value is checked before any is set, so a
/// refused URI changes nothing.
fn apply(element: &gst::Element, role: Role, uri: &str) -> Result<(), glib::Error> {
    if element.current_state() > gst::State::Ready {
        let why = "the URI can only change in the NULL or READY state";
        return Err(uri_error(uri, &why, gst::URIError::BadState));
    }
    let parsed = NetGearUri::parse(uri).map_err(|e| {
        let kind = match e {
            UriError::Scheme => gst::URIError::UnsupportedProtocol,
            _ => gst::URIError::BadUri,
        };
        uri_error(uri, &e, kind)
    })?;
    let values = uri_values(element, role, &parsed)
        .map_err(|why| uri_error(uri, &why, gst::URIError::BadUri))?;
    for (property, value) in &values {
        element.set_property_from_value(property, value);
    }
    Ok(())
}

/// The property values `parsed` sets: the endpoint's, then each query key's (a vidgear
/// option name in vidgear's units as the properties it stands for).
fn uri_values(
    element: &gst::Element,
    role: Role,
    parsed: &NetGearUri,
) -> Result<Vec<(String, glib::Value)>, QueryError> {
    let address = parsed
        .address
        .clone()
        .unwrap_or_else(|| default_address(role).to_owned());
    let mut values = vec![
        ("address".to_owned(), address.to_value()),
        (
            "port".to_owned(),
            u32::from(parsed.port.unwrap_or(DEFAULT_PORT)).to_value(),
        ),
        ("protocol".to_owned(), parsed.protocol.to_value()),
    ];
    // The key each property came from, to name both when two keys set one property.
    let mut keys: Vec<(String, &str)> = Vec::new();
    for (key, text) in &parsed.query {
        for (property, value_text) in query_pairs(role, key, text)? {
            let (property, value) = query_value(element, key, &property, &value_text, text)?;
            if let Some((_, first)) = keys.iter().find(|(p, _)| *p == property) {
                return Err(QueryError::Twice {
                    property,
                    first: (*first).to_owned(),
                    second: key.clone(),
                });
            }
            keys.push((property.clone(), key));
            values.push((property, value));
        }
    }
    Ok(values)
}

/// A query key as `(property, value)` pairs: vidgear's option names translated, any other
/// key as it is.
fn query_pairs(role: Role, key: &str, text: &str) -> Result<Vec<(String, String)>, QueryError> {
    match crate::vidgear_options::translate(role, key, text) {
        None => Ok(vec![(key.to_owned(), text.to_owned())]),
        Some(Ok(pairs)) => Ok(pairs
            .into_iter()
            .map(|(property, value)| (property.to_owned(), value))
            .collect()),
        Some(Err(e)) => Err(QueryError::Vidgear(e)),
    }
}

/// Why a query key's value cannot be set.
#[derive(Debug, thiserror::Error)]
enum QueryError {
    #[error("{element} has no settable property '{key}'")]
    NoProperty { element: String, key: String },
    #[error("'{value}' is not a valid value for {key}{}", hint(.valid))]
    BadValue {
        key: String,
        value: String,
        valid: Option<String>,
    },
    #[error("{property} is set twice, by {first} and by {second}")]
    Twice {
        property: String,
        first: String,
        second: String,
    },
    #[error(transparent)]
    Vidgear(#[from] crate::vidgear_options::VidgearOptionError),
}

fn hint(valid: &Option<String>) -> String {
    valid.as_ref().map(|v| format!(": {v}")).unwrap_or_default()
}

/// The values a property takes, as a user would type them; `None` for strings and the rest.
fn valid_values(pspec: &glib::ParamSpec) -> Option<String> {
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecEnum>() {
        let class = p.enum_class();
        let values: Vec<String> = class
            .values()
            .iter()
            .map(|v| format!("{} ({})", v.nick(), v.value()))
            .collect();
        return Some(format!("one of {}", values.join(", ")));
    }
    if pspec.is::<glib::ParamSpecBoolean>() {
        return Some("true or false".to_owned());
    }
    let range = |min: &dyn std::fmt::Display, max: &dyn std::fmt::Display| {
        Some(format!("a whole number from {min} to {max}"))
    };
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt>() {
        return range(&p.minimum(), &p.maximum());
    }
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt64>() {
        return range(&p.minimum(), &p.maximum());
    }
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecInt>() {
        return range(&p.minimum(), &p.maximum());
    }
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecInt64>() {
        return range(&p.minimum(), &p.maximum());
    }
    None
}

/// Property `property`'s canonical name and the value `text` gives it, parsed as
/// gst-launch does and in range. Errors name the query `key` (and the property, when a
/// vidgear name stands for it) with the value as the URI gave it (`given`).
fn query_value(
    element: &gst::Element,
    key: &str,
    property: &str,
    text: &str,
    given: &str,
) -> Result<(String, glib::Value), QueryError> {
    let settable = |p: &glib::ParamSpec| {
        let flags = p.flags();
        flags.contains(glib::ParamFlags::WRITABLE)
            && !flags.contains(glib::ParamFlags::CONSTRUCT_ONLY)
            && !NOT_IN_URI.contains(&p.name())
    };
    let pspec = element
        .find_property(property)
        .filter(settable)
        .ok_or_else(|| QueryError::NoProperty {
            element: element
                .factory()
                .map(|f| f.name().to_string())
                .unwrap_or_default(),
            key: key.to_owned(),
        })?;
    let bad = || QueryError::BadValue {
        key: match key == pspec.name() {
            true => key.to_owned(),
            false => format!("{key} ({})", pspec.name()),
        },
        value: given.to_owned(),
        valid: valid_values(&pspec),
    };
    let value = match pspec.value_type() {
        t if t == glib::Type::STRING => text.to_value(),
        _ => glib::Value::deserialize_with_pspec(text, &pspec).map_err(|_| bad())?,
    };
    if !in_range(&pspec, &value) {
        return Err(bad());
    }
    Ok((pspec.name().to_owned(), value))
}

/// Whether GObject would take `value` for `pspec` as it is (right type, in range).
fn in_range(pspec: &glib::ParamSpec, value: &glib::Value) -> bool {
    use glib::translate::{ToGlibPtr, ToGlibPtrMut};
    if !value.type_().is_a(pspec.value_type()) {
        return false;
    }
    let mut copy = value.clone();
    // SAFETY: both pointers are valid for the call; validation only edits the copy.
    let changed = unsafe {
        glib::gobject_ffi::g_param_value_validate(pspec.to_glib_none().0, copy.to_glib_none_mut().0)
    };
    changed == glib::ffi::GFALSE
}

/// A property's value as URI text: enums by nick, strings as they are.
fn value_text(value: &glib::Value) -> Option<String> {
    if value.type_() == glib::Type::STRING {
        return Some(
            value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .unwrap_or_default(),
        );
    }
    if let Some((_, enum_value)) = glib::EnumValue::from_value(value) {
        return Some(enum_value.nick().to_owned());
    }
    if let Ok(b) = value.get::<bool>() {
        return Some(b.to_string());
    }
    value.serialize().ok().map(|s| s.to_string())
}

/// The URI of what `element` will use: its endpoint, then every settable property that
/// is not at its default (as a new element of its kind has it: `constructed` may change
/// a base class's default, e.g. `do-timestamp`).
pub fn element_uri(element: &gst::Element) -> String {
    let fresh = element.factory().and_then(|f| f.create().build().ok());
    let protocol = element.property::<Protocol>("protocol");
    let port = element.property::<u32>("port");
    let address = element.property::<Option<String>>("address");
    let mut query = Vec::new();
    for pspec in element.list_properties().iter() {
        let flags = pspec.flags();
        let name = pspec.name();
        if !flags.contains(glib::ParamFlags::READWRITE)
            || flags.contains(glib::ParamFlags::CONSTRUCT_ONLY)
            || URI_KEYS.contains(&name)
            || NOT_IN_URI.contains(&name)
        {
            continue;
        }
        let current = value_text(&element.property_value(name));
        let default = match &fresh {
            Some(f) => value_text(&f.property_value(name)),
            None => value_text(pspec.default_value()),
        };
        if let Some(text) = current.filter(|c| Some(c) != default.as_ref()) {
            query.push((name.to_owned(), text));
        }
    }
    NetGearUri {
        protocol,
        address,
        port: u16::try_from(port).ok(),
        query,
    }
    .format()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(address: Option<&str>, port: Option<u16>, query: &[(&str, &str)]) -> NetGearUri {
        NetGearUri {
            protocol: Protocol::Tcp,
            address: address.map(str::to_owned),
            port,
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn parses_host_port_and_query() {
        let uri = "netgear://10.0.0.5:5566?pattern=req-rep&secure-mode=ironhouse&cert-dir=/x%20y&jpeg-compression=false";
        let expected = tcp(
            Some("10.0.0.5"),
            Some(5566),
            &[
                ("pattern", "req-rep"),
                ("secure-mode", "ironhouse"),
                ("cert-dir", "/x y"),
                ("jpeg-compression", "false"),
            ],
        );
        assert_eq!(NetGearUri::parse(uri), Ok(expected));
    }

    #[test]
    fn host_and_port_are_optional() {
        assert_eq!(NetGearUri::parse("netgear://"), Ok(tcp(None, None, &[])));
        assert_eq!(
            NetGearUri::parse("NetGear://:6000/"),
            Ok(tcp(None, Some(6000), &[]))
        );
        assert_eq!(
            NetGearUri::parse("netgear://*:6000"),
            Ok(tcp(Some("*"), Some(6000), &[]))
        );
        assert_eq!(
            NetGearUri::parse("netgear://camera.local"),
            Ok(tcp(Some("camera.local"), None, &[]))
        );
    }

    #[test]
    fn ipv6_hosts_go_in_brackets() {
        assert_eq!(
            NetGearUri::parse("netgear://[::1]:5555"),
            Ok(tcp(Some("::1"), Some(5555), &[]))
        );
        assert_eq!(
            NetGearUri::parse("netgear://[fe80::1%25eth0]"),
            Ok(tcp(Some("fe80::1%eth0"), None, &[]))
        );
        assert!(matches!(
            NetGearUri::parse("netgear://::1:5555"),
            Err(UriError::Host(_))
        ));
        assert!(matches!(
            NetGearUri::parse("netgear://[::1:5555"),
            Err(UriError::Host(_))
        ));
        assert!(matches!(
            NetGearUri::parse("netgear://[::1]5555"),
            Err(UriError::Host(_))
        ));
    }

    #[test]
    fn ipc_uris_carry_a_path_and_port() {
        let parsed = NetGearUri::parse("netgear+ipc:///tmp/my%20feed:5577?pattern=1").unwrap();
        assert_eq!(parsed.protocol, Protocol::Ipc);
        assert_eq!(parsed.address.as_deref(), Some("/tmp/my feed"));
        assert_eq!(parsed.port, Some(5577));
        assert_eq!(parsed.query, vec![("pattern".into(), "1".into())]);
        let no_port = NetGearUri::parse("netgear+ipc:///tmp/feed").unwrap();
        assert_eq!(
            (no_port.address.as_deref(), no_port.port),
            (Some("/tmp/feed"), None)
        );
        assert_eq!(
            NetGearUri::parse("netgear+ipc://"),
            Err(UriError::EmptyPath)
        );
    }

    #[test]
    fn refuses_bad_parts_by_name() {
        let err = |uri: &str| NetGearUri::parse(uri).unwrap_err();
        assert_eq!(err("tcp://host:5555"), UriError::Scheme);
        assert_eq!(err("netgear:/host"), UriError::Scheme);
        assert_eq!(err("netgear://h:0"), UriError::Port("0".into()));
        assert_eq!(err("netgear://h:65536"), UriError::Port("65536".into()));
        assert_eq!(err("netgear://h:+5"), UriError::Port("+5".into()));
        assert_eq!(err("netgear://h:"), UriError::Port("".into()));
        assert_eq!(err("netgear://h:5/feed"), UriError::Path("/feed".into()));
        assert_eq!(err("netgear://u@h"), UriError::Host("u@h".into()));
        assert_eq!(
            err("netgear://h?pattern"),
            UriError::QueryPair("pattern".into())
        );
        assert_eq!(err("netgear://h?=1"), UriError::QueryPair("=1".into()));
        assert_eq!(err("netgear://h?port=1"), UriError::UriKey("port".into()));
        assert_eq!(
            err("netgear://h?protocol=ipc"),
            UriError::UriKey("protocol".into())
        );
        assert_eq!(
            err("netgear://h?pattern=1&pattern=2"),
            UriError::Duplicate("pattern".into())
        );
        assert_eq!(err("netgear://h?a=%zz"), UriError::Escape("%zz".into()));
        assert_eq!(err("netgear://h?a=%4"), UriError::Escape("%4".into()));
        assert_eq!(err("netgear://h?a=%ff"), UriError::Escape("%ff".into()));
        assert_eq!(err("netgear://h#x"), UriError::Fragment("x".into()));
    }

    #[test]
    fn formats_what_it_parses() {
        for uri in [
            "netgear://10.0.0.5:5566?pattern=req-rep&cert-dir=/x%20y%26z&message=%7B%22a%22:1%7D",
            "netgear://[::1]:5555",
            "netgear://*:5555?ports=5566,5567",
            "netgear+ipc:///tmp/feed:5577?return-data=a%2Bb",
        ] {
            let parsed = NetGearUri::parse(uri).unwrap();
            assert_eq!(parsed.format(), uri);
            assert_eq!(NetGearUri::parse(&parsed.format()), Ok(parsed));
        }
    }

    #[test]
    fn percent_coding_round_trips_any_text() {
        for text in ["", "a b", "100%", "x&y=z?#", "ümlaut/ok", "+"] {
            assert_eq!(decode(&encode(text, "")).as_deref(), Ok(text));
        }
        assert_eq!(decode("a+b").as_deref(), Ok("a+b"));
    }
}
