use crate::common::{self, CommonSettings};
use crate::config::{Pattern, Role};
use crate::jpeg::{Colorspace, DecodeParams, Decoder, JpegInfo};
use crate::meta;
use crate::protocol::{self, FrameHeader, Incoming, JsonText, PayloadKind, RawLayout};
use crate::security::Refusal;
use crate::stats::Stats;
use crate::transport::{LinkError, Received, ReceiverLink, Waker};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use gst_video::VideoFormat;
use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "netgearsrc",
        gst::DebugColorFlags::empty(),
        Some("NetGear receiver"),
    )
});

/// A flood of bad messages posts at most one bus warning per this interval (all are counted).
const WARNING_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Settings {
    common: CommonSettings,
    return_data: String,
    /// `return-data` parsed once when set, not per frame.
    return_value: JsonText,
    timeout_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            common: CommonSettings::new(Role::Receiver),
            return_data: String::new(),
            return_value: JsonText::null(),
            timeout_ms: 0,
        }
    }
}

/// What the source pad currently carries; a frame that needs other caps renegotiates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OutputKey {
    /// Raw frames as the wire carries them.
    Raw(RawLayout),
    /// JPEG frames pushed untouched.
    Jpeg { width: usize, height: usize },
    /// JPEG frames decoded to the header's colorspace.
    Decoded {
        colorspace: Colorspace,
        width: usize,
        height: usize,
    },
}

#[derive(Debug, Clone)]
struct Output {
    key: OutputKey,
    /// Raw video layout (not for JPEG pass-through).
    info: Option<gst_video::VideoInfo>,
    /// Buffers for decoded or re-padded frames, reused across frames.
    pool: Option<gst::BufferPool>,
    /// Raw rows are as long as GStreamer's: the message itself becomes the buffer.
    tight: bool,
}

impl Output {
    fn release(&self) {
        if let Some(pool) = &self.pool {
            let _ = pool.set_active(false);
        }
    }
}

struct State {
    /// Taken out while waiting for the network, so no lock is held across the wait.
    link: Option<ReceiverLink>,
    waker: Option<Arc<Waker>>,
    pattern: Pattern,
    /// Replies are JSON (bidirectional or multi-client).
    json_replies: bool,
    multi_server: bool,
    /// Multi-client: the port named in every reply.
    reply_port: Option<u16>,
    ack: Vec<u8>,
    output: Option<Output>,
    /// Whether downstream takes image/jpeg; asked again after a reconfigure.
    jpeg_passthrough: Option<bool>,
    /// Taken out while decoding, like the link.
    decoder: Option<Decoder>,
    /// Multi-server: senders that sent frames and have not terminated yet.
    servers: BTreeSet<u16>,
    last_message: Instant,
    last_frame: Instant,
    last_warning: Option<Instant>,
}

impl Default for State {
    fn default() -> Self {
        let now = Instant::now();
        State {
            link: None,
            waker: None,
            pattern: Pattern::Pair,
            json_replies: false,
            multi_server: false,
            reply_port: None,
            ack: Vec::new(),
            output: None,
            jpeg_passthrough: None,
            decoder: None,
            servers: BTreeSet::new(),
            last_message: now,
            last_frame: now,
            last_warning: None,
        }
    }
}

/// What one received message led to.
enum Step {
    Push(gst::Buffer),
    Again,
    Eos,
}

/// Why a frame could not become a buffer.
#[derive(Debug)]
enum FrameError {
    Protocol(protocol::ProtocolError),
    Jpeg(crate::jpeg::JpegError),
    /// Downstream refused the caps the frame needs.
    Refused(String),
    /// The frame would be larger than max-frame-bytes.
    Limit(String),
    Buffer,
}

impl From<protocol::ProtocolError> for FrameError {
    fn from(e: protocol::ProtocolError) -> Self {
        FrameError::Protocol(e)
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Protocol(e) => e.fmt(f),
            FrameError::Jpeg(e) => write!(f, "corrupt JPEG: {e}"),
            FrameError::Refused(caps) => write!(f, "downstream refused {caps}"),
            FrameError::Limit(why) => f.write_str(why),
            FrameError::Buffer => write!(f, "could not allocate or fill a buffer"),
        }
    }
}

