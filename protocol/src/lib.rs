// SPDX-License-Identifier: MPL-2.0
//! vidgear's NetGear wire format (vidgear 0.3.6) without GStreamer and without sockets,
//! for the `netgear` plugin, its fuzz targets and its tools.
//!
//! The crate root holds the messages: frame headers, termination messages, receiver
//! replies and the raw array layout. Beside them: Python-compatible JSON in [`json`],
//! pixel rows between strides and channel orders in [`pixels`], the JPEG payload codec in
//! [`jpeg`], vidgear's CURVE key files (and Z85) in [`keys`], and port numbers and the
//! allow-list of client addresses in [`addresses`].
//!
//! Everything parsed here came off the network, so nothing panics and every size is
//! checked before it is used. `message` and returned `data` are kept as exact JSON text
//! (see [`json`]); the fixed keys are read with serde.

pub mod addresses;
pub mod jpeg;
pub mod json;
pub mod keys;
pub mod pixels;

pub use json::{JsonError, JsonText};

use serde::Serialize;
use serde_json::{Map, Value};
use std::io;

/// The smallest bound the transport puts on one message part, so that headers fit even
/// with a tiny `max-frame-bytes`; above it, `max-frame-bytes` bounds a header (and its
/// `message`). The parsers themselves take whatever size the transport let through.
pub const MAX_HEADER_BYTES: usize = 1 << 20;
/// Largest frame side we accept from a header: what GStreamer's own video elements take
/// (videoconvert refuses 32768), so a frame that passes here can go downstream.
pub const MAX_DIMENSION: usize = (1 << 15) - 1;

/// The string a receiver answers to a termination in pattern 1.
pub const TERMINATION_ACK: &str = "Termination signal successfully received at Client's end!";
/// The same answer in multi-server mode.
pub const TERMINATION_ACK_MULTISERVER: &str = "Termination signal successfully received at client!";

/// Why a message from the network was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("header is not JSON: {0}")]
    NotJson(#[source] JsonError),
    #[error("header is not a JSON object")]
    NotAnObject,
    #[error("header lacks key '{0}'")]
    MissingKey(&'static str),
    #[error("header key '{0}' has an invalid value {1}")]
    BadValue(&'static str, String),
    #[error("unsupported dtype '{0}'")]
    UnsupportedDtype(String),
    #[error("big-endian dtype '{0}': only little-endian arrays are supported")]
    BigEndianDtype(String),
    #[error("unsupported shape {0}")]
    BadShape(String),
    #[error("payload is {actual} bytes, header describes {expected}")]
    PayloadSize { expected: usize, actual: usize },
    #[error("message has {0} parts, a frame has 2")]
    PartCount(usize),
}

/// numpy element types (every one vidgear can send raw, except bool and complex).
/// Their numpy names are also NNStreamer's tensor type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    F32,
    F64,
}

/// Each dtype with its `dtype.str` code without the byte-order mark and its one-letter
/// `dtype.char`, the other spellings numpy has for it.
const DTYPE_CODES: [(Dtype, &str, &str); 11] = [
    (Dtype::U8, "u1", "B"),
    (Dtype::I8, "i1", "b"),
    (Dtype::U16, "u2", "H"),
    (Dtype::I16, "i2", "h"),
    (Dtype::U32, "u4", "I"),
    (Dtype::I32, "i4", "i"),
    (Dtype::U64, "u8", "Q"),
    (Dtype::I64, "i8", "q"),
    (Dtype::F16, "f2", "e"),
    (Dtype::F32, "f4", "f"),
    (Dtype::F64, "f8", "d"),
];

impl Dtype {
    pub const ALL: [Dtype; 11] = [
        Dtype::U8,
        Dtype::I8,
        Dtype::U16,
        Dtype::I16,
        Dtype::U32,
        Dtype::I32,
        Dtype::U64,
        Dtype::I64,
        Dtype::F16,
        Dtype::F32,
        Dtype::F64,
    ];

    /// numpy's `str(dtype)`, which vidgear writes in headers.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::U8 => "uint8",
            Dtype::I8 => "int8",
            Dtype::U16 => "uint16",
            Dtype::I16 => "int16",
            Dtype::U32 => "uint32",
            Dtype::I32 => "int32",
            Dtype::U64 => "uint64",
            Dtype::I64 => "int64",
            Dtype::F16 => "float16",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }

    pub fn item_size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::U16 | Dtype::I16 | Dtype::F16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }

    /// The dtype of a numpy name (`"float32"`), exactly.
    pub fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == name)
    }

    /// A header's dtype: numpy's `str(dtype)` (`"uint8"`), and also its `dtype.str`
    /// (`"|u1"`, `"<f4"`) and `dtype.char` (`"B"`) forms. Big-endian arrays (`">u2"`,
    /// which `str(dtype)` gives for them) are refused: payloads are little-endian here.
    fn parse(name: &str) -> Result<Self, ProtocolError> {
        if name.starts_with(['>', '!']) {
            return Err(ProtocolError::BigEndianDtype(truncate(name)));
        }
        let bare = name.strip_prefix(['<', '|', '=']).unwrap_or(name);
        if let Some(dtype) = Self::from_name(name) {
            return Ok(dtype);
        }
        // A byte-order mark only goes with the code form ("<f4"), not the letter ("<f").
        let marked = bare.len() != name.len();
        DTYPE_CODES
            .iter()
            .find(|(_, code, letter)| *code == bare || (!marked && *letter == bare))
            .map(|(dtype, _, _)| *dtype)
            .ok_or_else(|| ProtocolError::UnsupportedDtype(truncate(name)))
    }
}

/// The shape of a raw frame: `[h, w]` (2-D) or `[h, w, c]` (any channel count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawLayout {
    pub dtype: Dtype,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// Sent as `[h, w]` rather than `[h, w, 1]`.
    pub two_d: bool,
}

impl RawLayout {
    /// A video layout: one channel goes as a 2-D array, as OpenCV's gray frames do.
    pub fn new(dtype: Dtype, height: usize, width: usize, channels: usize) -> Self {
        RawLayout {
            dtype,
            height,
            width,
            channels,
            two_d: channels == 1,
        }
    }

