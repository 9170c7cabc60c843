// SPDX-License-Identifier: MPL-2.0

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
use super::decode_ahead::{DecodeAhead, Handed};
use super::negotiation::Negotiation;
use super::returns::{self, Returns};
use super::timing::{Timed, Timing};
use super::CAT;
use crate::config::{Pattern, Role};
use crate::frames::rate::{frame_duration, RateMode};
use crate::frames::{FrameError, FrameReader};
use crate::glue::{self, Interrupt, WarningLimiter};
use crate::link_setup;
use crate::meta;
use crate::properties::{common_properties, string_value, CommonSettings};
use crate::protocol::{self, FrameHeader, Incoming, PayloadKind};
use crate::security::Refusal;
use crate::stats::Stats;
use crate::transport::{HandshakeFailure, LinkError, LinkEvent, Received, ReceiverLink};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// 0: never end on silence.
const DEFAULT_TIMEOUT_MS: u32 = 0;
/// -1/1: variable (caps 0/1, no durations, nothing held); 0/1 measures the rate from
/// arrival times (see `frames::rate`), which holds the first frames and is opt-in.
const DEFAULT_FRAMERATE: gst::Fraction = gst::Fraction::from_integer(-1);

/// The properties that hold for a whole stream (the `return-*` ones live in `Returns`).
#[derive(Debug, Clone)]
struct Settings {
    common: CommonSettings,
    timeout_ms: u32,
    allowed_addresses: String,
    framerate: gst::Fraction,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            common: CommonSettings::new(Role::Receiver),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            allowed_addresses: String::new(),
            framerate: DEFAULT_FRAMERATE,
        }
    }
}

/// What the streaming thread works with; taken out of the state while waiting for the
/// network, so no lock is held across the wait.
struct Stream {
    link: ReceiverLink,
    reader: FrameReader,
    negotiation: Negotiation,
    /// Multi-server: senders that sent frames and have not terminated yet.
    servers: BTreeSet<u16>,
    last_message: Instant,
    last_frame: Instant,
    overlap: DecodeAhead<Result<Step, gst::FlowError>>,
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

/// A frame's message for the bus (`netgear-message`), with the server's port.
struct BusMessage {
    text: String,
    port: Option<u16>,
}

/// What one received message led to.
enum Step {
    /// A frame to hand out; its message goes on the bus as it does.
    Push(gst::Buffer, Option<BusMessage>),
    Again,
    Eos,
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
    returns: Returns,
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
        if let Some(next) = stream.overlap.take_ahead() {
            return next;
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
        stream.overlap.set_waited(waiting.elapsed());
        match received {
            Err(e) => Err(self.link_failed(e, gst::ResourceError::Read)),
            Ok(Received::TimedOut) => self.on_silence(stream, rebind_at, eos_at),
            Ok(Received::Message(parts)) => {
                let arrival = self.heard(stream);
                self.on_message(stream, parts, arrival)
            }
        }
    }

