// SPDX-License-Identifier: MPL-2.0

use super::timing::{Timed, Timing};
/**
 * SECTION:element-netgearsrc
 * @see_also: netgearsink, netgeardemux
 *
 * Receives video frames from a vidgear NetGear sender (`NetGear().send(frame)` in Python)
 * or from `netgearsink`, over ZeroMQ, speaking NetGear's wire protocol. A live source:
 * buffers carry the running time at which they arrived. Raw frames come out as BGR, BGRA,
 * GRAY8 or GRAY16_LE; JPEG frames as `image/jpeg` when downstream takes it, else decoded.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 netgearsrc ! videoconvert ! autovideosink
 * gst-launch-1.0 netgearsrc pattern=pub-sub timeout=5000 ! videoconvert ! autovideosink
 * gst-launch-1.0 netgearsrc ! jpegparse ! matroskamux ! filesink location=feed.mkv
 * ]|
 */
use crate::config::{Pattern, Role};
use crate::formats::{decoded_format, raw_format, reorderable, PLANAR_FORMATS, SEND_FORMATS};
use crate::frames::rate::{frame_duration, RateMode};
use crate::frames::{
    frame_decoder, DecodeTarget, FrameDecoder, FrameError, FrameReader, Output, OutputKey,
    ReturnEncoder, ReturnJpeg, ReturnedFrame, SequenceCheck,
};
use crate::glue::{self, Interrupt, WarningLimiter};
use crate::jpeg::{Colorspace, JpegError};
use crate::link_setup;
use crate::meta;
use crate::properties::{common_properties, string_value, CommonSettings, JsonProperty};
use crate::protocol::{self, Dtype, FrameHeader, Incoming, PayloadKind, RawLayout};
use crate::security::Refusal;
use crate::stats::Stats;
use crate::transport::{HandshakeFailure, LinkError, LinkEvent, Received, ReceiverLink};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use gst_video::VideoFormat;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "netgearsrc",
        gst::DebugColorFlags::empty(),
        Some("NetGear receiver"),
    )
});

/// 0: never end on silence.
const DEFAULT_TIMEOUT_MS: u32 = 0;
/// -1/1: variable (caps 0/1, no durations, nothing held); 0/1 measures the rate from
/// arrival times (see `frames::rate`), which holds the first frames and is opt-in.
const DEFAULT_FRAMERATE: gst::Fraction = gst::Fraction::from_integer(-1);

#[derive(Debug, Clone)]
struct Settings {
    common: CommonSettings,
    return_data: JsonProperty,
    timeout_ms: u32,
    allowed_addresses: String,
    returns: ReturnSettings,
    framerate: gst::Fraction,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            common: CommonSettings::new(Role::Receiver),
            return_data: JsonProperty::default(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            allowed_addresses: String::new(),
            returns: ReturnSettings::default(),
            framerate: DEFAULT_FRAMERATE,
        }
    }
}

/// What the streaming thread works with; taken out of the state while waiting for the
/// network, so no lock is held across the wait.
struct Stream {
    link: ReceiverLink,
    reader: FrameReader,
    /// What the source pad carries now.
    output: Option<Output>,
    /// Whether downstream takes image/jpeg; asked again after a reconfigure.
    jpeg_passthrough: Option<bool>,
    /// The header colorspace JPEG last came in and what it decodes to for downstream.
    decode_choice: Option<(Colorspace, DecodeTarget)>,
    /// The format raw frames last came in and the packed format downstream gets them in.
    raw_choice: Option<(VideoFormat, VideoFormat)>,
    /// Multi-server: senders that sent frames and have not terminated yet.
    servers: BTreeSet<u16>,
    /// Our senders' frame numbers: copies and late frames are dropped.
    sequences: SequenceCheck,
    /// Whether downstream wants `meta::SERVER_EOS`s; asked at the first termination.
    server_eos_wanted: Option<bool>,
    last_message: Instant,
    last_frame: Instant,
    /// Overlapping (see `decode_overlapped`): how long the last receive waited, how long
    /// the last frame took to become a buffer, whether this machine has a core to spare,
    /// the decoder thread once needed, and the next message's result, taken early.
    waited: Duration,
    took: Duration,
    cores: bool,
    decoder: Option<FrameDecoder>,
    ahead: Option<Result<Step, gst::FlowError>>,
    /// While the frame taken ahead is handled: it decodes here, and its bus message waits.
    taking_ahead: bool,
    /// The frame taken ahead's message, posted when that frame is handed out.
    ahead_message: Option<(String, Option<u16>)>,
    /// When the message being handled arrived (running time): its frame's timestamp.
    arrival: Option<gst::ClockTime>,
    /// From the settings at start.
    pattern: Pattern,
    /// Replies are JSON (bidirectional or multi-client).
    json_replies: bool,
    multi_server: bool,
    /// Multi-client: the port named in every reply.
    reply_port: Option<u16>,
    ack: Vec<u8>,
    request_timeout: Duration,
    timeout: Option<Duration>,
    max_frame_bytes: u64,
    silence: Silence,
}

impl Stream {
    fn release_output(&mut self) {
        if let Some(old) = self.output.take() {
            old.release();
        }
    }
}

struct Started {
    /// `None` while the streaming thread has it.
    stream: Option<Box<Stream>>,
    /// Set by `negotiate()`: the next frame asks downstream again.
    renegotiate: bool,
}

#[derive(Default)]
enum State {
    #[default]
    Stopped,
    Started(Started),
}

/// What one received message led to.
enum Step {
    Push(gst::Buffer),
    Again,
    Eos,
}

/// Smaller JPEGs decode in less time than handing them to another thread saves.
const MIN_OVERLAP_PIXELS: usize = 640 * 480;

/// The `return` request pad (bidirectional / multi-client mode): its latest frame goes
/// back with every reply until a newer one arrives, as vidgear's `recv(return_data=frame)`
/// does (with `return-once`, with the next reply only).
#[derive(Default)]
struct Returns {
    pad: Option<gst::Pad>,
    /// Made from the pad's caps; `None` before caps, and while a buffer is being prepared.
    encoder: Option<ReturnEncoder>,
    /// Prepared once per buffer, shared by the replies that carry it.
    frame: Option<Arc<ReturnedFrame>>,
}