    /// Validates a shape read from a header.
    pub fn from_shape(dtype: Dtype, shape: &[Value]) -> Result<Self, ProtocolError> {
        let bad = || ProtocolError::BadShape(truncate(&Value::from(shape.to_vec()).to_string()));
        let dims: Vec<usize> = shape
            .iter()
            .map(|v| {
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(bad)
            })
            .collect::<Result<_, _>>()?;
        Self::from_dims(dtype, &dims).ok_or_else(bad)
    }

    /// A numpy shape `[h, w]` or `[h, w, c]`: every side 1..=MAX_DIMENSION and the byte
    /// size representable (checked, so a hostile shape cannot overflow it).
    pub fn from_dims(dtype: Dtype, dims: &[usize]) -> Option<Self> {
        let (height, width, channels, two_d) = match dims {
            [h, w] => (*h, *w, 1, true),
            [h, w, c] => (*h, *w, *c, false),
            _ => return None,
        };
        let sides_ok = [height, width, channels]
            .iter()
            .all(|d| (1..=MAX_DIMENSION).contains(d));
        let bytes = height
            .checked_mul(width)
            .and_then(|n| n.checked_mul(channels))
            .and_then(|n| n.checked_mul(dtype.item_size()))
            .filter(|n| isize::try_from(*n).is_ok());
        (sides_ok && bytes.is_some()).then_some(RawLayout {
            dtype,
            height,
            width,
            channels,
            two_d,
        })
    }

    /// What GStreamer video formats can carry: uint8 with 1, 3 or 4 channels (gray, BGR,
    /// BGRA) and one-channel uint16 (GRAY16_LE). Everything else travels as a tensor.
    pub fn is_video(&self) -> bool {
        match self.dtype {
            Dtype::U8 => matches!(self.channels, 1 | 3 | 4),
            Dtype::U16 => self.channels == 1,
            _ => false,
        }
    }

    pub fn shape(&self) -> Vec<usize> {
        if self.two_d {
            vec![self.height, self.width]
        } else {
            vec![self.height, self.width, self.channels]
        }
    }

    /// Bytes of one packed row (saturating: a layout from `from_dims` never saturates).
    pub fn row_bytes(&self) -> usize {
        self.width
            .saturating_mul(self.channels)
            .saturating_mul(self.dtype.item_size())
    }

    /// Bytes of the packed frame (saturating, like `row_bytes`).
    pub fn frame_bytes(&self) -> usize {
        self.row_bytes().saturating_mul(self.height)
    }
}

/// The `compression` dict of a JPEG frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Compression {
    pub dct: bool,
    pub ups: bool,
    pub colorspace: String,
}

/// What the payload part holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    Raw(RawLayout),
    Jpeg(Compression),
}

/// A parsed frame header.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameHeader {
    /// The sender's port (multi-server mode).
    pub port: Option<u16>,
    pub payload: PayloadKind,
    /// `None` when absent, null or falsy, as vidgear treats it.
    pub message: Option<JsonText>,
    /// Our sink's numbering (`SEQUENCE_KEY`); vidgear senders send none.
    pub sequence: Option<Sequence>,
    /// When the frame was captured, in nanoseconds since the UNIX epoch on the sender's
    /// clock ([`CAPTURE_TIME_KEY`]); vidgear does not send it.
    pub capture_time_ns: Option<u64>,
}

/// The header key of `Sequence`. vidgear's receiver reads only the keys it knows, so the
/// extra key is harmless there.
pub const SEQUENCE_KEY: &str = "netgear_sequence";

/// Our sink's numbering of the frames of one stream, written as `["<stream, 16 hex
/// digits>", number]`: a receiver recognises a frame sent again on a new connection, or
/// delivered late by an abandoned one. The stream id is random per start, so a restarted
/// sender is never taken for an old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sequence {
    pub stream: u64,
    pub number: u64,
}

impl Sequence {
    /// The first frame of a new stream with a random id.
    pub fn start() -> Self {
        Sequence {
            stream: random_bits(),
            number: 0,
        }
    }

    /// The frame after this one.
    pub fn next(self) -> Self {
        Sequence {
            number: self.number.wrapping_add(1),
            ..self
        }
    }

    fn parse(v: &Value) -> Result<Self, ProtocolError> {
        let parsed = match v.as_array().map(Vec::as_slice) {
            Some([Value::String(id), Value::Number(n)]) if id.len() == 16 => {
                u64::from_str_radix(id, 16)
                    .ok()
                    .zip(n.as_u64())
                    .map(|(stream, number)| Sequence { stream, number })
            }
            _ => None,
        };
        parsed.ok_or_else(|| bad_value("netgear_sequence", v))
    }

    fn to_json(self) -> Vec<u8> {
        to_python_json(&(format!("{:016x}", self.stream), self.number))
    }
}

/// Adds `sequence` to a header written by `encode_frame_header`, as its last key.
pub fn add_sequence(header: &mut Vec<u8>, sequence: Sequence) {
    append_member(header, SEQUENCE_KEY, &sequence.to_json());
}

/// A first message part from a sender.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Frame(FrameHeader),
    Terminate { port: Option<u16> },
}

/// Parses the first part of a sender's message.
pub fn parse_header(bytes: &[u8]) -> Result<Incoming, ProtocolError> {
    let (object, message) = parse_object(bytes, "message")?;
    let port = match object.get("port") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_port(v)?),
    };
    let terminate = match object.get("terminate_flag") {
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(bad_value("terminate_flag", other)),
        None => return Err(ProtocolError::MissingKey("terminate_flag")),
    };
    if terminate {
        return Ok(Incoming::Terminate { port });
    }
    let payload = match object.get("compression") {
        Some(Value::Bool(false)) | Some(Value::Null) => {
            let dtype = match object.get("dtype") {
                Some(Value::String(s)) => Dtype::parse(s)?,
                Some(other) => return Err(bad_value("dtype", other)),
                None => return Err(ProtocolError::MissingKey("dtype")),
            };
            let shape = match object.get("shape") {
                Some(Value::Array(a)) => a,
                Some(other) => return Err(bad_value("shape", other)),
                None => return Err(ProtocolError::MissingKey("shape")),
            };
            PayloadKind::Raw(RawLayout::from_shape(dtype, shape)?)
        }
        Some(Value::Object(c)) => PayloadKind::Jpeg(parse_compression(c)?),
        Some(other) => return Err(bad_value("compression", other)),
        None => return Err(ProtocolError::MissingKey("compression")),
    };
    let message = message.filter(JsonText::is_truthy);
    let sequence = object.get(SEQUENCE_KEY).map(Sequence::parse).transpose()?;
    Ok(Incoming::Frame(FrameHeader {
        port,
        payload,
        message,
        sequence,
        capture_time_ns: parse_capture_time(&object)?,
    }))
}