/// Lets a ZeroMQ message become a GStreamer buffer without a copy.
struct WireBytes(zmq::Message);

// SAFETY: a zmq message owns its bytes (or a reference count on them); libzmq forbids
// sharing a socket between threads, not moving a message. The buffer only reads it.
unsafe impl Send for WireBytes {}

impl AsRef<[u8]> for WireBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Formats the source pad can carry.
const SRC_FORMATS: &[VideoFormat] = &[
    VideoFormat::Bgr,
    VideoFormat::Bgra,
    VideoFormat::Gray8,
    VideoFormat::Gray16Le,
    VideoFormat::Rgb,
    VideoFormat::Bgrx,
    VideoFormat::Rgbx,
    VideoFormat::Xbgr,
    VideoFormat::Xrgb,
    VideoFormat::Rgba,
    VideoFormat::Abgr,
    VideoFormat::Argb,
];

/// What the `return` pad's caps say about its buffers.
#[derive(Debug, Clone)]
enum ReturnInput {
    Raw(gst_video::VideoInfo),
    Jpeg,
}

/// The `return` request pad: its latest frame goes back to the sender once, with the next
/// reply (bidirectional / multi-client mode), as vidgear's `recv(return_data=frame)` does.
#[derive(Default)]
struct Returns {
    pad: Option<gst::Pad>,
    input: Option<ReturnInput>,
    frame: Option<(PayloadKind, Vec<u8>)>,
}

#[derive(Default)]
pub struct NetGearSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    /// Its own lock: the return pad's buffers come from another streaming thread.
    returns: Mutex<Returns>,
    stats: Stats,
}