const DEFAULT_RETURN_JPEG_QUALITY: u32 = 90;
const MIN_RETURN_JPEG_QUALITY: u32 = 10;
const MAX_RETURN_JPEG_QUALITY: u32 = 100;
/// The source's settings for returned frames.
#[derive(Debug, Clone, Copy)]
struct ReturnSettings {
    once: bool,
    jpeg: ReturnJpeg,
}

impl Default for ReturnSettings {
    fn default() -> Self {
        ReturnSettings {
            once: false,
            jpeg: ReturnJpeg {
                enabled: false,
                quality: DEFAULT_RETURN_JPEG_QUALITY,
                fast_dct: true,
            },
        }
    }
}

impl ReturnSettings {
    /// Applies a `return-*` property of `return_properties()`; `false` for any other.
    fn set_property(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) -> bool {
        let defaults = ReturnSettings::default();
        match pspec.name() {
            "return-once" => self.once = value.get().unwrap_or(defaults.once),
            "return-jpeg" => self.jpeg.enabled = value.get().unwrap_or(defaults.jpeg.enabled),
            "return-jpeg-quality" => {
                self.jpeg.quality = value.get().unwrap_or(defaults.jpeg.quality)
            }
            "return-jpeg-fastdct" => {
                self.jpeg.fast_dct = value.get().unwrap_or(defaults.jpeg.fast_dct)
            }
            _ => return false,
        }
        true
    }

    fn property(&self, pspec: &glib::ParamSpec) -> Option<glib::Value> {
        Some(match pspec.name() {
            "return-once" => self.once.to_value(),
            "return-jpeg" => self.jpeg.enabled.to_value(),
            "return-jpeg-quality" => self.jpeg.quality.to_value(),
            "return-jpeg-fastdct" => self.jpeg.fast_dct.to_value(),
            _ => return None,
        })
    }
}

/// vidgear's receiver give-up (patterns 0/1): after `max` silent periods in a row (each
/// 3 × request-timeout with no message at all) the stream ends; 0 never gives up.
#[derive(Debug, Clone, Copy)]
struct Silence {
    max: u32,
    /// Silent periods since the last message.
    periods: u32,
}

impl Silence {
    fn new(max: u32) -> Self {
        Silence { max, periods: 0 }
    }

    fn heard(&mut self) {
        self.periods = 0;
    }

    /// Counts one more silent period; `true` once there have been `max` in a row.
    fn gives_up(&mut self) -> bool {
        self.periods = self.periods.saturating_add(1);
        self.max > 0 && self.periods >= self.max
    }
}

#[derive(Default)]
pub struct NetGearSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    /// Its own lock: the return pad's buffers come from another streaming thread.
    returns: Mutex<Returns>,
    interrupt: Interrupt,
    warnings: WarningLimiter,
    /// The port the link bound (read-only `bound-port`), 0 when stopped.
    bound_port: AtomicU32,
    stats: Stats,
    /// Frame rate and held frames; its own lock, taken only by the streaming thread and
    /// the latency query.
    timing: Mutex<Option<Timing>>,
}

