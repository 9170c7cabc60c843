// SPDX-License-Identifier: MPL-2.0
//! `netgearsrc`'s receiving side: waits for messages on the link, rebinds or gives up on
//! silence, answers frames and terminations as vidgear's receiver does, and turns frames
//! into buffers (with `negotiation` and `decode_ahead`).

use super::clock::StartClock;
use super::decode_ahead::{DecodeAhead, Handed};
use super::lateness::Lateness;
use super::negotiation::Negotiation;
use super::returns::Returns;
use super::timing::Timing;
use super::{NetGearSrc, CAT};
use crate::config::Pattern;
use crate::frames::{capture_time, BandDecoder, FrameError, FrameReader, SequenceCheck};
use crate::glue::WarningLimiter;
use crate::meta;
use crate::properties::CommonSettings;
use crate::stats::Stats;
use crate::sync;
use crate::transport::{LinkError, Received, ReceiverLink};
use gst::prelude::*;
use gst_base::prelude::*;
use netgear_protocol::{self as protocol, FrameHeader, Incoming, PayloadKind};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the stream reports to and asks of its element while it handles messages.
pub struct Context<'a> {
    pub element: &'a NetGearSrc,
    pub stats: &'a Stats,
    pub warnings: &'a WarningLimiter,
    pub returns: &'a Returns,
    pub lateness: &'a Lateness,
    pub timing: &'a Mutex<Option<Timing>>,
    pub clock: &'a StartClock,
}

impl Context<'_> {
    fn link_failed(&self, error: LinkError, kind: gst::ResourceError) -> gst::FlowError {
        if let LinkError::Interrupted = error {
            return gst::FlowError::Flushing;
        }
        let hint = error.hint().unwrap_or_default();
        gst::element_error!(self.element, kind, ("{}", error), ["{}", hint]);
        gst::FlowError::Error
    }
}

/// The settings a stream runs with, copied at start.
struct StreamSettings {
    pattern: Pattern,
    /// Replies are JSON (bidirectional or multi-client).
    json_replies: bool,
    multi_server: bool,
    /// Multi-client: the port named in every reply.
    reply_port: Option<u16>,
    /// The plain acknowledgement, without JSON replies.
    ack: Vec<u8>,
    request_timeout: Duration,
    /// `timeout`: the stream ends when no frame arrives for this long.
    timeout: Option<Duration>,
    max_frame_bytes: u64,
}

impl StreamSettings {
    fn new(common: &CommonSettings, timeout_ms: u32) -> Self {
        StreamSettings {
            pattern: common.pattern,
            json_replies: common.bidirectional || common.multi_client,
            multi_server: common.multi_server,
            reply_port: common.multi_client.then(|| common.own_port()),
            ack: protocol::encode_ack(&protocol::device_id()),
            request_timeout: Duration::from_millis(u64::from(common.request_timeout_ms)),
            timeout: (timeout_ms > 0).then(|| Duration::from_millis(u64::from(timeout_ms))),
            max_frame_bytes: common.max_frame_bytes,
        }
    }
}

/// vidgear's receiver give-up (patterns 0/1): after `max` silent periods in a row (each
/// 3 × request-timeout with no message at all) the stream ends; 0 never gives up. With
/// `wait-for-sender` the count starts once a sender has been heard, so a receiver started
/// before its sender (a camera still booting) waits for it, as udpsrc does.
#[derive(Debug, Clone, Copy)]
struct Silence {
    max: u32,
    /// Silent periods since the last message.
    periods: u32,
    /// Whether silent periods count: a sender has been heard, or `wait-for-sender` is off.
    counting: bool,
}

impl Silence {
    fn new(max: u32, wait_for_sender: bool) -> Self {
        Silence {
            max,
            periods: 0,
            counting: !wait_for_sender,
        }
    }

    fn heard(&mut self) {
        self.periods = 0;
        self.counting = true;
    }

    /// Counts one more silent period; `true` once there have been `max` in a row.
    fn gives_up(&mut self) -> bool {
        if !self.counting {
            return false;
        }
        self.periods = self.periods.saturating_add(1);
        self.max > 0 && self.periods >= self.max
    }
}

/// A frame's message for the bus (`netgear-message`), with the server's port.
pub struct BusMessage {
    pub text: String,
    pub port: Option<u16>,
}

/// What one received message led to.
pub enum Step {
    /// A frame to hand out; its message goes on the bus as it does.
    Push(gst::Buffer, Option<BusMessage>),
    Again,
    Eos,
}