    /// A message arrived: the silence is over. Returns when (running time), the frame's
    /// timestamp.
    fn heard(&self, stream: &mut Stream) -> Option<gst::ClockTime> {
        let arrival = self.arrival_time();
        stream.last_message = Instant::now();
        stream.silence.heard();
        arrival
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
        arrival: Option<gst::ClockTime>,
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
        let payload = parts.swap_remove(1);
        Ok(self.on_frame(stream, &header, payload, arrival))
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

    /// Tells downstream that server `port` ended, if downstream asked for it.
    fn announce_server_eos(&self, stream: &mut Stream, port: u16) {
        let pad = self.obj().src_pad().clone();
        if stream.negotiation.server_eos_wanted(&pad) {
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
        if let Some(frame) = self.returns.frame_to_return() {
            let header = protocol::encode_frame_reply(stream.reply_port, &frame.kind);
            return self.reply(stream, &[&header, frame.bytes()]);
        }
        let answer = protocol::encode_data_reply(stream.reply_port, &self.returns.data());
        self.reply(stream, &[&answer])
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
    fn on_frame(
        &self,
        stream: &mut Stream,
        header: &FrameHeader,
        payload: zmq::Message,
        arrival: Option<gst::ClockTime>,
    ) -> Step {
        let payload_len = payload.len();
        let mut buffer = match self.frame_buffer(stream, &header.payload, payload) {
            Ok(b) => b,
            Err(FrameError::Refused(caps)) => {
                Stats::bump(&self.stats.dropped);
                // The refused caps stay pending on the pad: the next frame sets its own.
                stream.negotiation.release_output();
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
        let message = attach_message(buffer.make_mut(), header, port);
        stream.last_frame = Instant::now();
        Stats::bump(&self.stats.frames);
        Stats::add(&self.stats.bytes, payload_len as u64);
        Step::Push(buffer, message)
    }

    /// A frame's message on the bus, as `netgear-message`.
    fn post_message(&self, message: BusMessage) {
        let fields = |b: gst::structure::Builder| b.field("message", message.text);
        let element = self.obj();
        glue::post_element_message(
            element.upcast_ref(),
            "netgear-message",
            fields,
            message.port,
        );
    }

    /// Turns a frame's payload into a buffer, renegotiating when the frame format changes;
    /// while frames wait for us, the decode overlaps with receiving the next message.
    fn frame_buffer(
        &self,
        stream: &mut Stream,
        kind: &PayloadKind,
        payload: zmq::Message,
    ) -> Result<gst::Buffer, FrameError> {
        let element = self.obj();
        let key = stream
            .negotiation
            .output_key(&element, &mut stream.reader, kind, &payload)?;
        let max_frame_bytes = stream.max_frame_bytes;
        let output =
            stream
                .negotiation
                .switch_output(&element, &self.timing, key, max_frame_bytes)?;
        if !stream.overlap.should_overlap(output) {
            return stream
                .overlap
                .decode_here(&mut stream.reader, output, kind, payload);
        }
        match stream
            .overlap
            .hand_over(&mut stream.reader, output, kind, payload)?
        {
            Handed::Done(buffer) => return buffer,
            Handed::Decoding => Stats::bump(&self.stats.parallel_decodes),
        }
        self.receive_ahead(stream);
        stream.overlap.finish()
    }

    /// Takes the next message if it arrives within a decode's time: a frame for the
    /// current output is handled now (decoded here, its result kept for the next
    /// receive); anything else is given back, unanswered, for the next receive.
    fn receive_ahead(&self, stream: &mut Stream) {
        let within = stream.overlap.window();
        let parts = match stream.link.recv(Some(within), &self.stats) {
            Ok(Received::Message(parts)) => parts,
            // unlock() included: its waker still stands for the next receive, which reports it.
            Ok(Received::TimedOut) | Err(LinkError::Interrupted) => return,
            Err(e) => {
                let failed = self.link_failed(e, gst::ResourceError::Read);
                stream.overlap.keep_ahead(Err(failed));
                return;
            }
        };
        if !stream
            .negotiation
            .decodes_into_output(&mut stream.reader, &parts)
        {
            stream.link.hold(parts);
            return;
        }
        let arrival = self.heard(stream);
        let next = self.on_message(stream, parts, arrival);
        stream.overlap.keep_ahead(next);
    }
}

/// The frame's message (and server port) as `NetGearMeta`; returns the message for the bus.
fn attach_message(
    buffer: &mut gst::BufferRef,
    header: &FrameHeader,
    port: Option<u16>,
) -> Option<BusMessage> {
    let message = header.message.as_ref().map(|m| m.as_str().to_owned());
    if message.is_none() && port.is_none() {
        return None;
    }
    let info = meta::NetGearInfo {
        message: message.clone(),
        port,
    };
    meta::attach(buffer, &info);
    message.map(|text| BusMessage { text, port })
}

impl NetGearSrc {
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
            negotiation: Negotiation::default(),
            servers: BTreeSet::new(),
            last_message: now,
            last_frame: now,
            overlap: DecodeAhead::new(c.pattern),
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
    /// The `return` request pad, whose buffers and events go to `Returns`.
    fn new_return_pad(&self, template: &gst::PadTemplate) -> gst::Pad {
        gst::Pad::builder_from_template(template)
            .name("return")
            .chain_function(|_pad, parent, buffer| {
                NetGearSrc::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.returns.chain(&imp.obj(), buffer),
                )
            })
            .event_function(|pad, parent, event| {
                NetGearSrc::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.returns.event(&imp.obj(), pad, event),
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
            props.push(returns::data_property());
            props.extend(src_properties());
            props.extend(returns::frame_properties());
            props.push(crate::uri::uri_property());
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.name() == "uri" {
            return self.set_uri_property(value);
        }
        gst::debug!(CAT, imp = self, "{} set", pspec.name());
        if self.returns.set_property(value, pspec) {
            return;
        }
        let mut s = self.settings();
        if s.common.set_property(value, pspec) {
            return;
        }
        match pspec.name() {
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
        if let Some(v) = self.returns.property(pspec) {
            return v;
        }
        let s = self.settings();
        if let Some(v) = s.common.property(pspec) {
            return v;
        }
        match pspec.name() {
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
        self.returns
            .request_pad(&self.obj(), || self.new_return_pad(template))
    }

    fn release_pad(&self, pad: &gst::Pad) {
        self.returns.release_pad();
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
        // The settings as they are now hold for the whole stream.
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
            stream.negotiation.release_output();
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
                stream.negotiation.reset();
            }
            let step = self.receive(&mut stream);
            self.put_stream(stream);
            match step? {
                Step::Push(buffer, message) => {
                    if let Some(message) = message {
                        self.post_message(message);
                    }
                    match self.timed(buffer)? {
                        Some(ready) => return Ok(ready),
                        None => continue,
                    }
                }
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

    /// The running time now, at which a frame arrived.
    fn arrival_time(&self) -> Option<gst::ClockTime> {
        let obj = self.obj();
        let now = obj.clock()?.time();
        Some(now.saturating_sub(obj.base_time()?))
    }

    /// A frame stamped with its arrival and duration: pushed now, or held while measuring.
    fn timed(&self, buffer: gst::Buffer) -> Result<Option<CreateSuccess>, gst::FlowError> {
        // Frames carry their arrival (see `heard`).
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