impl NetGearSrc {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        glue::lock(&self.settings)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        glue::lock(&self.state)
    }

    fn returns(&self) -> MutexGuard<'_, Returns> {
        glue::lock(&self.returns)
    }

    /// The stream, and whether downstream asked to renegotiate since the last frame.
    fn take_stream(&self) -> Option<(Box<Stream>, bool)> {
        match &mut *self.state() {
            State::Started(started) => {
                let stream = started.stream.take()?;
                Some((stream, std::mem::take(&mut started.renegotiate)))
            }
            State::Stopped => None,
        }
    }

    fn put_stream(&self, stream: Box<Stream>) {
        if let State::Started(started) = &mut *self.state() {
            started.stream = Some(stream);
        }
    }

    /// Secure mode: the authentication turned a client away (called from its thread).
    fn refused(&self, peer: &str, why: &Refusal) {
        Stats::bump(&self.stats.refused);
        let peer = if peer.is_empty() { "?" } else { peer };
        if self.warnings.due() {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::NotAuthorized,
                ["Refused a client from {}: {}", peer, why]
            );
        }
        gst::warning!(CAT, imp = self, "refused a client from {peer}: {why}");
    }

    /// A link event: connection changes go to the bus; a failed handshake that the
    /// authenticator did not already report (wrong server key, wrong mechanism) is warned
    /// about like a refusal.
    fn link_event(&self, event: LinkEvent) {
        glue::post_link_event(self.obj().upcast_ref(), *CAT, &event);
        if let LinkEvent::HandshakeFailed { reason, peer, .. } = &event {
            if !matches!(reason, HandshakeFailure::Auth { .. }) && self.warnings.due() {
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::NotAuthorized,
                    [
                        "Refused a client from {}: {}",
                        peer.as_deref().unwrap_or("?"),
                        reason.reason()
                    ]
                );
            }
        }
    }

    /// Counts a rejected message and warns on the bus, at most once per interval.
    fn malformed(&self, stream: &Stream, why: &dyn std::fmt::Display) {
        Stats::bump(&self.stats.malformed);
        self.warn_dropped(stream, "a malformed message", why);
    }

    fn warn_dropped(&self, stream: &Stream, what: &str, why: &dyn std::fmt::Display) {
        let endpoints = stream.link.config().endpoint_list();
        if self.warnings.due() {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Decode,
                ["Dropped {} on {}: {}", what, endpoints, why]
            );
        } else {
            gst::debug!(CAT, imp = self, "dropped {what} on {endpoints}: {why}");
        }
    }

    /// Waits for the next message and turns it into a step.
    fn receive(&self, stream: &mut Stream) -> Result<Step, gst::FlowError> {
        if let Some(step) = stream.ahead.take() {
            if let Some((text, port)) = stream.ahead_message.take() {
                self.post_message(text, port);
            }
            return step;
        }
        let rebind_at = stream
            .pattern
            .is_acknowledged()
            .then(|| stream.last_message + stream.request_timeout * 3);
        let eos_at = stream.timeout.map(|t| stream.last_frame + t);
        let deadline = match (rebind_at, eos_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let deadline = self.hold_deadline(deadline);
        let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let waiting = Instant::now();
        let received = stream.link.recv(wait, &self.stats);
        stream.waited = waiting.elapsed();
        match received {
            Err(e) => Err(self.link_failed(e, gst::ResourceError::Read)),
            Ok(Received::TimedOut) => self.on_silence(stream, rebind_at, eos_at),
            Ok(Received::Message(parts)) => {
                stream.arrival = self.arrival_time();
                stream.last_message = Instant::now();
                stream.silence.heard();
                self.on_message(stream, parts)
            }
        }
    }

    fn link_failed(&self, error: LinkError, kind: gst::ResourceError) -> gst::FlowError {
        if let LinkError::Interrupted = error {
            return gst::FlowError::Flushing;
        }
        gst::element_imp_error!(self, kind, ["{}", error]);
        gst::FlowError::Error
    }

    /// Nothing arrived before a deadline: end of stream (`timeout`, or `max-retries`
    /// silent periods in a row), or rebind so a new sender can replace a dead one
    /// (patterns 0/1).
    fn on_silence(
        &self,
        stream: &mut Stream,
        rebind_at: Option<Instant>,
        eos_at: Option<Instant>,
    ) -> Result<Step, gst::FlowError> {
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
            if stream.silence.gives_up() {
                self.give_up(stream);
                return Ok(Step::Eos);
            }
            gst::info!(
                CAT,
                imp = self,
                "silence on {}: rebinding for a new sender",
                stream.link.config().endpoint_list()
            );
            stream
                .link
                .rebind(&self.stats)
                .map_err(|e| self.link_failed(e, gst::ResourceError::OpenRead))?;
            stream.last_message = now;
        }
        Ok(Step::Again)
    }

    /// Says on the bus why the stream ends: `max-retries` silent periods in a row, each
    /// 3 × request-timeout, as vidgear's receiver abandons an offline sender.
    fn give_up(&self, stream: &Stream) {
        let period_ms = (stream.request_timeout * 3).as_millis();
        let endpoints = stream.link.config().endpoint_list();
        gst::element_imp_warning!(
            self,
            gst::ResourceError::Read,
            (
                "No sender for {} × {} ms on {}: end of stream",
                stream.silence.periods,
                period_ms,
                endpoints
            ),
            [
                "max-retries={} silent periods of 3 × request-timeout={} ms",
                stream.silence.max,
                stream.request_timeout.as_millis()
            ]
        );
    }

    fn on_message(
        &self,
        stream: &mut Stream,
        mut parts: Vec<zmq::Message>,
    ) -> Result<Step, gst::FlowError> {
        let parsed = parts
            .first()
            .ok_or(protocol::ProtocolError::PartCount(0))
            .and_then(|h| protocol::parse_header(h));
        if let Ok(Incoming::Terminate { port }) = parsed {
            return self.on_termination(stream, port);
        }
        // Answer before decoding, as vidgear does; a REP socket must answer every request.
        if stream.pattern.is_acknowledged() {
            self.acknowledge(stream)?;
        }
        let header = match parsed {
            Ok(Incoming::Frame(h)) => h,
            Ok(Incoming::Terminate { .. }) => return Ok(Step::Again),
            Err(e) => {
                self.malformed(stream, &e);
                return Ok(Step::Again);
            }
        };
        if parts.len() != 2 {
            let error = protocol::ProtocolError::PartCount(parts.len());
            self.malformed(stream, &error);
            return Ok(Step::Again);
        }
        if let Err(repeated) = stream.sequences.admit(header.sequence) {
            Stats::bump(&self.stats.duplicates);
            gst::debug!(CAT, imp = self, "dropped {repeated}");
            return Ok(Step::Again);
        }
        let payload = parts.swap_remove(1);
        Ok(self.on_frame(stream, &header, payload))
    }

    fn on_termination(
        &self,
        stream: &mut Stream,
        port: Option<u16>,
    ) -> Result<Step, gst::FlowError> {
        Stats::bump(&self.stats.terminations);
        if stream.pattern == Pattern::ReqRep {
            let answer = match stream.multi_server {
                true => protocol::TERMINATION_ACK_MULTISERVER,
                false => protocol::TERMINATION_ACK,
            };
            self.reply(stream, &[answer.as_bytes()])?;
        }
        if !stream.multi_server {
            gst::info!(CAT, imp = self, "sender terminated: end of stream");
            return Ok(Step::Eos);
        }
        if let Some(p) = port.filter(|p| stream.servers.remove(p)) {
            self.announce_server_eos(stream, p);
        }
        let left = stream.servers.len();
        gst::info!(CAT, imp = self, "server {port:?} terminated, {left} left");
        Ok(if left == 0 { Step::Eos } else { Step::Again })
    }

    /// Tells downstream that server `port` ended, if downstream asked for it (a custom
    /// event stops some consumers, e.g. `appsink`'s pull, so it goes only to those that
    /// answer the query of the same name: `netgeardemux`).
    fn announce_server_eos(&self, stream: &mut Stream, port: u16) {
        let pad = self.obj().src_pad().clone();
        let wanted = *stream.server_eos_wanted.get_or_insert_with(|| {
            let mut query = gst::query::Custom::new(gst::Structure::new_empty(meta::SERVER_EOS));
            pad.peer_query(&mut query)
        });
        if wanted {
            let s = gst::Structure::builder(meta::SERVER_EOS)
                .field("port", u32::from(port))
                .build();
            pad.push_event(gst::event::CustomDownstream::new(s));
        }
    }

    /// The reply to a frame: a returned frame, return data, or the plain acknowledgement.
    fn acknowledge(&self, stream: &mut Stream) -> Result<(), gst::FlowError> {
        if !stream.json_replies {
            let ack = stream.ack.clone();
            return self.reply(stream, &[&ack]);
        }
        if let Some(frame) = self.frame_to_return() {
            let header = protocol::encode_frame_reply(stream.reply_port, &frame.kind);
            return self.reply(stream, &[&header, frame.bytes()]);
        }
        // `return-data` may change while playing: read for every reply on purpose.
        let data = self.settings().return_data.json().clone();
        let answer = protocol::encode_data_reply(stream.reply_port, &data);
        self.reply(stream, &[&answer])
    }

    /// The frame this reply carries: the latest returned one, which stays for the next
    /// replies too unless `return-once` is set.
    fn frame_to_return(&self) -> Option<Arc<ReturnedFrame>> {
        let once = self.settings().returns.once;
        let mut returns = self.returns();
        match once {
            true => returns.frame.take(),
            false => returns.frame.clone(),
        }
    }

    fn reply(&self, stream: &mut Stream, parts: &[&[u8]]) -> Result<(), gst::FlowError> {
        match stream.link.reply(parts) {
            Ok(true) => Ok(()),
            Ok(false) => {
                gst::debug!(CAT, imp = self, "reply dropped: the sender is gone");
                Ok(())
            }
            Err(e) => Err(self.link_failed(e, gst::ResourceError::Write)),
        }
    }

    /// A frame's payload as a buffer with its meta, or dropped (counted and warned about).
    fn on_frame(&self, stream: &mut Stream, header: &FrameHeader, payload: zmq::Message) -> Step {
        let payload_len = payload.len();
        // Taken now: decoding may receive the next frame meanwhile.
        let arrival = stream.arrival;
        let mut buffer = match self.frame_buffer(stream, &header.payload, payload) {
            Ok(b) => b,
            Err(FrameError::Refused(caps)) => {
                Stats::bump(&self.stats.dropped);
                // The refused caps stay pending on the pad: the next frame sets its own.
                stream.release_output();
                let why = format!(
                    "downstream does not accept {caps}; put a videoconvert after netgearsrc for other formats"
                );
                self.warn_dropped(stream, "a frame", &why);
                return Step::Again;
            }
            Err(why) => {
                self.malformed(stream, &why);
                return Step::Again;
            }
        };
        let port = header.port.filter(|_| stream.multi_server);
        if let Some(p) = port {
            stream.servers.insert(p);
        }
        // Stamped with its arrival, not when it is handed out (a frame received ahead of
        // the one before it is handed out after it).
        buffer.make_mut().set_pts(arrival);
        if let Some(message) = self.attach_message(buffer.make_mut(), header, port) {
            match stream.taking_ahead {
                true => stream.ahead_message = Some(message),
                false => self.post_message(message.0, message.1),
            }
        }
        stream.last_frame = Instant::now();
        Stats::bump(&self.stats.frames);
        Stats::add(&self.stats.bytes, payload_len as u64);
        Step::Push(buffer)
    }

    /// The frame's message (and server port) as `NetGearMeta`; returns the message to post.
    fn attach_message(
        &self,
        buffer: &mut gst::BufferRef,
        header: &FrameHeader,
        port: Option<u16>,
    ) -> Option<(String, Option<u16>)> {
        let message = header.message.as_ref().map(|m| m.as_str().to_owned());
        if message.is_none() && port.is_none() {
            return None;
        }
        let info = meta::NetGearInfo {
            message: message.clone(),
            port,
        };
        meta::attach(buffer, &info);
        message.map(|text| (text, port))
    }

    /// A frame's message on the bus, as `netgear-message`.
    fn post_message(&self, text: String, port: Option<u16>) {
        let fields = |b: gst::structure::Builder| b.field("message", text);
        glue::post_element_message(self.obj().upcast_ref(), "netgear-message", fields, port);
    }

    /// Turns a frame's payload into a buffer, renegotiating when the frame format changes.
    fn frame_buffer(
        &self,
        stream: &mut Stream,
        kind: &PayloadKind,
        payload: zmq::Message,
    ) -> Result<gst::Buffer, FrameError> {
        let passthrough = matches!(kind, PayloadKind::Jpeg(_)) && self.jpeg_passthrough(stream);
        let key = match stream.reader.output_key(kind, &payload, passthrough)? {
            OutputKey::Decoded {
                target: DecodeTarget::Packed(colorspace),
                width,
                height,
            } => OutputKey::Decoded {
                target: self.decode_target(stream, colorspace),
                width,
                height,
            },
            OutputKey::Raw(layout) => self.raw_target(stream, layout),
            key => key,
        };
        if stream.output.as_ref().is_none_or(|o| o.key != key) {
            let output = Output::new(key, stream.max_frame_bytes, true)?;
            gst::debug!(CAT, imp = self, "new caps {}", output.caps);
            let applied = self.set_output_caps(&output.caps).is_ok();
            stream.release_output();
            if !applied {
                return Err(FrameError::Refused(output.caps.to_string()));
            }
            stream.output = Some(output);
        }
        if self.behind(stream) {
            return self.decode_overlapped(stream, kind, payload);
        }
        let output = stream.output.as_ref().ok_or(FrameError::Buffer)?;
        // Decodes on this thread only: an overlapped step would count the wait for the next
        // frame too and keep itself going.
        let started = Instant::now();
        let buffer = stream.reader.fill(output, kind, payload);
        stream.took = started.elapsed();
        buffer
    }

    /// Whether frames wait for us (the next one was there before we finished the last):
    /// only then is decoding overlapped with receiving, so a live stream slower than one
    /// decoder gains no latency. Patterns 0/1: one frame per answer, nothing skipped.
    fn behind(&self, stream: &Stream) -> bool {
        let large = matches!(
            stream.output.as_ref().map(|o| &o.key),
            Some(OutputKey::Decoded { width, height, .. }) if width * height >= MIN_OVERLAP_PIXELS
        );
        large
            && stream.cores
            && stream.pattern.is_acknowledged()
            && !stream.taking_ahead
            && stream.ahead.is_none()
            && stream.waited < stream.took / 4
    }

    /// Decodes this frame on the decoder thread while receiving the next, which, if it
    /// comes within a decode's time and needs the same output, is answered and made into a
    /// buffer here, to be pushed after this one.
    fn decode_overlapped(
        &self,
        stream: &mut Stream,
        kind: &PayloadKind,
        payload: zmq::Message,
    ) -> Result<gst::Buffer, FrameError> {
        if stream.decoder.is_none() {
            stream.decoder = frame_decoder().ok();
        }
        let output = stream.output.as_ref().ok_or(FrameError::Buffer)?;
        let Some(decoder) = stream.decoder.as_mut() else {
            // No thread to spare: decode here, as before.
            return stream.reader.fill(output, kind, payload);
        };
        let job = match stream.reader.prepare_decode(output, kind, payload)? {
            Ok(job) => job,
            Err(payload) => return stream.reader.fill(output, kind, payload),
        };
        let lost = || FrameError::Jpeg(JpegError::Library("the decoder thread failed".into()));
        decoder.submit(job).map_err(|_| lost())?;
        Stats::bump(&self.stats.parallel_decodes);
        let within = stream.took;
        self.receive_ahead(stream, within);
        // A decode is bounded CPU work: this wait ends without unlock()'s help.
        match stream.decoder.as_mut().and_then(|d| d.next_result()) {
            Some(Ok(decoded)) => decoded,
            _ => Err(lost()),
        }
    }

    /// Takes the next message if it arrives `within`: a frame for the current output is
    /// handled now (its result kept for the next create()); anything else is given back,
    /// unanswered, for the next receive.
    fn receive_ahead(&self, stream: &mut Stream, within: Duration) {
        let parts = match stream.link.recv(Some(within), &self.stats) {
            Ok(Received::Message(parts)) => parts,
            // unlock() included: its waker still stands for the next receive, which reports it.
            Ok(Received::TimedOut) | Err(LinkError::Interrupted) => return,
            Err(e) => {
                stream.ahead = Some(Err(self.link_failed(e, gst::ResourceError::Read)));
                return;
            }
        };
        if !self.same_output(stream, &parts) {
            stream.link.hold(parts);
            return;
        }
        stream.arrival = self.arrival_time();
        stream.last_message = Instant::now();
        stream.silence.heard();
        stream.taking_ahead = true;
        let step = self.on_message(stream, parts);
        stream.taking_ahead = false;
        stream.ahead = Some(step);
    }

    /// Whether a message is a JPEG frame that decodes into what the pad carries now.
    fn same_output(&self, stream: &mut Stream, parts: &[zmq::Message]) -> bool {
        let (Some(head), Some(payload), 2) = (parts.first(), parts.get(1), parts.len()) else {
            return false;
        };
        let Ok(Incoming::Frame(header)) = protocol::parse_header(head) else {
            return false;
        };
        let Ok(OutputKey::Decoded {
            target: DecodeTarget::Packed(colorspace),
            width,
            height,
        }) = stream.reader.output_key(&header.payload, payload, false)
        else {
            return false;
        };
        let chosen = match stream.decode_choice {
            Some((from, chosen)) if from == colorspace => chosen,
            _ => return false,
        };
        let key = OutputKey::Decoded {
            target: chosen,
            width,
            height,
        };
        stream.output.as_ref().is_some_and(|o| o.key == key)
    }

    /// What a JPEG decodes into: the header's colorspace if downstream takes it, else the
    /// first packed layout libjpeg-turbo writes that downstream takes, else planar YUV
    /// (I420, Y42B, Y444), so nothing needs converting downstream. Asked once per header
    /// colorspace, and again after a reconfigure.
    fn decode_target(&self, stream: &mut Stream, from: Colorspace) -> DecodeTarget {
        if let Some((header, chosen)) = stream.decode_choice {
            if header == from {
                return chosen;
            }
        }
        let takes = self.downstream_takes();
        let packed = SEND_FORMATS
            .iter()
            .filter_map(|f| Some((f.video, Colorspace::from_name(f.jpeg_colorspace?)?)))
            .find(|(video, _)| takes(*video))
            .map(|(_, colorspace)| DecodeTarget::Packed(colorspace));
        let planar = || {
            PLANAR_FORMATS
                .iter()
                .find(|(video, _)| takes(*video))
                .map(|(_, subsampling)| DecodeTarget::Planar(*subsampling))
        };
        let chosen = match takes(decoded_format(from.name()).1) {
            true => DecodeTarget::Packed(from),
            false => packed.or_else(planar).unwrap_or(DecodeTarget::Packed(from)),
        };
        gst::info!(
            CAT,
            imp = self,
            "JPEG with colorspace {} decodes to {chosen:?}",
            from.name()
        );
        stream.decode_choice = Some((from, chosen));
        chosen
    }

    /// Raw frames as they came if downstream takes their format, else rewritten into a
    /// packed layout downstream takes (3 and 4 channels). Asked once per format.
    fn raw_target(&self, stream: &mut Stream, layout: RawLayout) -> OutputKey {
        let Some(format) = raw_format(&layout).filter(|_| layout.dtype == Dtype::U8) else {
            return OutputKey::Raw(layout);
        };
        let chosen = match stream.raw_choice {
            Some((came, chosen)) if came == format => chosen,
            _ => {
                let takes = self.downstream_takes();
                let chosen = match takes(format) {
                    true => format,
                    false => reorderable(layout.channels)
                        .map(|f| f.video)
                        .find(|video| takes(*video))
                        .unwrap_or(format),
                };
                gst::info!(
                    CAT,
                    imp = self,
                    "raw {format:?} frames go out as {chosen:?}"
                );
                stream.raw_choice = Some((format, chosen));
                chosen
            }
        };
        match chosen == format {
            true => OutputKey::Raw(layout),
            false => OutputKey::Reordered {
                layout,
                format: chosen,
            },
        }
    }

    /// Whether downstream takes a video format (asks its caps once per call).
    fn downstream_takes(&self) -> impl Fn(VideoFormat) -> bool {
        let peer = self.obj().src_pad().peer_query_caps(None);
        move |format| peer.can_intersect(&gst_video::VideoCapsBuilder::new().format(format).build())
    }

    /// Whether downstream takes JPEG as it is (asked once, and again after a reconfigure).
    fn jpeg_passthrough(&self, stream: &mut Stream) -> bool {
        if let Some(decided) = stream.jpeg_passthrough {
            return decided;
        }
        let jpeg = gst::Caps::builder("image/jpeg").build();
        let takes = self
            .obj()
            .src_pad()
            .peer_query_caps(Some(&jpeg))
            .can_intersect(&jpeg);
        let how = if takes {
            "pushed as image/jpeg"
        } else {
            "decoded to raw"
        };
        gst::info!(CAT, imp = self, "JPEG frames: {how}");
        stream.jpeg_passthrough = Some(takes);
        takes
    }

    fn open_stream(&self, settings: &Settings) -> Result<Box<Stream>, gst::ErrorMessage> {
        let c = &settings.common;
        let options = link_setup::KeyOptions {
            overwrite: false,
            allowed_addresses: &settings.allowed_addresses,
        };
        let element = self.obj();
        let (mut config, waker) =
            link_setup::prepare_start(c, Role::Receiver, options, *CAT, element.upcast_ref())?;
        config.events = glue::link_events(&*element, |src, event| src.imp().link_event(event));
        let element = element.downgrade();
        let on_refused = Box::new(move |peer: &str, why: &Refusal| {
            if let Some(element) = element.upgrade() {
                element.imp().refused(peer, why);
            }
        });
        let link = ReceiverLink::open(config, waker.clone(), on_refused)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ["{}", e]))?;
        self.interrupt.arm(waker);
        let now = Instant::now();
        Ok(Box::new(Stream {
            link,
            reader: FrameReader::default(),
            output: None,
            jpeg_passthrough: None,
            decode_choice: None,
            raw_choice: None,
            servers: BTreeSet::new(),
            sequences: SequenceCheck::default(),
            server_eos_wanted: None,
            last_message: now,
            last_frame: now,
            waited: Duration::ZERO,
            took: Duration::ZERO,
            cores: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
            decoder: None,
            ahead: None,
            taking_ahead: false,
            ahead_message: None,
            arrival: None,
            pattern: c.pattern,
            json_replies: c.bidirectional || c.multi_client,
            multi_server: c.multi_server,
            reply_port: c.multi_client.then(|| c.own_port()),
            ack: protocol::encode_ack(&protocol::device_id()),
            request_timeout: Duration::from_millis(u64::from(c.request_timeout_ms)),
            timeout: (settings.timeout_ms > 0)
                .then(|| Duration::from_millis(u64::from(settings.timeout_ms))),
            max_frame_bytes: c.max_frame_bytes,
            silence: Silence::new(c.max_retries),
        }))
    }
}