impl NetGearSrc {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn returns(&self) -> MutexGuard<'_, Returns> {
        self.returns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn return_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let input = self
            .returns()
            .input
            .clone()
            .ok_or(gst::FlowError::NotNegotiated)?;
        let frame = match input {
            ReturnInput::Raw(info) => common::pack_frame(&buffer, &info).map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Format, ["Return frame: {}", e]);
                gst::FlowError::Error
            })?,
            ReturnInput::Jpeg => {
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let kind = PayloadKind::Jpeg(protocol::Compression {
                    dct: true,
                    ups: false,
                    colorspace: "BGR".into(),
                });
                (kind, map.to_vec())
            }
        };
        self.returns().frame = Some(frame);
        Ok(gst::FlowSuccess::Ok)
    }

    fn return_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => {
                let caps = c.caps();
                let input = if caps.structure(0).is_some_and(|s| s.name() == "image/jpeg") {
                    Some(ReturnInput::Jpeg)
                } else {
                    gst_video::VideoInfo::from_caps(caps)
                        .ok()
                        .map(ReturnInput::Raw)
                };
                let ok = input.is_some();
                self.returns().input = input;
                ok
            }
            gst::EventView::FlushStart(_) => {
                self.returns().frame = None;
                true
            }
            // The return branch ending does not end the stream of frames we receive.
            gst::EventView::Eos(_)
            | gst::EventView::Segment(_)
            | gst::EventView::StreamStart(_) => true,
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    /// Secure mode: the authentication turned a client away (called from its thread).
    fn refused(&self, peer: &str, why: &Refusal) {
        Stats::bump(&self.stats.refused);
        if self.warning_due() {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::NotAuthorized,
                [
                    "Refused a client from {}: {}",
                    if peer.is_empty() { "?" } else { peer },
                    why
                ]
            );
        }
        gst::warning!(CAT, imp = self, "refused a client from {peer}: {why}");
    }

    /// Bus warnings about the network are posted at most once per interval.
    fn warning_due(&self) -> bool {
        let now = Instant::now();
        let mut st = self.state();
        let due = st
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= WARNING_INTERVAL);
        if due {
            st.last_warning = Some(now);
        }
        due
    }

    /// Counts a rejected message and warns on the bus, at most once per interval.
    fn malformed(&self, endpoints: &str, why: &dyn std::fmt::Display) {
        Stats::bump(&self.stats.malformed);
        if self.warning_due() {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Decode,
                ["Dropped a malformed message on {}: {}", endpoints, why]
            );
        } else {
            gst::debug!(CAT, imp = self, "dropped a malformed message: {why}");
        }
    }

    /// Waits for the next message and turns it into a step.
    fn receive(&self, link: &mut ReceiverLink) -> Result<Step, gst::FlowError> {
        let (rebind_at, eos_at) = {
            let st = self.state();
            let settings = self.settings();
            let request_timeout =
                Duration::from_millis(u64::from(settings.common.request_timeout_ms));
            let rebind_at = st
                .pattern
                .is_acknowledged()
                .then(|| st.last_message + request_timeout * 3);
            let eos_at = (settings.timeout_ms > 0)
                .then(|| st.last_frame + Duration::from_millis(u64::from(settings.timeout_ms)));
            (rebind_at, eos_at)
        };
        let deadline = match (rebind_at, eos_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match link.recv(wait, &self.stats) {
            Err(LinkError::Interrupted) => Err(gst::FlowError::Flushing),
            Err(e) => {
                gst::element_imp_error!(self, gst::ResourceError::Read, ["{}", e]);
                Err(gst::FlowError::Error)
            }
            Ok(Received::TimedOut) => {
                let now = Instant::now();
                if eos_at.is_some_and(|t| now >= t) {
                    gst::info!(
                        CAT,
                        imp = self,
                        "nothing arrived for the timeout: end of stream"
                    );
                    return Ok(Step::Eos);
                }
                if rebind_at.is_some_and(|t| now >= t) {
                    gst::info!(
                        CAT,
                        imp = self,
                        "silence on {}: rebinding for a new sender",
                        link.config().endpoint_list()
                    );
                    match link.rebind(&self.stats) {
                        Ok(()) => {}
                        Err(LinkError::Interrupted) => return Err(gst::FlowError::Flushing),
                        Err(e) => {
                            gst::element_imp_error!(self, gst::ResourceError::OpenRead, ["{}", e]);
                            return Err(gst::FlowError::Error);
                        }
                    }
                    self.state().last_message = now;
                }
                Ok(Step::Again)
            }
            Ok(Received::Message(parts)) => {
                self.state().last_message = Instant::now();
                self.handle_message(link, parts)
            }
        }
    }

    fn reply(&self, link: &mut ReceiverLink, parts: &[&[u8]]) -> Result<(), gst::FlowError> {
        match link.reply(parts) {
            Ok(sent) => {
                if !sent {
                    gst::debug!(CAT, imp = self, "reply dropped: the sender is gone");
                }
                Ok(())
            }
            Err(e) => {
                gst::element_imp_error!(self, gst::ResourceError::Write, ["{}", e]);
                Err(gst::FlowError::Error)
            }
        }
    }

    fn handle_message(
        &self,
        link: &mut ReceiverLink,
        mut parts: Vec<zmq::Message>,
    ) -> Result<Step, gst::FlowError> {
        let parsed = parts
            .first()
            .ok_or(protocol::ProtocolError::PartCount(0))
            .and_then(|h| protocol::parse_header(h));
        let (pattern, json_replies, multi_server, reply_port) = {
            let st = self.state();
            (st.pattern, st.json_replies, st.multi_server, st.reply_port)
        };

        if let Ok(Incoming::Terminate { port }) = parsed {
            Stats::bump(&self.stats.terminations);
            if pattern == Pattern::ReqRep {
                let answer = if multi_server {
                    protocol::TERMINATION_ACK_MULTISERVER
                } else {
                    protocol::TERMINATION_ACK
                };
                self.reply(link, &[answer.as_bytes()])?;
            }
            if !multi_server {
                gst::info!(CAT, imp = self, "sender terminated: end of stream");
                return Ok(Step::Eos);
            }
            let mut st = self.state();
            if let Some(p) = port {
                st.servers.remove(&p);
            }
            gst::info!(
                CAT,
                imp = self,
                "server {port:?} terminated, {} left",
                st.servers.len()
            );
            return Ok(if st.servers.is_empty() {
                Step::Eos
            } else {
                Step::Again
            });
        }

        // Answer before decoding, as vidgear does; a REP socket must answer every request.
        if pattern.is_acknowledged() {
            let returned = if json_replies {
                self.returns().frame.take()
            } else {
                None
            };
            if let Some((kind, bytes)) = returned {
                let header = protocol::encode_frame_reply(reply_port, &kind);
                self.reply(link, &[&header, &bytes])?;
            } else {
                let answer = if json_replies {
                    protocol::encode_data_reply(reply_port, &self.settings().return_value)
                } else {
                    self.state().ack.clone()
                };
                self.reply(link, &[&answer])?;
            }
        }

        let endpoints = link.config().endpoint_list();
        let header = match parsed {
            Ok(Incoming::Frame(h)) => h,
            Ok(Incoming::Terminate { .. }) => return Ok(Step::Again),
            Err(e) => {
                self.malformed(&endpoints, &e);
                return Ok(Step::Again);
            }
        };
        if parts.len() != 2 {
            self.malformed(&endpoints, &protocol::ProtocolError::PartCount(parts.len()));
            return Ok(Step::Again);
        }
        let payload = parts.swap_remove(1);
        let payload_len = payload.len();
        let buffer = match self.make_buffer(&header, payload) {
            Ok(b) => b,
            Err(FrameError::Refused(caps)) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    [
                        "Downstream does not accept {} (the sender's frames on {})",
                        caps,
                        endpoints
                    ]
                );
                return Err(gst::FlowError::NotNegotiated);
            }
            Err(why) => {
                self.malformed(&endpoints, &why);
                return Ok(Step::Again);
            }
        };
        let mut buffer = buffer;
        let port = header.port.filter(|_| multi_server);
        if let Some(p) = port {
            self.state().servers.insert(p);
        }
        let message = header.message.map(JsonText::into_string);
        if message.is_some() || port.is_some() {
            let info = meta::NetGearInfo {
                message: message.clone(),
                port,
            };
            meta::attach(buffer.make_mut(), &info);
        }
        if let Some(text) = message {
            self.post_message(text, port);
        }
        self.state().last_frame = Instant::now();
        Stats::bump(&self.stats.frames);
        Stats::add(&self.stats.bytes, payload_len as u64);
        Ok(Step::Push(buffer))
    }

    /// Turns a frame's payload into a buffer, renegotiating when the frame format changes.
    fn make_buffer(
        &self,
        header: &FrameHeader,
        payload: zmq::Message,
    ) -> Result<gst::Buffer, FrameError> {
        match &header.payload {
            PayloadKind::Raw(layout) => {
                protocol::check_raw_payload(layout, payload.len())?;
                let output = self.output(OutputKey::Raw(*layout))?;
                if output.tight {
                    return Ok(gst::Buffer::from_slice(WireBytes(payload)));
                }
                let (mut buffer, stride) = Self::acquire(&output)?;
                {
                    let buffer = buffer.get_mut().ok_or(FrameError::Buffer)?;
                    let mut map = buffer.map_writable().map_err(|_| FrameError::Buffer)?;
                    protocol::copy_rows(
                        &payload,
                        layout.row_bytes(),
                        &mut map,
                        stride,
                        layout.row_bytes(),
                        layout.height,
                    )
                    .ok_or(FrameError::Buffer)?;
                }
                Ok(buffer)
            }
            PayloadKind::Jpeg(compression) => {
                let mut decoder = match self.state().decoder.take() {
                    Some(d) => d,
                    None => Decoder::new().map_err(FrameError::Jpeg)?,
                };
                let result = self.jpeg_buffer(&mut decoder, compression, payload);
                self.state().decoder = Some(decoder);
                result
            }
        }
    }

    fn jpeg_buffer(
        &self,
        decoder: &mut Decoder,
        compression: &protocol::Compression,
        payload: zmq::Message,
    ) -> Result<gst::Buffer, FrameError> {
        let info = decoder.info(&payload).map_err(FrameError::Jpeg)?;
        let JpegInfo { width, height } = info;
        if width > protocol::MAX_DIMENSION || height > protocol::MAX_DIMENSION {
            return Err(FrameError::Protocol(protocol::ProtocolError::BadShape(
                format!("JPEG of {width}x{height}"),
            )));
        }
        if self.jpeg_passthrough() {
            self.output(OutputKey::Jpeg { width, height })?;
            return Ok(gst::Buffer::from_slice(WireBytes(payload)));
        }
        let (colorspace, _) = common::decoded_format(&compression.colorspace);
        let output = self.output(OutputKey::Decoded {
            colorspace,
            width,
            height,
        })?;
        let (mut buffer, stride) = Self::acquire(&output)?;
        {
            let buffer = buffer.get_mut().ok_or(FrameError::Buffer)?;
            let mut map = buffer.map_writable().map_err(|_| FrameError::Buffer)?;
            decoder
                .decode(
                    &payload,
                    info,
                    colorspace,
                    stride,
                    DecodeParams {
                        fast_dct: compression.dct,
                        fast_upsample: compression.ups,
                    },
                    &mut map,
                )
                .map_err(FrameError::Jpeg)?;
        }
        Ok(buffer)
    }

    /// A buffer for the output's raw layout, and its row stride.
    fn acquire(output: &Output) -> Result<(gst::Buffer, usize), FrameError> {
        let info = output.info.as_ref().ok_or(FrameError::Buffer)?;
        let stride = usize::try_from(info.stride()[0]).map_err(|_| FrameError::Buffer)?;
        let buffer = match &output.pool {
            Some(pool) => pool.acquire_buffer(None).map_err(|_| FrameError::Buffer)?,
            None => gst::Buffer::with_size(info.size()).map_err(|_| FrameError::Buffer)?,
        };
        Ok((buffer, stride))
    }

    /// Whether downstream takes JPEG as it is (asked once, and again after a reconfigure).
    fn jpeg_passthrough(&self) -> bool {
        if let Some(decided) = self.state().jpeg_passthrough {
            return decided;
        }
        let jpeg = gst::Caps::builder("image/jpeg").build();
        let takes = self
            .obj()
            .static_pad("src")
            .is_some_and(|pad| pad.peer_query_caps(Some(&jpeg)).can_intersect(&jpeg));
        gst::info!(
            CAT,
            imp = self,
            "JPEG frames: {}",
            if takes {
                "pushed as image/jpeg"
            } else {
                "decoded to raw"
            }
        );
        self.state().jpeg_passthrough = Some(takes);
        takes
    }

    /// The output for a frame: the current one, or new caps pushed downstream.
    fn output(&self, key: OutputKey) -> Result<Output, FrameError> {
        if let Some(current) = self.state().output.as_ref().filter(|o| o.key == key) {
            return Ok(current.clone());
        }
        let bad = || FrameError::Protocol(protocol::ProtocolError::BadShape(format!("{key:?}")));
        let raw = match &key {
            OutputKey::Raw(layout) => {
                Some((common::raw_format(layout), layout.width, layout.height))
            }
            OutputKey::Decoded {
                colorspace,
                width,
                height,
            } => Some((common::decoded_format(colorspace.name()).1, *width, *height)),
            OutputKey::Jpeg { .. } => None,
        };
        let output = match raw {
            Some((format, width, height)) => {
                let info = common::video_info(format, width, height).map_err(|_| bad())?;
                let limit = self.settings().common.max_frame_bytes;
                common::check_decoded_size(&info, limit).map_err(FrameError::Limit)?;
                let caps = info.to_caps().map_err(|_| bad())?;
                self.apply_caps(&caps)?;
                let tight = match &key {
                    OutputKey::Raw(layout) => {
                        usize::try_from(info.stride()[0]).ok() == Some(layout.row_bytes())
                            && info.size() == layout.frame_bytes()
                    }
                    _ => false,
                };
                let pool = if tight {
                    None
                } else {
                    Some(Self::new_pool(&caps, info.size())?)
                };
                Output {
                    key,
                    info: Some(info),
                    pool,
                    tight,
                }
            }
            None => {
                let OutputKey::Jpeg { width, height } = key else {
                    return Err(bad());
                };
                let caps = gst::Caps::builder("image/jpeg")
                    .field("width", i32::try_from(width).map_err(|_| bad())?)
                    .field("height", i32::try_from(height).map_err(|_| bad())?)
                    .field("framerate", gst::Fraction::new(0, 1))
                    .build();
                self.apply_caps(&caps)?;
                Output {
                    key,
                    info: None,
                    pool: None,
                    tight: false,
                }
            }
        };
        if let Some(old) = self.state().output.replace(output.clone()) {
            old.release();
        }
        Ok(output)
    }

    fn new_pool(caps: &gst::Caps, size: usize) -> Result<gst::BufferPool, FrameError> {
        let pool = gst::BufferPool::new();
        let mut config = pool.config();
        config.set_params(
            Some(caps),
            u32::try_from(size).map_err(|_| FrameError::Buffer)?,
            2,
            0,
        );
        pool.set_config(config).map_err(|_| FrameError::Buffer)?;
        pool.set_active(true).map_err(|_| FrameError::Buffer)?;
        Ok(pool)
    }

    fn apply_caps(&self, caps: &gst::Caps) -> Result<(), FrameError> {
        gst::debug!(CAT, imp = self, "new caps {caps}");
        self.obj()
            .set_caps(caps)
            .map_err(|_| FrameError::Refused(caps.to_string()))
    }

    fn post_message(&self, message: String, port: Option<u16>) {
        let mut s = gst::Structure::builder("netgear-message").field("message", message);
        if let Some(p) = port {
            s = s.field("port", u32::from(p));
        }
        let msg = gst::message::Element::builder(s.build())
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }
}