/// What the streaming thread works with; taken out of the element's state while waiting
/// for the network, so no lock is held across the wait.
pub struct Stream {
    link: ReceiverLink,
    reader: FrameReader,
    /// Decodes JPEGs with restart markers band by band on every core, when not behind.
    bands: BandDecoder,
    negotiation: Negotiation,
    overlap: DecodeAhead<Result<Step, gst::FlowError>>,
    /// Multi-server: senders that sent frames and have not terminated yet.
    servers: BTreeSet<u16>,
    /// Our senders' frame numbers: copies and late frames are dropped.
    sequences: SequenceCheck,
    last_message: Instant,
    last_frame: Instant,
    silence: Silence,
    settings: StreamSettings,
}

impl Stream {
    /// `wait_for_sender`: the give-up counts only once a sender has been heard.
    pub fn new(
        link: ReceiverLink,
        common: &CommonSettings,
        timeout_ms: u32,
        wait_for_sender: bool,
    ) -> Self {
        let now = Instant::now();
        Stream {
            link,
            reader: FrameReader::default(),
            bands: BandDecoder::default(),
            negotiation: Negotiation::default(),
            overlap: DecodeAhead::new(common.pattern),
            servers: BTreeSet::new(),
            sequences: SequenceCheck::default(),
            last_message: now,
            last_frame: now,
            silence: Silence::new(common.max_retries, wait_for_sender),
            settings: StreamSettings::new(common, timeout_ms),
        }
    }

    pub fn link(&self) -> &ReceiverLink {
        &self.link
    }

    /// Downstream changed: the next frame asks it again and sets its caps anew.
    pub fn renegotiate(&mut self) {
        self.negotiation.reset();
    }

    pub fn release_output(&mut self) {
        self.negotiation.release_output();
    }

    /// The next message's step: the one taken ahead, else one waited for.
    pub fn receive(&mut self, ctx: &Context) -> Result<Step, gst::FlowError> {
        if let Some(next) = self.overlap.take_ahead() {
            return next;
        }
        let rebind_at = self
            .settings
            .pattern
            .is_acknowledged()
            .then(|| self.last_message + self.settings.request_timeout * 3);
        let eos_at = self.settings.timeout.map(|t| self.last_frame + t);
        // The wait ends by the end of the frame rate's measurement, if frames are held.
        let hold = sync::lock(ctx.timing)
            .as_ref()
            .and_then(Timing::hold_deadline);
        let deadline = earliest(earliest(rebind_at, eos_at), hold);
        let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let waiting = Instant::now();
        let received = self.link.recv(wait, ctx.stats);
        self.overlap.set_waited(waiting.elapsed());
        match received {
            Err(e) => Err(ctx.link_failed(e, gst::ResourceError::Read)),
            Ok(Received::TimedOut) => self.on_silence(ctx, rebind_at, eos_at),
            Ok(Received::Message(parts)) => {
                let arrival = self.heard(ctx);
                self.on_message(ctx, parts, arrival)
            }
        }
    }

    /// A message arrived: the silence is over. Returns when (running time), the frame's
    /// timestamp.
    fn heard(&mut self, ctx: &Context) -> Option<gst::ClockTime> {
        // A sender is there: the clock runs from here, if it did not already.
        ctx.clock.run();
        let arrival = arrival_time(ctx.element);
        self.last_message = Instant::now();
        self.silence.heard();
        arrival
    }

    /// Nothing arrived before a deadline: end of stream (`timeout`, or `max-retries`
    /// silent periods in a row), or rebind so a new sender can replace a dead one
    /// (patterns 0/1).
    fn on_silence(
        &mut self,
        ctx: &Context,
        rebind_at: Option<Instant>,
        eos_at: Option<Instant>,
    ) -> Result<Step, gst::FlowError> {
        let now = Instant::now();
        if eos_at.is_some_and(|t| now >= t) {
            gst::info!(
                CAT,
                obj = ctx.element,
                "nothing arrived for the timeout: end of stream"
            );
            return Ok(Step::Eos);
        }
        if rebind_at.is_some_and(|t| now >= t) {
            if self.silence.gives_up() {
                self.give_up(ctx);
                return Ok(Step::Eos);
            }
            gst::info!(
                CAT,
                obj = ctx.element,
                "silence on {}: rebinding for a new sender",
                self.link.config().endpoint_list()
            );
            self.link
                .rebind(ctx.stats)
                .map_err(|e| ctx.link_failed(e, gst::ResourceError::OpenRead))?;
            self.last_message = now;
        }
        Ok(Step::Again)
    }