/// The `return` request pad's glue.
impl NetGearSrc {
    /// Prepares the buffer once (packed or JPEG-encoded) and keeps it as the frame the
    /// next replies carry. The encoder is taken out meanwhile, so replies are not held up.
    fn return_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let jpeg = self.settings().returns.jpeg;
        let mut encoder = self
            .returns()
            .encoder
            .take()
            .ok_or(gst::FlowError::NotNegotiated)?;
        if let Some(format) = encoder.cannot_compress(&jpeg) {
            gst::debug!(CAT, imp = self, "{format:?} cannot be JPEG: returned raw");
        }
        let prepared = encoder.prepare(&buffer, &jpeg);
        let mut returns = self.returns();
        // A caps event may not come in between (same thread); keep the encoder unless
        // the pad was released meanwhile.
        if returns.pad.is_some() && returns.encoder.is_none() {
            returns.encoder = Some(encoder);
        }
        match prepared {
            Ok(frame) => {
                returns.frame = Some(Arc::new(frame));
                Ok(gst::FlowSuccess::Ok)
            }
            Err(e) => {
                drop(returns);
                gst::element_imp_error!(self, gst::StreamError::Format, ["Return frame: {}", e]);
                Err(gst::FlowError::Error)
            }
        }
    }

    fn return_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => match ReturnEncoder::new(c.caps()) {
                Ok(encoder) => {
                    self.returns().encoder = Some(encoder);
                    true
                }
                Err(e) => {
                    gst::warning!(CAT, imp = self, "return pad: {e}");
                    self.returns().encoder = None;
                    false
                }
            },
            gst::EventView::FlushStart(_) => {
                self.returns().frame = None;
                true
            }
            // The return branch ending does not end the stream of frames we receive; its
            // last frame keeps going back, as vidgear's return_data stays until replaced.
            gst::EventView::Eos(_)
            | gst::EventView::Segment(_)
            | gst::EventView::StreamStart(_) => true,
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

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

