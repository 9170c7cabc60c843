use crate::common::{self, CommonSettings};
use crate::config::{Pattern, Role};
use crate::jpeg::{Colorspace, Decoder, EncodeParams, Encoder, Image};
use crate::meta;
use crate::protocol::{self, Compression, PayloadKind, PixelMap, RawLayout, Reply};
use crate::stats::Stats;
use crate::transport::{Exchanged, LinkError, Part, SenderLink, SharedBytes, Waker};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "netgearsink",
        gst::DebugColorFlags::empty(),
        Some("NetGear sender"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    common: CommonSettings,
    jpeg_compression: bool,
    jpeg_quality: u32,
    jpeg_fastdct: bool,
    jpeg_fastupsample: bool,
    jpeg_colorspace: String,
    message: String,
    /// `message` parsed once when set, not per frame.
    message_value: Value,
    overwrite_cert: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            common: CommonSettings::new(Role::Sender),
            jpeg_compression: true,
            jpeg_quality: 90,
            jpeg_fastdct: true,
            jpeg_fastupsample: false,
            jpeg_colorspace: String::new(),
            message: String::new(),
            message_value: Value::Null,
            overwrite_cert: false,
        }
    }
}

/// A readable mapping of a buffer (the bytes in `range`), lent to ZeroMQ.
struct BufferBytes {
    map: gst::MappedBuffer<gst::buffer::Readable>,
    range: Range<usize>,
}

impl AsRef<[u8]> for BufferBytes {
    fn as_ref(&self) -> &[u8] {
        // The range was checked against the mapping when it was made.
        self.map.as_slice().get(self.range.clone()).unwrap_or(&[])
    }
}

/// What the negotiated caps say about each buffer.
#[derive(Debug, Clone)]
enum Input {
    Raw(Box<RawInput>),
    Jpeg,
}

#[derive(Debug, Clone)]
struct RawInput {
    info: gst_video::VideoInfo,
    map: PixelMap,
    layout: RawLayout,
    /// Encode to JPEG from this layout (jpeg-compression=true and a JPEG-able format).
    jpeg: Option<Colorspace>,
}

#[derive(Default)]
struct State {
    /// Taken out while a frame is on the wire, so no lock is held across the wait.
    link: Option<SenderLink>,
    waker: Option<Arc<Waker>>,
    input: Option<Input>,
    pattern: Pattern,
    /// Multi-server: the port put in every header.
    header_port: Option<u16>,
    /// Multi-client: the receivers that have replied, each owed a termination.
    heard_from: BTreeSet<u16>,
    terminated: bool,
    /// Reused for packed rows or encoded JPEG, so frames do not allocate.
    scratch: Vec<u8>,
    encoder: Option<Encoder>,
    /// For frames that come back with replies.
    decoder: Option<Decoder>,
}

#[derive(Default)]
pub struct NetGearSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    stats: Stats,
}

impl NetGearSink {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one buffer as a frame: raw frames whose rows are already tight go out of the
    /// buffer's own memory; others are packed and reordered (or JPEG-encoded) into `scratch`.
    fn send_frame(
        &self,
        link: &mut SenderLink,
        buffer: &gst::Buffer,
        input: &Input,
        scratch: &mut Vec<u8>,
        encoder: &mut Option<Encoder>,
        header_port: Option<u16>,
    ) -> Result<Vec<zmq::Message>, gst::FlowError> {
        // A relayed frame keeps its own message (NetGearMeta); others get the property's.
        let relayed = meta::read(buffer).and_then(|info| info.message);
        let (message, pattern, mut compression, params, colorspace_set) = {
            let s = self.settings();
            let compression = Compression {
                dct: s.jpeg_fastdct,
                ups: s.jpeg_fastupsample,
                colorspace: if s.jpeg_colorspace.is_empty() {
                    "BGR".to_owned()
                } else {
                    s.jpeg_colorspace.to_ascii_uppercase()
                },
            };
            let params = EncodeParams {
                quality: s.jpeg_quality,
                fast_dct: s.jpeg_fastdct,
            };
            let colorspace_set = !s.jpeg_colorspace.is_empty();
            let message = match &relayed {
                Some(text) => protocol::value_from_text(text),
                None => s.message_value.clone(),
            };
            (
                message,
                s.common.pattern,
                compression,
                params,
                colorspace_set,
            )
        };
        let (kind, lent) = match input {
            Input::Jpeg => (
                PayloadKind::Jpeg(compression),
                Some(self.lend(buffer, None)?),
            ),
            Input::Raw(raw) => {
                let RawInput {
                    info,
                    map,
                    layout,
                    jpeg,
                } = raw.as_ref();
                let tight = jpeg.is_none()
                    && map.is_identity()
                    && buffer.meta::<gst_video::VideoMeta>().is_none()
                    && usize::try_from(info.stride()[0]).ok() == Some(layout.row_bytes());
                if tight {
                    let start = info.offset()[0];
                    let range = start..start + layout.frame_bytes();
                    (
                        PayloadKind::Raw(*layout),
                        Some(self.lend(buffer, Some(range))?),
                    )
                } else {
                    let encoded = self.pack_or_encode(buffer, raw, params, encoder, scratch)?;
                    if let Some(colorspace) = encoded {
                        if !colorspace_set {
                            compression.colorspace = colorspace.name().to_owned();
                        }
                        (PayloadKind::Jpeg(compression), None)
                    } else {
                        (PayloadKind::Raw(*layout), None)
                    }
                }
            }
        };
        let header = protocol::encode_frame_header(header_port, &kind, &message, pattern.number());
        let payload = match &lent {
            Some(shared) => Part::Shared(shared),
            None => Part::Copied(scratch),
        };
        let payload_len = match payload {
            Part::Shared(b) => (**b).as_ref().len(),
            Part::Copied(b) => b.len(),
        };
        let reply = match link
            .exchange(&[Part::Copied(&header), payload], &self.stats)
            .map_err(|e| self.link_failed(e))?
        {
            Exchanged::Reply(reply) => reply,
            Exchanged::Sent => Vec::new(),
            Exchanged::Dropped => {
                Stats::bump(&self.stats.dropped);
                return Ok(Vec::new());
            }
        };
        Stats::bump(&self.stats.frames);
        Stats::add(&self.stats.bytes, payload_len as u64);
        Ok(reply)
    }