#[glib::object_subclass]
impl ObjectSubclass for NetGearSrc {
    const NAME: &'static str = "GstNetGearSrc";
    type Type = super::NetGearSrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for NetGearSrc {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(true);
        obj.set_format(gst::Format::Time);
        // Buffers are stamped with the running time at which they arrived.
        obj.set_do_timestamp(true);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = CommonSettings::properties(Role::Receiver);
            props.extend([
                glib::ParamSpecString::builder("return-data")
                    .nick("Return data")
                    .blurb("Returned to the sender with every reply in bidirectional / multi-client mode: JSON if it parses, else a string; may change while playing")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("timeout")
                    .nick("Timeout")
                    .blurb("End the stream (EOS) when no frame arrives for this many milliseconds; 0 waits forever. Useful with pattern=pub-sub, whose termination message can be lost")
                    .default_value(0)
                    .mutable_ready()
                    .build(),
            ]);
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings();
        if s.common.set_property(value, pspec) {
            gst::debug!(CAT, imp = self, "{} set", pspec.name());
            return;
        }
        match pspec.name() {
            "return-data" => {
                s.return_data = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                s.return_value = JsonText::from_user_text(&s.return_data);
            }
            "timeout" => s.timeout_ms = value.get().unwrap_or(0),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats.to_structure("netgearsrc-stats").to_value();
        }
        let s = self.settings();
        if let Some(v) = s.common.property(pspec) {
            return v;
        }
        match pspec.name() {
            "return-data" => s.return_data.to_value(),
            "timeout" => s.timeout_ms.to_value(),
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }
}

impl GstObjectImpl for NetGearSrc {}

impl ElementImpl for NetGearSrc {
    /// The `return` pad: frames sent back to the sender (bidirectional / multi-client).
    fn request_new_pad(
        &self,
        template: &gst::PadTemplate,
        _name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        let mut returns = self.returns();
        if returns.pad.is_some() {
            gst::warning!(CAT, imp = self, "there is one return pad");
            return None;
        }
        let pad = self.new_return_pad(template);
        if self.obj().current_state() > gst::State::Ready {
            let _ = pad.set_active(true);
        }
        self.obj().add_pad(&pad).ok()?;
        returns.pad = Some(pad.clone());
        Some(pad)
    }