#[glib::object_subclass]
impl ObjectSubclass for NetGearSrc {
    const NAME: &'static str = "GstNetGearSrc";
    type Type = super::NetGearSrc;
    type ParentType = gst_base::PushSrc;
    type Interfaces = (gst::URIHandler,);
}

fn src_properties() -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecString::builder("return-data")
            .nick("Return data")
            .blurb("Returned to the sender with every reply in bidirectional / multi-client mode: JSON if it parses, else a string; may change while playing")
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("timeout")
            .nick("Timeout")
            .blurb("End the stream (EOS) when no frame arrives for this many milliseconds; 0 waits forever. Useful with pattern=pub-sub, whose termination message can be lost")
            .default_value(DEFAULT_TIMEOUT_MS)
            .mutable_ready()
            .build(),
        gst::ParamSpecFraction::builder("framerate")
            .nick("Frame rate")
            .blurb("Frame rate announced in the caps, buffers get its duration (recorders such as mp4mux need it). -1/1 (default): variable, caps say 0/1, no durations; 0/1: measured from the first frames' arrival (held up to 10 frames or 0.5 s) and snapped to a common rate; N/D: as given")
            .minimum(gst::Fraction::new(-1, 1))
            .maximum(gst::Fraction::new(i32::MAX, 1))
            .default_value(DEFAULT_FRAMERATE)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("bound-port")
            .nick("Bound port")
            .blurb("The port the source listens on while started (the one the system picked with port=0); 0 when stopped or for ipc")
            .maximum(65535)
            .read_only()
            .build(),
        glib::ParamSpecString::builder("allowed-addresses")
            .nick("Allowed addresses")
            .blurb("Secure mode: comma-separated IPs and CIDR ranges (e.g. \"127.0.0.1,10.0.0.0/8,::1\") the authenticator lets in before checking keys; empty or \"*\": any address")
            .mutable_ready()
            .build(),
    ]
}