fn parse_compression(c: &Map<String, Value>) -> Result<Compression, ProtocolError> {
    let flag = |key: &'static str| match c.get(key) {
        Some(Value::Bool(b)) => Ok(*b),
        None | Some(Value::Null) => Ok(false),
        Some(other) => Err(bad_value(key, other)),
    };
    let colorspace = match c.get("colorspace") {
        Some(Value::String(s)) if s.len() <= 8 => s.to_ascii_uppercase(),
        Some(other) => return Err(bad_value("colorspace", other)),
        None => "BGR".to_owned(),
    };
    Ok(Compression {
        dct: flag("dct")?,
        ups: flag("ups")?,
        colorspace,
    })
}

/// The keys of headers and replies we read; any other key is checked as JSON and skipped.
const KNOWN_KEYS: [&str; 10] = [
    SEQUENCE_KEY,
    "port",
    "terminate_flag",
    "compression",
    "dtype",
    "shape",
    "return_type",
    "array_dtype",
    "array_shape",
    CAPTURE_TIME_KEY,
];

/// A header's capture time, if it has one: a whole number of nanoseconds up to
/// [`MAX_CAPTURE_TIME_NS`].
fn parse_capture_time(object: &Map<String, Value>) -> Result<Option<u64>, ProtocolError> {
    match object.get(CAPTURE_TIME_KEY) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|ns| *ns <= MAX_CAPTURE_TIME_NS)
            .map(Some)
            .ok_or_else(|| bad_value(CAPTURE_TIME_KEY, v)),
    }
}

/// Reads a header or reply object: the known keys as serde values, and `raw_key`
/// (`message` or `data`) as exact text. Python's rules: the last of repeated keys wins.
fn parse_object(
    bytes: &[u8],
    raw_key: &str,
) -> Result<(Map<String, Value>, Option<JsonText>), ProtocolError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| ProtocolError::NotJson(JsonError::NotUtf8))?;
    let members = json::object_members(text)
        .map_err(ProtocolError::NotJson)?
        .ok_or(ProtocolError::NotAnObject)?;
    let mut known = Map::new();
    let mut raw = None;
    for (key, value) in members {
        if key == raw_key {
            raw = Some(JsonText::from_valid(value));
        } else if let Some(name) = KNOWN_KEYS.iter().find(|k| **k == key) {
            let parsed = serde_json::from_str(value)
                .map_err(|_| ProtocolError::BadValue(name, truncate(value)))?;
            known.insert(key.into_owned(), parsed);
        }
    }
    Ok((known, raw))
}

/// A `port` key: vidgear writes the number as a string (surrounding spaces are let pass);
/// a JSON number is taken too. Both follow [`addresses::parse_port`] (1 to 65535).
fn parse_port(v: &Value) -> Result<u16, ProtocolError> {
    let parsed = match v {
        Value::Number(n) => addresses::parse_port(&n.to_string()),
        Value::String(s) => addresses::parse_port(s.trim()),
        _ => None,
    };
    parsed.ok_or_else(|| bad_value("port", v))
}

fn bad_value(key: &'static str, v: &Value) -> ProtocolError {
    ProtocolError::BadValue(key, truncate(&v.to_string()))
}