    /// Says on the bus why the stream ends: `max-retries` silent periods in a row, each
    /// 3 × request-timeout, as vidgear's receiver abandons an offline sender.
    fn give_up(&self, ctx: &Context) {
        let request_timeout = self.settings.request_timeout;
        let period_ms = (request_timeout * 3).as_millis();
        let endpoints = self.link.config().endpoint_list();
        gst::element_warning!(
            ctx.element,
            gst::ResourceError::Read,
            (
                "No sender for {} × {} ms on {}: end of stream",
                self.silence.periods,
                period_ms,
                endpoints
            ),
            [
                "max-retries={} silent periods of 3 × request-timeout={} ms",
                self.silence.max,
                request_timeout.as_millis()
            ]
        );
    }

    fn on_message(
        &mut self,
        ctx: &Context,
        mut parts: Vec<zmq::Message>,
        arrival: Option<gst::ClockTime>,
    ) -> Result<Step, gst::FlowError> {
        let parsed = parts
            .first()
            .ok_or(protocol::ProtocolError::PartCount(0))
            .and_then(|h| protocol::parse_header(h));
        if let Ok(Incoming::Terminate { port }) = parsed {
            return self.on_termination(ctx, port);
        }
        // Answer before decoding, as vidgear does; a REP socket must answer every request.
        if self.settings.pattern.is_acknowledged() {
            self.acknowledge(ctx)?;
        }
        let header = match parsed {
            Ok(Incoming::Frame(h)) => h,
            Ok(Incoming::Terminate { .. }) => return Ok(Step::Again),
            Err(e) => {
                self.malformed(ctx, &e);
                return Ok(Step::Again);
            }
        };
        if parts.len() != 2 {
            let error = protocol::ProtocolError::PartCount(parts.len());
            self.malformed(ctx, &error);
            return Ok(Step::Again);
        }
        if let Err(repeated) = self.sequences.admit(header.sequence) {
            Stats::bump(&ctx.stats.duplicates);
            gst::debug!(CAT, obj = ctx.element, "dropped {repeated}");
            return Ok(Step::Again);
        }
        let payload = parts.swap_remove(1);
        self.on_frame(ctx, &header, payload, arrival)
    }

    fn on_termination(&mut self, ctx: &Context, port: Option<u16>) -> Result<Step, gst::FlowError> {
        Stats::bump(&ctx.stats.terminations);
        if self.settings.pattern == Pattern::ReqRep {
            let answer = match self.settings.multi_server {
                true => protocol::TERMINATION_ACK_MULTISERVER,
                false => protocol::TERMINATION_ACK,
            };
            self.reply(ctx, &[answer.as_bytes()])?;
        }
        if !self.settings.multi_server {
            gst::info!(CAT, obj = ctx.element, "sender terminated: end of stream");
            return Ok(Step::Eos);
        }
        if let Some(p) = port.filter(|p| self.servers.remove(p)) {
            self.announce_server_eos(ctx, p);
        }
        let left = self.servers.len();
        gst::info!(
            CAT,
            obj = ctx.element,
            "server {port:?} terminated, {left} left"
        );
        Ok(if left == 0 { Step::Eos } else { Step::Again })
    }

    /// Tells downstream that server `port` ended, if downstream asked for it.
    fn announce_server_eos(&mut self, ctx: &Context, port: u16) {
        let pad = ctx.element.src_pad().clone();
        if self.negotiation.server_eos_wanted(&pad) {
            let s = gst::Structure::builder(meta::SERVER_EOS)
                .field("port", u32::from(port))
                .build();
            pad.push_event(gst::event::CustomDownstream::new(s));
        }
    }

    /// The reply to a frame: a returned frame, return data, or the plain acknowledgement.
    fn acknowledge(&mut self, ctx: &Context) -> Result<(), gst::FlowError> {
        if !self.settings.json_replies {
            let ack = self.settings.ack.clone();
            return self.reply(ctx, &[&ack]);
        }
        let port = self.settings.reply_port;
        if let Some(frame) = ctx.returns.frame_to_return() {
            let header = protocol::encode_frame_reply(port, &frame.kind);
            Stats::bump(&ctx.stats.returns);
            return self.reply(ctx, &[&header, frame.bytes()]);
        }
        let data = ctx.returns.data();
        if !data.is_null() {
            Stats::bump(&ctx.stats.returns);
        }
        let answer = protocol::encode_data_reply(port, &data);
        self.reply(ctx, &[&answer])
    }