/// How frames from the `return` pad go back (vidgear's receiver with `return_data=frame`).
fn return_properties() -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecBoolean::builder("return-once")
            .nick("Return once")
            .blurb("Send a frame from the return pad with the next reply only, return-data with the ones after it. Default false: the latest frame goes back with every reply until a newer one arrives, as vidgear's return_data does")
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder("return-jpeg")
            .nick("Return JPEG")
            .blurb("JPEG-compress raw frames from the return pad (4:2:2, gray for GRAY8; GRAY16_LE stays raw), as vidgear's receiver does with jpeg_compression on; each frame is encoded once. Default false: raw, byte for byte. image/jpeg input goes as it is either way")
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("return-jpeg-quality")
            .nick("Return JPEG quality")
            .blurb("JPEG quality of returned frames (vidgear's jpeg_compression_quality)")
            .minimum(MIN_RETURN_JPEG_QUALITY)
            .maximum(MAX_RETURN_JPEG_QUALITY)
            .default_value(DEFAULT_RETURN_JPEG_QUALITY)
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder("return-jpeg-fastdct")
            .nick("Return JPEG fast DCT")
            .blurb("Encode returned frames with the fast DCT and ask the sender to decode with it (vidgear's jpeg_compression_fastdct)")
            .default_value(true)
            .mutable_playing()
            .build(),
    ]
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
            let mut props = common_properties(Role::Receiver);
            props.extend(src_properties());
            props.extend(return_properties());
            props.push(crate::uri::uri_property());
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.name() == "uri" {
            return self.set_uri_property(value);
        }
        let mut s = self.settings();
        gst::debug!(CAT, imp = self, "{} set", pspec.name());
        if s.common.set_property(value, pspec) || s.returns.set_property(value, pspec) {
            return;
        }
        match pspec.name() {
            "return-data" => s.return_data.set(value),
            "timeout" => s.timeout_ms = value.get().unwrap_or(DEFAULT_TIMEOUT_MS),
            "allowed-addresses" => s.allowed_addresses = string_value(value),
            "framerate" => s.framerate = value.get().unwrap_or(DEFAULT_FRAMERATE),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "uri" => return crate::uri::element_uri(self.obj().upcast_ref()).to_value(),
            "stats" => return self.stats.to_structure("netgearsrc-stats").to_value(),
            "bound-port" => return self.bound_port.load(Ordering::Relaxed).to_value(),
            _ => {}
        }
        let s = self.settings();
        if let Some(v) = s
            .common
            .property(pspec)
            .or_else(|| s.returns.property(pspec))
        {
            return v;
        }
        match pspec.name() {
            "return-data" => s.return_data.to_value(),
            "timeout" => s.timeout_ms.to_value(),
            "allowed-addresses" => s.allowed_addresses.to_value(),
            "framerate" => s.framerate.to_value(),
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
            let caps = crate::formats::src_caps();
            let src = gst::PadTemplate::new(
                "src",
                gst::PadDirection::Src,
                gst::PadPresence::Always,
                &caps,
            )
            .expect("static pad template");
            let ret = gst::PadTemplate::new(
                "return",
                gst::PadDirection::Sink,
                gst::PadPresence::Request,
                &crate::formats::send_caps(),
            )
            .expect("static pad template");
            vec![src, ret]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseSrcImpl for NetGearSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        // The settings as they are now hold for the whole stream, except `return-data`
        // (mutable-playing), which `acknowledge` reads per reply.
        let settings = self.settings().clone();
        let stream = self.open_stream(&settings)?;
        let bound = stream.link.bound_port().unwrap_or(0);
        self.bound_port.store(u32::from(bound), Ordering::Relaxed);
        gst::info!(
            CAT,
            imp = self,
            "listening on {} (secure: {:?})",
            stream.link.config().endpoint_list(),
            stream.link.config().curve
        );
        self.stats.reset();
        self.warnings.reset();
        *self.timing() = Some(Timing::new(RateMode::from_property(settings.framerate)));
        *self.state() = State::Started(Started {
            stream: Some(stream),
            renegotiate: false,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::take(&mut *self.state());
        if let State::Started(Started {
            stream: Some(mut stream),
            ..
        }) = state
        {
            stream.release_output();
        }
        self.interrupt.disarm();
        self.bound_port.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Caps come from the frames themselves, set in `create()`. A reconfigure (downstream
    /// changed) makes the next frame ask again whether JPEG can pass and set its caps anew.
    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        if let State::Started(started) = &mut *self.state() {
            started.renegotiate = true;
        }
        Ok(())
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.interrupt.unlock();
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.interrupt.unlock_stop();
        Ok(())
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            return self.answer_latency(q);
        }
        BaseSrcImplExt::parent_query(self, query)
    }
}

impl PushSrcImpl for NetGearSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        if let Some(kept) = self.take_kept_frame()? {
            return Ok(kept);
        }
        loop {
            let (mut stream, renegotiate) = self.take_stream().ok_or(gst::FlowError::Flushing)?;
            if renegotiate {
                stream.jpeg_passthrough = None;
                stream.decode_choice = None;
                stream.raw_choice = None;
                stream.server_eos_wanted = None;
                stream.release_output();
            }
            let step = self.receive(&mut stream);
            self.put_stream(stream);
            match step? {
                Step::Push(buffer) => match self.timed(buffer)? {
                    Some(ready) => return Ok(ready),
                    None => continue,
                },
                Step::Again => match self.held_after_window()? {
                    Some(ready) => return Ok(ready),
                    None => continue,
                },
                Step::Eos => return self.held_before_eos(),
            }
        }
    }
}