/// Error texts quote network input; keep them short.
fn truncate(s: &str) -> String {
    const LIMIT: usize = 64;
    if s.len() <= LIMIT {
        return s.to_owned();
    }
    let mut end = LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[derive(Serialize)]
#[serde(untagged)]
enum CompressionField<'a> {
    Off(bool),
    On(&'a Compression),
}

#[derive(Serialize)]
#[serde(untagged)]
enum ShapeField {
    Jpeg(&'static str),
    Raw(Vec<usize>),
}

/// The `compression`, `dtype` and `shape` values of a payload, as vidgear writes them.
fn payload_fields(payload: &PayloadKind) -> [Vec<u8>; 3] {
    match payload {
        PayloadKind::Raw(layout) => [
            to_python_json(&CompressionField::Off(false)),
            to_python_json(&layout.dtype.name()),
            to_python_json(&ShapeField::Raw(layout.shape())),
        ],
        PayloadKind::Jpeg(c) => [
            to_python_json(&CompressionField::On(c)),
            to_python_json(&""),
            to_python_json(&ShapeField::Jpeg("")),
        ],
    }
}

/// Writes `{"key": value, ...}` with Python's separators from encoded values (so exact
/// JSON text can be placed as it is), after vidgear's `"port"` (a string) where there is one.
fn python_object(port: Option<u16>, members: &[(&str, &[u8])]) -> Vec<u8> {
    let port = port.map(|p| to_python_json(&p.to_string()));
    let port_member = port.as_deref().map(|p| ("port", p));
    let members: Vec<(&str, &[u8])> = port_member
        .into_iter()
        .chain(members.iter().copied())
        .collect();
    let size: usize = members.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
    let mut out = Vec::with_capacity(size + 2);
    out.push(b'{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\": ");
        out.extend_from_slice(value);
    }
    out.push(b'}');
    out
}

/// Adds `"key": value` (encoded JSON) at the end of an object written by `python_object`.
fn append_member(object: &mut Vec<u8>, key: &str, value: &[u8]) {
    // Only an encoded object gets the member; anything else is left as it is.
    if object.last() != Some(&b'}') {
        return;
    }
    object.pop();
    if object.len() > 1 {
        object.extend_from_slice(b", ");
    }
    object.push(b'"');
    object.extend_from_slice(key.as_bytes());
    object.extend_from_slice(b"\": ");
    object.extend_from_slice(value);
    object.push(b'}');
}

/// Writes a frame header with vidgear's keys, order and spacing.
pub fn encode_frame_header(
    port: Option<u16>,
    payload: &PayloadKind,
    message: &JsonText,
    pattern: u8,
) -> Vec<u8> {
    let [compression, dtype, shape] = payload_fields(payload);
    let pattern = to_python_json(&pattern.to_string());
    let members: [(&str, &[u8]); 6] = [
        ("terminate_flag", b"false"),
        ("compression", &compression),
        ("message", message.as_str().as_bytes()),
        ("pattern", &pattern),
        ("dtype", &dtype),
        ("shape", &shape),
    ];
    python_object(port, &members)
}

/// The header key our sender adds for each frame's capture time: an integer, nanoseconds
/// since the UNIX epoch. vidgear's receiver reads its keys by name and ignores this one.
pub const CAPTURE_TIME_KEY: &str = "capture_time_ns";
/// The latest capture time a header may carry: signed 64-bit nanoseconds (the year 2262),
/// what GStreamer's clock times and the delays computed from capture times hold.
pub const MAX_CAPTURE_TIME_NS: u64 = i64::MAX as u64;

/// Adds the capture time to a header from [`encode_frame_header`], as its last key.
pub fn append_capture_time(header: &mut Vec<u8>, capture_time_ns: u64) {
    append_member(
        header,
        CAPTURE_TIME_KEY,
        capture_time_ns.to_string().as_bytes(),
    );
}

#[derive(Serialize)]
struct TerminationOut {
    terminate_flag: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<String>,
}

/// The one-part message a sender sends when it closes.
pub fn encode_termination(port: Option<u16>) -> Vec<u8> {
    to_python_json(&TerminationOut {
        terminate_flag: true,
        port: port.map(|p| p.to_string()),
    })
}

/// The plain acknowledgement of a receiver outside bidirectional / multi-client mode.
pub fn encode_ack(device_id: &str) -> Vec<u8> {
    format!("Data received on device: {device_id} !").into_bytes()
}

/// The JSON reply of a bidirectional or multi-client receiver carrying plain data.
pub fn encode_data_reply(port: Option<u16>, data: &JsonText) -> Vec<u8> {
    let return_type = to_python_json(&data.python_type_name());
    let members: [(&str, &[u8]); 2] = [
        ("return_type", &return_type),
        ("data", data.as_str().as_bytes()),
    ];
    python_object(port, &members)
}

#[derive(Serialize)]
struct FrameReplyOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<String>,
    return_type: &'static str,
    compression: CompressionField<'a>,
    array_dtype: &'static str,
    array_shape: ShapeField,
    data: Value,
}

/// The first part of a reply that returns a frame (vidgear's ndarray return); the frame
/// bytes follow as the second part.
pub fn encode_frame_reply(port: Option<u16>, payload: &PayloadKind) -> Vec<u8> {
    let (compression, array_dtype, array_shape) = match payload {
        PayloadKind::Raw(layout) => (
            CompressionField::Off(false),
            layout.dtype.name(),
            ShapeField::Raw(layout.shape()),
        ),
        PayloadKind::Jpeg(c) => (CompressionField::On(c), "", ShapeField::Jpeg("")),
    };
    to_python_json(&FrameReplyOut {
        port: port.map(|p| p.to_string()),
        return_type: "ndarray",
        compression,
        array_dtype,
        array_shape,
        data: Value::Null,
    })
}

/// A receiver's reply as the sender sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A plain text acknowledgement (or the termination answer).
    Text(String),
    /// JSON data returned by a bidirectional or multi-client receiver, as exact text.
    Data { port: Option<u16>, data: JsonText },
    /// A returned frame; its payload follows in the second part.
    Frame {
        port: Option<u16>,
        payload: PayloadKind,
    },
}

/// Parses the first part of a receiver's reply.
pub fn parse_reply(bytes: &[u8]) -> Result<Reply, ProtocolError> {
    if bytes.first() != Some(&b'{') {
        return Ok(Reply::Text(String::from_utf8_lossy(bytes).into_owned()));
    }
    let (object, data) = parse_object(bytes, "data")?;
    let port = match object.get("port") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_port(v)?),
    };
    let return_type = match object.get("return_type") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(bad_value("return_type", other)),
        None => return Err(ProtocolError::MissingKey("return_type")),
    };
    if return_type != "ndarray" {
        let data = data.unwrap_or_default();
        return Ok(Reply::Data { port, data });
    }
    let payload = match object.get("compression") {
        Some(Value::Object(c)) => PayloadKind::Jpeg(parse_compression(c)?),
        _ => {
            let dtype = match object.get("array_dtype") {
                Some(Value::String(s)) => Dtype::parse(s)?,
                Some(other) => return Err(bad_value("array_dtype", other)),
                None => return Err(ProtocolError::MissingKey("array_dtype")),
            };
            match object.get("array_shape") {
                Some(Value::Array(a)) => PayloadKind::Raw(RawLayout::from_shape(dtype, a)?),
                Some(other) => return Err(bad_value("array_shape", other)),
                None => return Err(ProtocolError::MissingKey("array_shape")),
            }
        }
    };
    Ok(Reply::Frame { port, payload })
}

/// Checks a raw payload against its header before anything is allocated for it.
pub fn check_raw_payload(layout: &RawLayout, payload_len: usize) -> Result<(), ProtocolError> {
    let expected = layout.frame_bytes();
    if expected != payload_len {
        return Err(ProtocolError::PayloadSize {
            expected,
            actual: payload_len,
        });
    }
    Ok(())
}