    /// Lends (part of) a buffer's memory to ZeroMQ without a copy.
    fn lend(
        &self,
        buffer: &gst::Buffer,
        range: Option<Range<usize>>,
    ) -> Result<SharedBytes, gst::FlowError> {
        let map = buffer.clone().into_mapped_buffer_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::ResourceError::Read, ["Could not map buffer"]);
            gst::FlowError::Error
        })?;
        let range = range.unwrap_or(0..map.len());
        if range.end > map.len() {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ["Buffer of {} bytes is too small for its caps", map.len()]
            );
            return Err(gst::FlowError::Error);
        }
        Ok(Arc::new(BufferBytes { map, range }))
    }

    /// Packs a raw frame's rows into `scratch` in the wire's layout, or encodes it to JPEG
    /// there. Returns the JPEG colorspace if it encoded.
    fn pack_or_encode(
        &self,
        buffer: &gst::Buffer,
        raw: &RawInput,
        params: EncodeParams,
        encoder: &mut Option<Encoder>,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<Colorspace>, gst::FlowError> {
        let RawInput {
            info,
            map,
            layout,
            jpeg,
        } = raw;
        let (map, jpeg) = (*map, *jpeg);
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), info)
            .map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::ResourceError::Read,
                    ["Could not map video frame"]
                );
                gst::FlowError::Error
            })?;
        let stride = usize::try_from(frame.plane_stride()[0]).unwrap_or(0);
        let data = frame.plane_data(0).map_err(|_| gst::FlowError::Error)?;
        let Some(colorspace) = jpeg else {
            scratch.resize(layout.frame_bytes(), 0);
            if protocol::pack_pixels(data, stride, layout.width, layout.height, map, scratch)
                .is_none()
            {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    ["Buffer of {} bytes is too small for {:?}", data.len(), info]
                );
                return Err(gst::FlowError::Error);
            }
            return Ok(None);
        };
        let encoder = match encoder {
            Some(e) => e,
            None => encoder.insert(Encoder::new().map_err(|e| {
                gst::element_imp_error!(self, gst::LibraryError::Init, ["JPEG encoder: {}", e]);
                gst::FlowError::Error
            })?),
        };
        let image = Image {
            pixels: data,
            width: layout.width,
            height: layout.height,
            pitch: stride,
            colorspace,
        };
        encoder.encode(image, params, scratch).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::LibraryError::Encode,
                ["JPEG encoding failed: {}", e]
            );
            gst::FlowError::Error
        })?;
        Ok(Some(colorspace))
    }

    fn link_failed(&self, error: LinkError) -> gst::FlowError {
        match error {
            LinkError::Interrupted => {
                Stats::bump(&self.stats.dropped);
                gst::FlowError::Flushing
            }
            e => {
                gst::element_imp_error!(self, gst::ResourceError::Write, ["{}", e]);
                gst::FlowError::Error
            }
        }
    }

    /// Reads a receiver's reply: data goes to the bus as `netgear-return`.
    fn handle_reply(&self, parts: &[zmq::Message], multi_client: bool) {
        let Some(first) = parts.first() else { return };
        match protocol::parse_reply(first) {
            Ok(Reply::Text(text)) => gst::trace!(CAT, imp = self, "receiver said: {text}"),
            Ok(Reply::Data { port, data }) => {
                if let (true, Some(p)) = (multi_client, port) {
                    self.state().heard_from.insert(p);
                }
                if !data.is_null() {
                    Stats::bump(&self.stats.returns);
                    self.post_return(&common::json_text(&data), port.filter(|_| multi_client));
                }
            }
            Ok(Reply::Frame { port, payload }) => {
                if let (true, Some(p)) = (multi_client, port) {
                    self.state().heard_from.insert(p);
                }
                let Some(bytes) = parts.get(1) else {
                    self.malformed_reply(&protocol::ProtocolError::PartCount(parts.len()));
                    return;
                };
                let mut decoder = self.state().decoder.take();
                let limit = self.settings().common.max_frame_bytes;
                let sample = common::frame_sample(&payload, bytes, &mut decoder, limit);
                self.state().decoder = decoder;
                match sample {
                    Ok(sample) => {
                        Stats::bump(&self.stats.returns);
                        let mut s =
                            gst::Structure::builder("netgear-return-frame").field("sample", sample);
                        if let (true, Some(p)) = (multi_client, port) {
                            s = s.field("port", u32::from(p));
                        }
                        let msg = gst::message::Element::builder(s.build())
                            .src(&*self.obj())
                            .build();
                        let _ = self.obj().post_message(msg);
                    }
                    Err(e) => self.malformed_reply(&e),
                }
            }
            Err(e) => self.malformed_reply(&e),
        }
    }

    fn malformed_reply(&self, why: &dyn std::fmt::Display) {
        Stats::bump(&self.stats.malformed);
        gst::element_imp_warning!(
            self,
            gst::StreamError::Decode,
            [
                "Ignoring a malformed reply from {}: {}",
                self.endpoints(),
                why
            ]
        );
    }

    fn post_return(&self, data: &str, port: Option<u16>) {
        let mut s = gst::Structure::builder("netgear-return").field("data", data);
        if let Some(p) = port {
            s = s.field("port", u32::from(p));
        }
        let msg = gst::message::Element::builder(s.build())
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }

    fn endpoints(&self) -> String {
        self.state()
            .link
            .as_ref()
            .map(|l| l.config().endpoint_list())
            .unwrap_or_default()
    }

    /// Sends the termination message once. `wait`: give the receiver time to answer
    /// (EOS); otherwise best effort without blocking (stopping without EOS).
    fn send_termination(&self, wait: bool) {
        let (link, header_port, copies) = {
            let mut st = self.state();
            if st.terminated {
                return;
            }
            st.terminated = true;
            let copies = if st.pattern == Pattern::ReqRep {
                st.heard_from.len().max(1)
            } else {
                1
            };
            (st.link.take(), st.header_port, copies)
        };
        let Some(mut link) = link else { return };
        let message = protocol::encode_termination(header_port);
        let answered = link.terminate(&message, copies, wait);
        Stats::bump(&self.stats.terminations);
        gst::debug!(
            CAT,
            imp = self,
            "sent termination to {} (answered: {answered})",
            link.config().endpoint_list()
        );
        self.state().link = Some(link);
    }
}