/// `netgear://` URIs (see `crate::uri`): playbin and uridecodebin find the element by them.
impl URIHandlerImpl for NetGearSrc {
    const URI_TYPE: gst::URIType = gst::URIType::Src;

    fn protocols() -> &'static [&'static str] {
        crate::uri::PROTOCOLS
    }

    fn uri(&self) -> Option<String> {
        Some(crate::uri::element_uri(self.obj().upcast_ref()))
    }

    fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
        gst::debug!(CAT, imp = self, "setting URI {uri}");
        crate::uri::apply(self.obj().upcast_ref(), Role::Receiver, uri)
    }
}

impl NetGearSrc {
    /// The `uri` property: a refused URI changes nothing and is logged (setters cannot fail).
    fn set_uri_property(&self, value: &glib::Value) {
        let uri = crate::properties::string_value(value);
        if let Err(e) = self.set_uri(&uri) {
            gst::error!(CAT, imp = self, "{}", e);
        }
    }
}

/// Frame rate, durations and latency (see `frames::rate` and `timing`).
impl NetGearSrc {
    fn timing(&self) -> MutexGuard<'_, Option<Timing>> {
        glue::lock(&self.timing)
    }

    /// Sets the caps a frame needs, with the frame rate; while the rate is measured they
    /// wait for it (the held frames are pushed after them).
    fn set_output_caps(&self, caps: &gst::Caps) -> Result<(), glib::BoolError> {
        let caps = match self.timing().as_mut() {
            Some(timing) => timing.caps_for(caps),
            None => Some(caps.clone()),
        };
        // A refused caps event is still stored and fails the next push, which would end
        // the stream: ask downstream first.
        match caps {
            Some(caps) if !self.obj().src_pad().peer_query_accept_caps(&caps) => {
                Err(glib::bool_error!("downstream does not accept {caps}"))
            }
            Some(caps) => self.obj().set_caps(&caps),
            None => Ok(()),
        }
    }

    /// The running time now, at which a frame arrived.
    fn arrival_time(&self) -> Option<gst::ClockTime> {
        let obj = self.obj();
        let now = obj.clock()?.time();
        Some(now.saturating_sub(obj.base_time()?))
    }

    /// A frame stamped with its arrival and duration: pushed now, or held while measuring.
    fn timed(&self, buffer: gst::Buffer) -> Result<Option<CreateSuccess>, gst::FlowError> {
        // Frames carry their arrival (see `on_frame`).
        let arrival = buffer.pts().or_else(|| self.arrival_time());
        let timed = match self.timing().as_mut() {
            Some(timing) => {
                let was_measuring = timing.is_measuring();
                let timed = timing.frame(buffer, arrival);
                if was_measuring && !timing.is_measuring() {
                    self.rate_decided(timing.rate());
                }
                timed
            }
            None => Timed::Push(None, vec![buffer]),
        };
        self.ready(timed)
    }

    fn rate_decided(&self, rate: Option<gst::Fraction>) {
        match rate {
            Some(r) => gst::info!(
                CAT,
                imp = self,
                "measured frame rate: {}/{}",
                r.numer(),
                r.denom()
            ),
            None => gst::info!(
                CAT,
                imp = self,
                "frame rate unknown: announcing a variable rate"
            ),
        }
        // The minimum latency is one frame interval now.
        let _ = self
            .obj()
            .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
    }

    /// Sets the caps, if any, and returns the buffers as one create() result.
    fn ready(&self, timed: Timed) -> Result<Option<CreateSuccess>, gst::FlowError> {
        let Timed::Push(caps, mut buffers) = timed else {
            return Ok(None);
        };
        if let Some(caps) = caps {
            gst::debug!(CAT, imp = self, "caps with the frame rate: {caps}");
            if self.obj().set_caps(&caps).is_err() {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ["Downstream does not accept {}", caps]
                );
                return Err(gst::FlowError::NotNegotiated);
            }
        }
        Ok(match buffers.len() {
            0 => None,
            1 => buffers.pop().map(CreateSuccess::NewBuffer),
            _ => Some(CreateSuccess::NewBufferList(gst::BufferList::from_iter(
                buffers,
            ))),
        })
    }

    /// A frame kept behind the held ones because it needs other caps, or the EOS that
    /// came while frames were held.
    fn take_kept_frame(&self) -> Result<Option<CreateSuccess>, gst::FlowError> {
        let kept = match self.timing().as_mut() {
            None => return Ok(None),
            Some(t) => match t.take_eos() {
                true => return Err(gst::FlowError::Eos),
                false => t.take_next(),
            },
        };
        match kept {
            Some((caps, buffer)) => self.ready(Timed::Push(caps, vec![buffer])),
            None => Ok(None),
        }
    }

    /// The network wait ends by the end of the measurement window, if frames are held.
    fn hold_deadline(&self, deadline: Option<Instant>) -> Option<Instant> {
        let hold = self.timing().as_ref().and_then(|t| t.hold_deadline());
        match (deadline, hold) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The measurement window ended with no new frame: the held frames go out.
    fn held_after_window(&self) -> Result<Option<CreateSuccess>, gst::FlowError> {
        let timed = self.timing().as_mut().and_then(|t| t.window_over());
        let (was_measuring, rate) = (
            timed.is_some(),
            self.timing().as_ref().and_then(|t| t.rate()),
        );
        if was_measuring {
            self.rate_decided(rate);
        }
        match timed {
            Some(t) => self.ready(t),
            None => Ok(None),
        }
    }

    /// End of stream: frames still held while measuring go out first.
    fn held_before_eos(&self) -> Result<CreateSuccess, gst::FlowError> {
        let timed = self.timing().as_mut().map(|t| t.end());
        match timed.map(|t| self.ready(t)).transpose()?.flatten() {
            Some(held) => Ok(held),
            None => Err(gst::FlowError::Eos),
        }
    }

    /// Live, with at least one frame interval of latency once the rate is known.
    fn answer_latency(&self, query: &mut gst::query::Latency) -> bool {
        let interval = self
            .timing()
            .as_ref()
            .and_then(|t| t.rate())
            .and_then(frame_duration);
        let min = interval.unwrap_or(gst::ClockTime::ZERO);
        gst::debug!(CAT, imp = self, "latency: min {min}, max {interval:?}");
        query.set(true, min, interval);
        true
    }
}