    fn release_pad(&self, pad: &gst::Pad) {
        *self.returns() = Returns::default();
        let _ = pad.set_active(false);
        let _ = self.obj().remove_pad(pad);
    }

    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "NetGear source",
                "Source/Network",
                "Receives video frames from a vidgear NetGear sender (NetGear().send()) over ZeroMQ",
                "gst-plugin-netgear developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = common::raw_or_jpeg_caps(SRC_FORMATS.iter().copied());
            let src = gst::PadTemplate::new(
                "src",
                gst::PadDirection::Src,
                gst::PadPresence::Always,
                &caps,
            )
            .expect("static pad template");
            let returns = common::raw_or_jpeg_caps(common::SEND_FORMATS.iter().map(|f| f.0));
            let ret = gst::PadTemplate::new(
                "return",
                gst::PadDirection::Sink,
                gst::PadPresence::Request,
                &returns,
            )
            .expect("static pad template");
            vec![src, ret]
        });
        TEMPLATES.as_ref()
    }
}

impl NetGearSrc {
    fn new_return_pad(&self, template: &gst::PadTemplate) -> gst::Pad {
        gst::Pad::builder_from_template(template)
            .name("return")
            .chain_function(|_pad, parent, buffer| {
                NetGearSrc::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.return_chain(buffer),
                )
            })
            .event_function(|pad, parent, event| {
                NetGearSrc::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.return_event(pad, event),
                )
            })
            .build()
    }
}