/// serde_json formatter that writes what Python's `json.dumps` writes by default:
/// `", "` and `": "` separators and non-ASCII escaped as `\uXXXX`.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        write_item_separator(w, first)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        write_item_separator(w, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.is_ascii() {
            return w.write_all(fragment.as_bytes());
        }
        let mut units = [0u16; 2];
        for ch in fragment.chars() {
            if ch.is_ascii() {
                w.write_all(&[ch as u8])?;
            } else {
                for unit in ch.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Python's `", "` between array items and object members: before every one but the first.
fn write_item_separator<W: ?Sized + io::Write>(w: &mut W, first: bool) -> io::Result<()> {
    if first {
        Ok(())
    } else {
        w.write_all(b", ")
    }
}

fn to_python_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(192);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Serializing our own structs and serde_json values into a Vec cannot fail.
    if value.serialize(&mut ser).is_err() {
        out.clear();
        out.extend_from_slice(b"{}");
    }
    out
}

/// 64 random bits. RandomState is seeded from the OS's randomness; no need for a rand crate.
fn random_bits() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// An 8-character `[A-Z0-9]` id like vidgear's, for the receiver's acknowledgement.
pub fn device_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bits = random_bits();
    (0..8)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char;
            bits /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixels::{copy_rows, pack_pixels, PixelMap};
    use serde_json::json;

    const VIDGEAR_JPEG: &str = r#"{"terminate_flag": false, "compression": {"dct": true, "ups": false, "colorspace": "BGR"}, "message": null, "pattern": "0", "dtype": "", "shape": ""}"#;
    const VIDGEAR_RAW: &str = r#"{"terminate_flag": false, "compression": false, "message": "hello", "pattern": "0", "dtype": "uint8", "shape": [2, 3, 3]}"#;
    const VIDGEAR_MULTI: &str = r#"{"port": "5602", "terminate_flag": false, "compression": false, "message": {"k": [1, 2.5, null]}, "pattern": "1", "dtype": "uint8", "shape": [2, 3, 3]}"#;

    fn bgr(h: usize, w: usize) -> PayloadKind {
        PayloadKind::Raw(RawLayout::new(Dtype::U8, h, w, 3))
    }

    #[test]
    fn writes_vidgear_headers_byte_for_byte() {
        let jpeg = PayloadKind::Jpeg(Compression {
            dct: true,
            ups: false,
            colorspace: "BGR".into(),
        });
        assert_eq!(
            encode_frame_header(None, &jpeg, &JsonText::null(), 0),
            VIDGEAR_JPEG.as_bytes()
        );
        assert_eq!(
            encode_frame_header(None, &bgr(2, 3), &JsonText::string("hello"), 0),
            VIDGEAR_RAW.as_bytes()
        );
        let message = JsonText::parse(r#"{"k":[1,2.5,null]}"#).unwrap();
        assert_eq!(
            encode_frame_header(Some(5602), &bgr(2, 3), &message, 1),
            VIDGEAR_MULTI.as_bytes()
        );
    }

    #[test]
    fn parses_vidgear_captures() {
        let Incoming::Frame(h) = parse_header(VIDGEAR_JPEG.as_bytes()).unwrap() else {
            panic!("not a frame")
        };
        assert_eq!(h.port, None);
        assert_eq!(h.message, None);
        assert_eq!(
            h.payload,
            PayloadKind::Jpeg(Compression {
                dct: true,
                ups: false,
                colorspace: "BGR".into()
            })
        );

        let Incoming::Frame(h) = parse_header(VIDGEAR_RAW.as_bytes()).unwrap() else {
            panic!("not a frame")
        };
        assert_eq!(h.payload, bgr(2, 3));
        assert_eq!(h.message, Some(JsonText::string("hello")));

        let Incoming::Frame(h) = parse_header(VIDGEAR_MULTI.as_bytes()).unwrap() else {
            panic!("not a frame")
        };
        assert_eq!(h.port, Some(5602));
        assert_eq!(h.message.unwrap().as_str(), r#"{"k": [1, 2.5, null]}"#);
    }

    #[test]
    fn compact_json_and_other_key_orders_parse_alike() {
        let compact = r#"{"shape":[2,3,3],"dtype":"uint8","pattern":"0","message":"hello","compression":false,"terminate_flag":false}"#;
        assert_eq!(
            parse_header(compact.as_bytes()).unwrap(),
            parse_header(VIDGEAR_RAW.as_bytes()).unwrap()
        );
        let numeric_port = r#"{"port":5602,"terminate_flag":false,"compression":false,"message":null,"pattern":"1","dtype":"uint8","shape":[4,5]}"#;
        let Incoming::Frame(h) = parse_header(numeric_port.as_bytes()).unwrap() else {
            panic!("not a frame")
        };
        assert_eq!(h.port, Some(5602));
        assert_eq!(
            h.payload,
            PayloadKind::Raw(RawLayout::new(Dtype::U8, 4, 5, 1))
        );
    }

    #[test]
    fn termination_messages() {
        assert_eq!(encode_termination(None), br#"{"terminate_flag": true}"#);
        assert_eq!(
            encode_termination(Some(5602)),
            br#"{"terminate_flag": true, "port": "5602"}"#
        );
        assert_eq!(
            parse_header(br#"{"terminate_flag": true, "port": "5602"}"#).unwrap(),
            Incoming::Terminate { port: Some(5602) }
        );
        assert_eq!(
            parse_header(br#"{"terminate_flag":true}"#).unwrap(),
            Incoming::Terminate { port: None }
        );
    }

    #[test]
    fn falsy_messages_count_as_none() {
        for m in ["0", "\"\"", "false", "[]", "{}", "null", "0.0"] {
            let text = format!(
                r#"{{"terminate_flag": false, "compression": false, "message": {m}, "pattern": "0", "dtype": "uint8", "shape": [1, 1]}}"#
            );
            let Incoming::Frame(h) = parse_header(text.as_bytes()).unwrap() else {
                panic!("not a frame")
            };
            assert_eq!(h.message, None, "message {m}");
        }
    }

    #[test]
    fn non_ascii_is_escaped_like_python() {
        let payload = bgr(1, 1);
        let header = encode_frame_header(None, &payload, &JsonText::string("héllo 𝄞"), 0);
        let text = String::from_utf8(header).unwrap();
        assert!(
            text.contains(r#""message": "h\u00e9llo \ud834\udd1e""#),
            "{text}"
        );
        let Incoming::Frame(h) = parse_header(text.as_bytes()).unwrap() else {
            panic!("not a frame")
        };
        assert_eq!(h.message.and_then(|m| m.to_value()), Some(json!("héllo 𝄞")));
    }

    #[test]
    fn a_sequence_goes_last_in_our_header_and_is_read_back() {
        let mut header = encode_frame_header(None, &bgr(2, 3), &JsonText::null(), 0);
        let sequence = Sequence {
            stream: 0xff,
            number: 7,
        };
        add_sequence(&mut header, sequence);
        let text = String::from_utf8(header.clone()).unwrap();
        assert!(
            text.ends_with(r#""shape": [2, 3, 3], "netgear_sequence": ["00000000000000ff", 7]}"#),
            "{text}"
        );
        let Ok(Incoming::Frame(parsed)) = parse_header(&header) else {
            panic!("{text}")
        };
        assert_eq!(parsed.sequence, Some(sequence));
        assert_eq!(sequence.next().number, 8);
        let Ok(Incoming::Frame(vidgear)) = parse_header(VIDGEAR_RAW.as_bytes()) else {
            panic!()
        };
        assert_eq!(vidgear.sequence, None);
    }

    #[test]
    fn every_stream_gets_its_own_random_id_from_zero() {
        let (a, b) = (Sequence::start(), Sequence::start());
        assert_ne!(a.stream, b.stream);
        assert_eq!((a.number, b.number), (0, 0));
    }

    #[test]
    fn rejects_a_malformed_sequence() {
        let header = |value: &str| {
            format!(
                r#"{{"terminate_flag": false, "compression": false, "message": null, "pattern": "0", "dtype": "uint8", "shape": [2, 3, 3], "netgear_sequence": {value}}}"#
            )
        };
        assert!(parse_header(header(r#"["00000000000000ff", 1]"#).as_bytes()).is_ok());
        for value in [
            r#""00000000000000ff""#,
            r#"["ff", 1]"#,
            r#"["00000000000000fg", 1]"#,
            r#"["00000000000000ff", -1]"#,
            r#"["00000000000000ff", 1.5]"#,
            r#"["00000000000000ff", 1, 2]"#,
            "null",
        ] {
            assert!(
                matches!(
                    parse_header(header(value).as_bytes()),
                    Err(ProtocolError::BadValue("netgear_sequence", _))
                ),
                "accepted {value}"
            );
        }
    }

    #[test]
    fn rejects_malformed_headers() {
        let cases: &[&[u8]] = &[
            b"",
            b"not json",
            b"[1, 2]",
            br#"{"terminate_flag": "yes"}"#,
            br#"{"compression": false}"#,
            br#"{"terminate_flag": false, "compression": false, "dtype": "complex64", "shape": [2, 2]}"#,
            br#"{"terminate_flag": false, "compression": false, "dtype": ">f8", "shape": [2, 2]}"#,
            br#"{"terminate_flag": false, "compression": false, "dtype": "float32", "shape": [2, 2, 0]}"#,
            br#"{"terminate_flag": false, "compression": false, "dtype": "float64", "shape": [2, 2, 40000]}"#,
            br#"{"terminate_flag": false, "compression": false, "dtype": "uint8", "shape": [2, 2, 2, 2]}"#,
            br#"{"terminate_flag": false, "compression": false, "dtype": "uint8", "shape": [0, 2]}"#,
            br#"{"terminate_flag": false, "compression": false, "dtype": "uint8", "shape": [-1, 2]}"#,
            br#"{"terminate_flag": false, "compression": false, "dtype": "uint8", "shape": [99999999, 2]}"#,
            br#"{"terminate_flag": false, "compression": false, "dtype": "uint8", "shape": [2]}"#,
            br#"{"terminate_flag": false, "compression": false, "dtype": "uint8", "shape": ""}"#,
            br#"{"terminate_flag": false, "compression": 7, "dtype": "", "shape": ""}"#,
            br#"{"port": "nope", "terminate_flag": true}"#,
            br#"{"port": 70000, "terminate_flag": true}"#,
            br#"{"port": 0, "terminate_flag": true}"#,
            br#"{"port": "+5602", "terminate_flag": true}"#,
        ];
        for case in cases {
            assert!(
                parse_header(case).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn every_numpy_dtype_spelling_is_read_and_big_endian_refused() {
        let spellings = [
            ("float32", Dtype::F32),
            ("<f4", Dtype::F32),
            ("=f4", Dtype::F32),
            ("f4", Dtype::F32),
            ("f", Dtype::F32),
            ("|i1", Dtype::I8),
            ("int8", Dtype::I8),
            ("<i2", Dtype::I16),
            ("e", Dtype::F16),
            ("float16", Dtype::F16),
            ("<u4", Dtype::U32),
            ("int32", Dtype::I32),
            ("d", Dtype::F64),
            ("i8", Dtype::I64),
            ("uint64", Dtype::U64),
        ];
        for (name, dtype) in spellings {
            assert_eq!(Dtype::parse(name), Ok(dtype), "{name}");
        }
        for dtype in Dtype::ALL {
            assert_eq!(Dtype::parse(dtype.name()), Ok(dtype));
        }
        for name in [">f4", ">u2", "!i4", ">uint16"] {
            assert_eq!(
                Dtype::parse(name),
                Err(ProtocolError::BigEndianDtype(name.into()))
            );
        }
        for name in ["bool", "complex64", "<f", "object", "", "float"] {
            assert!(matches!(
                Dtype::parse(name),
                Err(ProtocolError::UnsupportedDtype(_))
            ));
        }
    }

    #[test]
    fn any_channel_count_and_dtype_is_a_layout_and_video_stays_video() {
        let parse = |text: &str| match parse_header(text.as_bytes()) {
            Ok(Incoming::Frame(FrameHeader {
                payload: PayloadKind::Raw(layout),
                ..
            })) => layout,
            other => panic!("{text}: {other:?}"),
        };
        let header = |dtype: &str, shape: &str| {
            format!(
                r#"{{"terminate_flag": false, "compression": false, "message": null, "pattern": "0", "dtype": "{dtype}", "shape": {shape}}}"#
            )
        };
        let flow = parse(&header("float32", "[4, 5, 2]"));
        assert_eq!((flow.dtype, flow.shape()), (Dtype::F32, vec![4, 5, 2]));
        assert_eq!(flow.frame_bytes(), 4 * 5 * 2 * 4);
        assert!(!flow.is_video());
        let depth = parse(&header("uint16", "[4, 5]"));
        assert!(depth.is_video() && depth.two_d);
        let rgb16 = parse(&header("uint16", "[4, 5, 3]"));
        assert!(!rgb16.is_video());
        let five = parse(&header("uint8", "[4, 5, 5]"));
        assert!(!five.is_video());
        assert!(parse(&header("uint8", "[4, 5, 4]")).is_video());
        let one = parse(&header("int16", "[4, 5, 1]"));
        assert_eq!(one.shape(), vec![4, 5, 1]);
        let encoded = encode_frame_header(None, &PayloadKind::Raw(one), &JsonText::null(), 0);
        assert!(String::from_utf8(encoded)
            .unwrap()
            .ends_with(r#""dtype": "int16", "shape": [4, 5, 1]}"#));
    }

    #[test]
    fn payload_size_must_match_the_shape() {
        let layout = RawLayout::new(Dtype::U16, 3, 5, 1);
        assert_eq!(layout.frame_bytes(), 30);
        assert!(check_raw_payload(&layout, 30).is_ok());
        assert_eq!(
            check_raw_payload(&layout, 29),
            Err(ProtocolError::PayloadSize {
                expected: 30,
                actual: 29
            })
        );
    }

    #[test]
    fn capture_time_goes_last_and_is_optional() {
        let layout = PayloadKind::Raw(RawLayout::new(Dtype::U8, 2, 3, 3));
        let mut header = encode_frame_header(None, &layout, &JsonText::null(), 1);
        let vidgear = header.clone();
        append_capture_time(&mut header, 1_732_300_000_123_456_789);
        assert_eq!(
            header,
            br#"{"terminate_flag": false, "compression": false, "message": null, "pattern": "1", "dtype": "uint8", "shape": [2, 3, 3], "capture_time_ns": 1732300000123456789}"#
        );
        let capture_time = |bytes: &[u8]| match parse_header(bytes) {
            Ok(Incoming::Frame(h)) => Ok(h.capture_time_ns),
            Ok(other) => panic!("not a frame: {other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(capture_time(&header), Ok(Some(1_732_300_000_123_456_789)));
        assert_eq!(capture_time(&vidgear), Ok(None));
        let mut latest = vidgear.clone();
        append_capture_time(&mut latest, MAX_CAPTURE_TIME_NS);
        assert_eq!(capture_time(&latest), Ok(Some(MAX_CAPTURE_TIME_NS)));
        let mut too_late = vidgear.clone();
        append_capture_time(&mut too_late, MAX_CAPTURE_TIME_NS + 1);
        assert!(matches!(
            capture_time(&too_late),
            Err(ProtocolError::BadValue("capture_time_ns", _))
        ));
        let with = |value: &str| {
            let text = String::from_utf8(vidgear.clone()).unwrap();
            format!(
                "{}, \"capture_time_ns\": {value}}}",
                &text[..text.len() - 1]
            )
        };
        assert_eq!(capture_time(with("null").as_bytes()), Ok(None));
        for bad in [
            "-1",
            "1.5",
            "1e30",
            "18446744073709551616",
            "\"12\"",
            "true",
            "[1]",
        ] {
            assert!(
                matches!(
                    capture_time(with(bad).as_bytes()),
                    Err(ProtocolError::BadValue("capture_time_ns", _))
                ),
                "accepted capture_time_ns {bad}"
            );
        }
        // Only an object gets the key.
        let mut text = b"not json".to_vec();
        append_capture_time(&mut text, 5);
        assert_eq!(text, b"not json");
    }

    #[test]
    fn replies_round_trip() {
        assert_eq!(
            encode_ack("9U8ZREVM"),
            b"Data received on device: 9U8ZREVM !"
        );
        assert_eq!(
            parse_reply(b"Data received on device: 9U8ZREVM !").unwrap(),
            Reply::Text("Data received on device: 9U8ZREVM !".into())
        );
        assert_eq!(
            encode_data_reply(None, &JsonText::null()),
            br#"{"return_type": "NoneType", "data": null}"#
        );
        assert_eq!(
            encode_data_reply(None, &JsonText::string("hi")),
            br#"{"return_type": "str", "data": "hi"}"#
        );
        assert_eq!(
            encode_data_reply(Some(5706), &JsonText::parse(r#"{"a":1}"#).unwrap()),
            br#"{"port": "5706", "return_type": "dict", "data": {"a": 1}}"#
        );
        assert_eq!(
            encode_data_reply(None, &JsonText::parse("NaN").unwrap()),
            br#"{"return_type": "float", "data": NaN}"#
        );
        assert_eq!(
            parse_reply(br#"{"port": "5706", "return_type": "dict", "data": {"a": 1}}"#).unwrap(),
            Reply::Data {
                port: Some(5706),
                data: JsonText::parse(r#"{"a": 1}"#).unwrap()
            }
        );
        assert_eq!(
            parse_reply(br#"{"return_type": "ndarray", "compression": false, "array_dtype": "uint16", "array_shape": [2, 3], "data": null}"#).unwrap(),
            Reply::Frame {
                port: None,
                payload: PayloadKind::Raw(RawLayout::new(Dtype::U16, 2, 3, 1))
            }
        );
        assert_eq!(
            parse_reply(br#"{"return_type": "ndarray", "compression": {"dct": true, "ups": false, "colorspace": "BGR"}, "array_dtype": "", "array_shape": "", "data": null}"#).unwrap(),
            Reply::Frame {
                port: None,
                payload: PayloadKind::Jpeg(Compression {
                    dct: true,
                    ups: false,
                    colorspace: "BGR".into()
                })
            }
        );
        assert!(parse_reply(br#"{"data": 1}"#).is_err());
        // Our frame replies are vidgear's, byte for byte, and parse back.
        let raw = PayloadKind::Raw(RawLayout::new(Dtype::U16, 2, 3, 1));
        assert_eq!(
            encode_frame_reply(None, &raw),
            br#"{"return_type": "ndarray", "compression": false, "array_dtype": "uint16", "array_shape": [2, 3], "data": null}"#
        );
        let jpeg = PayloadKind::Jpeg(Compression {
            dct: true,
            ups: false,
            colorspace: "BGR".into(),
        });
        assert_eq!(
            encode_frame_reply(Some(5706), &jpeg),
            br#"{"port": "5706", "return_type": "ndarray", "compression": {"dct": true, "ups": false, "colorspace": "BGR"}, "array_dtype": "", "array_shape": "", "data": null}"#
        );
        assert_eq!(
            parse_reply(&encode_frame_reply(Some(5706), &raw)).unwrap(),
            Reply::Frame {
                port: Some(5706),
                payload: raw
            }
        );
    }

    #[test]
    fn user_text_becomes_json() {
        let text = |t: &str| JsonText::from_user_text(t).into_string();
        assert_eq!(text(""), "null");
        assert_eq!(text("42"), "42");
        assert_eq!(text(r#"{"a":[1]}"#), r#"{"a": [1]}"#);
        assert_eq!(text("plain words"), r#""plain words""#);
        assert_eq!(text("[NaN, 1e999]"), "[NaN, 1e999]");
    }

    /// What vidgear carries and serde_json refused: kept as Python wrote it.
    #[test]
    fn python_only_messages_pass_through_exactly() {
        let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
        let big = format!("\"{}\"", "x".repeat(1_200_000));
        let messages = [
            "NaN",
            "Infinity",
            "-Infinity",
            r#"{"v": [NaN, -Infinity, 1e+16]}"#,
            r#""\ud800""#,
            "1180591620717411303424",
            "-340282366920938463463374607431768211457",
            &deep,
            &big,
        ];
        for m in messages {
            let header = format!(
                r#"{{"terminate_flag": false, "compression": false, "message": {m}, "pattern": "0", "dtype": "uint8", "shape": [1, 1]}}"#
            );
            let Incoming::Frame(h) = parse_header(header.as_bytes()).unwrap() else {
                panic!("not a frame")
            };
            let message = h.message.expect("kept");
            assert_eq!(message.as_str(), m);
            // Written back, the header is the one vidgear wrote.
            assert_eq!(
                encode_frame_header(None, &h.payload, &message, 0),
                header.as_bytes()
            );
        }
        let reply = br#"{"return_type": "list", "data": [NaN, "\udfff"]}"#;
        let Reply::Data { data, .. } = parse_reply(reply).unwrap() else {
            panic!("not data")
        };
        assert_eq!(encode_data_reply(None, &data), reply);
        // A value serde_json cannot read in a fixed key is refused, naming the key.
        let bad = br#"{"terminate_flag": false, "compression": false, "dtype": "uint8", "shape": [NaN, 1]}"#;
        assert!(matches!(
            parse_header(bad),
            Err(ProtocolError::BadValue("shape", _))
        ));
    }

    /// Small deterministic generator, so the property test needs no extra crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }

        fn value(&mut self, depth: u32) -> Value {
            match self.below(if depth > 2 { 6 } else { 8 }) {
                0 => Value::Null,
                1 => Value::Bool(self.below(2) == 1),
                2 => json!(self.next() as i64 >> self.below(64)),
                3 => json!(f64::from_bits(self.next())).clone(),
                4 => json!(
                    ["uint8", "uint16", "", "float64", "<u2", "BGR", "5566", "-1"]
                        [self.below(8) as usize]
                ),
                5 => json!(self.below(70000)),
                6 => Value::Array((0..self.below(5)).map(|_| self.value(depth + 1)).collect()),
                _ => {
                    let keys = [
                        "port",
                        "terminate_flag",
                        "compression",
                        "message",
                        "pattern",
                        "dtype",
                        "shape",
                        "dct",
                        "colorspace",
                    ];
                    let mut m = Map::new();
                    for _ in 0..self.below(8) {
                        m.insert(
                            keys[self.below(keys.len() as u64) as usize].to_owned(),
                            self.value(depth + 1),
                        );
                    }
                    Value::Object(m)
                }
            }
        }
    }

    /// Arbitrary bytes and arbitrary headers never panic; accepted layouts are bounded;
    /// valid frames round-trip.
    #[test]
    fn property_hostile_input_never_panics_and_valid_frames_round_trip() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let len = rng.below(300) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = parse_header(&bytes);
            let _ = parse_reply(&bytes);
            let header = serde_json::to_vec(&rng.value(0)).unwrap();
            for parsed in [parse_header(&header).ok()] {
                if let Some(Incoming::Frame(FrameHeader {
                    payload: PayloadKind::Raw(l),
                    ..
                })) = parsed
                {
                    assert!(
                        l.width <= MAX_DIMENSION
                            && l.height <= MAX_DIMENSION
                            && l.width > 0
                            && l.height > 0
                    );
                    assert!(l.frame_bytes() <= MAX_DIMENSION * MAX_DIMENSION * 4);
                    let _ = check_raw_payload(&l, rng.below(1000) as usize);
                }
            }
            let _ = parse_reply(&header);
            let _ = copy_rows(
                &bytes,
                rng.below(40) as usize,
                &mut [0u8; 64],
                rng.below(40) as usize,
                rng.below(40) as usize,
                rng.below(5) as usize,
            );
            let map = PixelMap {
                in_bytes: rng.below(5) as usize,
                picks: [&[2usize, 1, 0][..], &[0, 1, 2, 3], &[3, 2, 1], &[0]]
                    [rng.below(4) as usize],
            };
            let (w, h, stride) = (
                rng.below(20) as usize,
                rng.below(5) as usize,
                rng.below(90) as usize,
            );
            let _ = pack_pixels(&bytes, stride, w, h, map, &mut [0u8; 128]);
        }
        for _ in 0..10_000 {
            let channels = [1usize, 3, 4][rng.below(3) as usize];
            let dtype = if channels == 1 && rng.below(2) == 1 {
                Dtype::U16
            } else {
                Dtype::U8
            };
            let layout = RawLayout::new(
                dtype,
                1 + rng.below(4000) as usize,
                1 + rng.below(4000) as usize,
                channels,
            );
            let message = JsonText::parse(&serde_json::to_string(&rng.value(0)).unwrap()).unwrap();
            let port = (rng.below(2) == 1).then(|| 1 + rng.below(65535) as u16);
            let header = encode_frame_header(
                port,
                &PayloadKind::Raw(layout),
                &message,
                rng.below(3) as u8,
            );
            let Ok(Incoming::Frame(h)) = parse_header(&header) else {
                panic!(
                    "our header did not parse: {}",
                    String::from_utf8_lossy(&header)
                )
            };
            assert_eq!(h.payload, PayloadKind::Raw(layout));
            assert_eq!(h.port, port);
            // Messages are kept as text, so they round-trip exactly.
            assert_eq!(h.message, message.is_truthy().then_some(message.clone()));
        }
    }
}