#[glib::object_subclass]
impl ObjectSubclass for NetGearSink {
    const NAME: &'static str = "GstNetGearSink";
    type Type = super::NetGearSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for NetGearSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = CommonSettings::properties(Role::Sender);
            props.extend([
                glib::ParamSpecBoolean::builder("jpeg-compression")
                    .nick("JPEG compression")
                    .blurb("Encode raw input to JPEG before sending, as vidgear does by default (image/jpeg input is always sent as it is)")
                    .default_value(true)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("jpeg-quality")
                    .nick("JPEG quality")
                    .blurb("JPEG quality of inline compression")
                    .minimum(10)
                    .maximum(100)
                    .default_value(90)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("jpeg-fastdct")
                    .nick("JPEG fast DCT")
                    .blurb("Use the fast, less accurate DCT when encoding; also asks the receiver to decode with it")
                    .default_value(true)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("jpeg-fastupsample")
                    .nick("JPEG fast upsampling")
                    .blurb("Ask the receiver to use fast chroma upsampling when decoding")
                    .default_value(false)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("jpeg-colorspace")
                    .nick("JPEG colorspace")
                    .blurb("Colorspace the receiver decodes JPEG to (BGR, RGB, GRAY, BGRA, …); empty: from the caps, BGR for image/jpeg input")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("message")
                    .nick("Message")
                    .blurb("Sent as 'message' with every frame: JSON if it parses as JSON, else a string (bidirectional mode)")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("overwrite-cert")
                    .nick("Overwrite certificates")
                    .blurb("Regenerate the CURVE key files in cert-dir at start (vidgear's overwrite_cert)")
                    .default_value(false)
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
            "jpeg-compression" => s.jpeg_compression = value.get().unwrap_or(true),
            "jpeg-quality" => s.jpeg_quality = value.get().unwrap_or(90),
            "jpeg-fastdct" => s.jpeg_fastdct = value.get().unwrap_or(true),
            "jpeg-fastupsample" => s.jpeg_fastupsample = value.get().unwrap_or(false),
            "jpeg-colorspace" => {
                s.jpeg_colorspace = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
            "message" => {
                s.message = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                s.message_value = protocol::value_from_text(&s.message);
            }
            "overwrite-cert" => s.overwrite_cert = value.get().unwrap_or(false),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats.to_structure("netgearsink-stats").to_value();
        }
        let s = self.settings();
        if let Some(v) = s.common.property(pspec) {
            return v;
        }
        match pspec.name() {
            "jpeg-compression" => s.jpeg_compression.to_value(),
            "jpeg-quality" => s.jpeg_quality.to_value(),
            "jpeg-fastdct" => s.jpeg_fastdct.to_value(),
            "jpeg-fastupsample" => s.jpeg_fastupsample.to_value(),
            "jpeg-colorspace" => s.jpeg_colorspace.to_value(),
            "message" => s.message.to_value(),
            "overwrite-cert" => s.overwrite_cert.to_value(),
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }
}

impl GstObjectImpl for NetGearSink {}

impl ElementImpl for NetGearSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "NetGear sink",
                "Sink/Network",
                "Sends video frames to a vidgear NetGear receiver (NetGear(receive_mode=True)) over ZeroMQ",
                "gst-plugin-netgear developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = common::raw_or_jpeg_caps(common::SEND_FORMATS.iter().map(|f| f.0));
            vec![gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &caps,
            )
            .expect("static pad template")]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseSinkImpl for NetGearSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings().clone();
        let (config, waker) = common::prepare_start(
            &settings.common,
            Role::Sender,
            settings.overwrite_cert,
            *CAT,
            self.obj().upcast_ref(),
        )?;
        let link = SenderLink::open(config, waker.clone())
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenWrite, ["{}", e]))?;
        gst::info!(
            CAT,
            imp = self,
            "sending to {}",
            link.config().endpoint_list()
        );
        self.stats.reset();
        *self.state() = State {
            link: Some(link),
            waker: Some(waker),
            pattern: settings.common.pattern,
            header_port: settings
                .common
                .multi_server
                .then(|| settings.common.own_port()),
            ..State::default()
        };
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.send_termination(false);
        *self.state() = State::default();
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let s = caps
            .structure(0)
            .ok_or_else(|| gst::loggable_error!(CAT, "empty caps"))?;
        let input = if s.name() == "image/jpeg" {
            Input::Jpeg
        } else {
            let info = gst_video::VideoInfo::from_caps(caps)
                .map_err(|_| gst::loggable_error!(CAT, "invalid caps {caps}"))?;
            let (_, map, dtype, channels, jpeg_name) = common::SEND_FORMATS
                .iter()
                .find(|(f, ..)| *f == info.format())
                .ok_or_else(|| gst::loggable_error!(CAT, "unsupported format in {caps}"))?;
            let layout = RawLayout::new(
                *dtype,
                info.height() as usize,
                info.width() as usize,
                *channels,
            );
            let jpeg = if self.settings().jpeg_compression {
                if jpeg_name.is_none() {
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Format,
                        [
                            "{} cannot be JPEG-compressed: sending raw frames",
                            info.format().to_str()
                        ]
                    );
                }
                jpeg_name.and_then(Colorspace::from_name)
            } else {
                None
            };
            Input::Raw(Box::new(RawInput {
                info,
                map: *map,
                layout,
                jpeg,
            }))
        };
        gst::debug!(CAT, imp = self, "input {input:?}");
        self.state().input = Some(input);
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (link, input, mut scratch, mut encoder, header_port) = {
            let mut st = self.state();
            let input = st.input.clone().ok_or(gst::FlowError::NotNegotiated)?;
            let scratch = std::mem::take(&mut st.scratch);
            (
                st.link.take(),
                input,
                scratch,
                st.encoder.take(),
                st.header_port,
            )
        };
        let Some(mut link) = link else {
            return Err(gst::FlowError::Flushing);
        };
        let multi_client = self.settings().common.multi_client;
        let result = self.send_frame(
            &mut link,
            buffer,
            &input,
            &mut scratch,
            &mut encoder,
            header_port,
        );
        {
            let mut st = self.state();
            st.link = Some(link);
            st.scratch = scratch;
            st.encoder = encoder;
        }
        let reply = result?;
        self.handle_reply(&reply, multi_client);
        Ok(gst::FlowSuccess::Ok)
    }

    fn event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            self.send_termination(true);
        }
        self.parent_event(event)
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