impl BaseSrcImpl for NetGearSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings().clone();
        let (config, waker) = common::prepare_start(
            &settings.common,
            Role::Receiver,
            false,
            *CAT,
            self.obj().upcast_ref(),
        )?;
        let element = self.obj().downgrade();
        let on_refused = Box::new(move |peer: &str, why: &Refusal| {
            if let Some(element) = element.upgrade() {
                element.imp().refused(peer, why);
            }
        });
        let link = ReceiverLink::open(config, waker.clone(), on_refused)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ["{}", e]))?;
        gst::info!(
            CAT,
            imp = self,
            "listening on {} (secure: {:?})",
            link.config().endpoint_list(),
            link.config().curve
        );
        self.stats.reset();
        let c = &settings.common;
        *self.state() = State {
            link: Some(link),
            waker: Some(waker),
            pattern: c.pattern,
            json_replies: c.bidirectional || c.multi_client,
            multi_server: c.multi_server,
            reply_port: c.multi_client.then(|| c.own_port()),
            ack: protocol::encode_ack(&common::device_id()),
            ..State::default()
        };
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let old = std::mem::take(&mut *self.state());
        if let Some(output) = old.output {
            output.release();
        }
        Ok(())
    }

    /// Caps come from the frames themselves, set in `create()`. A reconfigure (downstream
    /// changed) makes the next frame ask again whether JPEG can pass and set its caps anew.
    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        let mut st = self.state();
        st.jpeg_passthrough = None;
        if let Some(old) = st.output.take() {
            old.release();
        }
        Ok(())
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(w) = self.state().waker.as_ref() {
            w.wake();
        }
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(w) = self.state().waker.as_ref() {
            w.reset();
        }
        Ok(())
    }
}

impl PushSrcImpl for NetGearSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        loop {
            let Some(mut link) = self.state().link.take() else {
                return Err(gst::FlowError::Flushing);
            };
            let step = self.receive(&mut link);
            self.state().link = Some(link);
            match step? {
                Step::Push(buffer) => return Ok(CreateSuccess::NewBuffer(buffer)),
                Step::Again => continue,
                Step::Eos => return Err(gst::FlowError::Eos),
            }
        }
    }
}