    fn reply(&mut self, ctx: &Context, parts: &[&[u8]]) -> Result<(), gst::FlowError> {
        match self.link.reply(parts) {
            Ok(true) => Ok(()),
            Ok(false) => {
                gst::debug!(CAT, obj = ctx.element, "reply dropped: the sender is gone");
                Ok(())
            }
            Err(e) => Err(ctx.link_failed(e, gst::ResourceError::Write)),
        }
    }

    /// A frame's payload as a buffer with its meta, or dropped (counted and warned about).
    fn on_frame(
        &mut self,
        ctx: &Context,
        header: &FrameHeader,
        payload: zmq::Message,
        arrival: Option<gst::ClockTime>,
    ) -> Result<Step, gst::FlowError> {
        let port = header.port.filter(|_| self.settings.multi_server);
        if is_late(ctx, header, port) {
            return Ok(Step::Again);
        }
        let payload_len = payload.len();
        let mut buffer = match self.frame_buffer(ctx, &header.payload, payload) {
            Ok(b) => b,
            Err(FrameError::Refused(caps)) => return self.refused(ctx, &caps),
            Err(why) => {
                self.malformed(ctx, &why);
                return Ok(Step::Again);
            }
        };
        if let Some(p) = port {
            self.servers.insert(p);
        }
        // Stamped with its arrival, not when it is handed out (a frame received ahead of
        // the one before it is handed out after it).
        buffer.make_mut().set_pts(arrival);
        if let Some(captured) = header.capture_time_ns {
            capture_time::attach(buffer.make_mut(), captured);
        }
        let message = attach_message(buffer.make_mut(), header, port);
        self.last_frame = Instant::now();
        Stats::bump(&ctx.stats.frames);
        Stats::add(&ctx.stats.bytes, payload_len as u64);
        Ok(Step::Push(buffer, message))
    }

    /// A frame downstream refused: dropped and warned about, so one odd frame among good
    /// ones does not end the stream. Before any frame went out, caps of a kind downstream
    /// takes none of (raw frames into jpegdec) can never pass: a not-negotiated error that
    /// says what the sender sends and what would take it.
    fn refused(&mut self, ctx: &Context, caps: &str) -> Result<Step, gst::FlowError> {
        Stats::bump(&ctx.stats.dropped);
        // The refused caps stay pending on the pad: the next frame sets its own.
        self.negotiation.release_output();
        let endpoints = self.link.config().endpoint_list();
        if ctx.stats.frames.load(Ordering::Relaxed) == 0 {
            if let Some(why) = never_taken(ctx.element, caps) {
                gst::element_error!(
                    ctx.element,
                    gst::CoreError::Negotiation,
                    (
                        "Downstream cannot take the frames from {}: {}",
                        endpoints,
                        why
                    ),
                    ["refused caps: {}", caps]
                );
                return Err(gst::FlowError::NotNegotiated);
            }
        }
        let why = format!(
            "downstream does not accept {caps}; put a videoconvert after netgearsrc for other formats"
        );
        self.warn_dropped(ctx, "a frame", &why);
        Ok(Step::Again)
    }

    /// Turns a frame's payload into a buffer, renegotiating when the frame format changes;
    /// while frames wait for us, the decode overlaps with receiving the next message.
    fn frame_buffer(
        &mut self,
        ctx: &Context,
        kind: &PayloadKind,
        payload: zmq::Message,
    ) -> Result<gst::Buffer, FrameError> {
        let key = self
            .negotiation
            .output_key(ctx.element, &mut self.reader, kind, &payload)?;
        let max_frame_bytes = self.settings.max_frame_bytes;
        let output =
            self.negotiation
                .switch_output(ctx.element, ctx.timing, key, max_frame_bytes)?;
        if !self.overlap.should_overlap(output) {
            let (reader, bands) = (&mut self.reader, &mut self.bands);
            // A JPEG with restart markers decodes band by band on every core; any other
            // whole, here.
            return self
                .overlap
                .decode_here(|| match bands.decode(output, kind, &payload) {
                    Some(Ok(buffer)) => {
                        Stats::bump(&ctx.stats.band_decodes);
                        Ok(buffer)
                    }
                    Some(Err(e)) => Err(e),
                    None => reader.fill(output, kind, payload),
                });
        }
        match self
            .overlap
            .hand_over(&mut self.reader, output, kind, payload)?
        {
            Handed::Done(buffer) => return buffer,
            Handed::Decoding => Stats::bump(&ctx.stats.parallel_decodes),
        }
        self.receive_ahead(ctx);
        self.overlap.finish()
    }

    /// Takes the next message if it arrives within a decode's time: a frame for the
    /// current output is handled now (decoded here, its result kept for the next
    /// receive); anything else is given back, unanswered, for the next receive.
    fn receive_ahead(&mut self, ctx: &Context) {
        let within = self.overlap.window();
        let parts = match self.link.recv(Some(within), ctx.stats) {
            Ok(Received::Message(parts)) => parts,
            // unlock() included: its waker still stands for the next receive, which reports it.
            Ok(Received::TimedOut) | Err(LinkError::Interrupted) => return,
            Err(e) => {
                let failed = ctx.link_failed(e, gst::ResourceError::Read);
                self.overlap.keep_ahead(Err(failed));
                return;
            }
        };
        if !self
            .negotiation
            .decodes_into_output(&mut self.reader, &parts)
        {
            self.link.hold(parts);
            return;
        }
        let arrival = self.heard(ctx);
        let next = self.on_message(ctx, parts, arrival);
        self.overlap.keep_ahead(next);
    }

    /// Counts a rejected message and warns on the bus, at most once per interval.
    fn malformed(&self, ctx: &Context, why: &dyn std::fmt::Display) {
        Stats::bump(&ctx.stats.malformed);
        self.warn_dropped(ctx, "a malformed message", why);
    }

    fn warn_dropped(&self, ctx: &Context, what: &str, why: &dyn std::fmt::Display) {
        let endpoints = self.link.config().endpoint_list();
        if ctx.warnings.due() {
            gst::element_warning!(
                ctx.element,
                gst::StreamError::Decode,
                ["Dropped {} on {}: {}", what, endpoints, why]
            );
        } else {
            gst::debug!(
                CAT,
                obj = ctx.element,
                "dropped {what} on {endpoints}: {why}"
            );
        }
    }
}

/// Why downstream can never take frames with `caps`: it takes nothing of their media type
/// (`None` if it takes some, or anything).
fn never_taken(element: &NetGearSrc, caps: &str) -> Option<String> {
    let caps: gst::Caps = caps.parse().ok()?;
    let sent = caps.structure(0)?;
    let peer = element.src_pad().peer_query_caps(None);
    let kind = gst::Caps::new_empty_simple(sent.name().as_str());
    if peer.is_any() || peer.can_intersect(&kind) {
        return None;
    }
    let mut takes: Vec<&str> = peer.iter().map(|s| s.name().as_str()).collect();
    takes.dedup();
    let takes = match takes.is_empty() {
        true => "nothing".to_owned(),
        false => format!("only {}", takes.join(", ")),
    };
    let (what, advice) = match sent.name().as_str() {
        "video/x-raw" => (
            format!(
                "raw {} frames",
                sent.get::<&str>("format").unwrap_or("video")
            ),
            match takes.contains("image/jpeg") {
                true => "remove jpegdec (or the JPEG parser) after netgearsrc, which needs none for raw frames; or put jpegenc after netgearsrc; or have the sender compress (vidgear's jpeg_compression=True, netgearsink jpeg-compression=true)",
                false => "put an element that takes video/x-raw (videoconvert) after netgearsrc",
            },
        ),
        "other/tensors" => (
            "typed arrays (other/tensors)".to_owned(),
            "send uint8 frames of 1, 3 or 4 channels for video, or take other/tensors downstream",
        ),
        name => (name.to_owned(), "put an element that takes them after netgearsrc"),
    };
    Some(format!(
        "the sender sends {what}; downstream accepts {takes}: {advice}"
    ))
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Judges a stamped frame from `sender` by its delay: a late one is dropped before it is
/// decoded (counted by `Lateness`).
fn is_late(ctx: &Context, header: &FrameHeader, sender: Option<u16>) -> bool {
    let Some(captured) = header.capture_time_ns else {
        return false;
    };
    let arrived = capture_time::unix_now_ns();
    let Some(lateness) = ctx.lateness.judge(sender, captured, arrived) else {
        return false;
    };
    gst::debug!(
        CAT,
        obj = ctx.element,
        "dropped a frame {} ms late (max-lateness)",
        lateness.as_millis()
    );
    true
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

/// The element's running time now: when a frame arrived.
pub fn arrival_time(element: &NetGearSrc) -> Option<gst::ClockTime> {
    let now = element.clock()?.time();
    Some(now.saturating_sub(element.base_time()?))
}
