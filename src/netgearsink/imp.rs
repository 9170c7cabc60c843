// SPDX-License-Identifier: MPL-2.0

/**
 * SECTION:element-netgearsink
 * @see_also: netgearsrc
 *
 * Sends video frames to a vidgear NetGear receiver (`NetGear(receive_mode=True).recv()` in
 * Python) or to `netgearsrc`, over ZeroMQ, speaking NetGear's wire protocol. Raw input is
 * JPEG-compressed by default, as vidgear does; `image/jpeg` input is sent as it is. Camera
 * formats (YUY2, UYVY, NV12, I420, Y42B, Y444, …) need no `videoconvert`: JPEG is encoded
 * straight from their planes, and raw frames are converted to the BGR array vidgear expects.
 * Each frame carries its capture time in UNIX time (upstream's `timestamp/x-unix` reference
 * timestamp, else the clock's time at capture), which vidgear's receiver ignores.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 v4l2src ! netgearsink address=10.0.0.5
 * gst-launch-1.0 videotestsrc ! netgearsink pattern=req-rep jpeg-compression=false
 * gst-launch-1.0 videotestsrc ! netgearsink secure-mode=ironhouse cert-dir=/home/pi/netgear-keys
 * gst-launch-1.0 v4l2src ! videoconvert ! netgearsink pattern=req-rep multi-client=true ports=5577,5578,5579 load-balance=true
 * ]|
 */
use super::bands::{self, BandChoice, Encoding};
use super::companion::{self, Companion};
use super::freshness::{self, Ageing, Verdict};
use super::stamp;
use super::tunnel::{self, TunnelSettings};
use crate::config::{self, Pattern, Role, SecureMode};
use crate::frames::{
    capture_time, encode_job, frame_encoder, EncodeJob, EncodeResult, FrameEncoder, FrameError,
    FrameReader, FrameWriter, Input, JpegSettings, Payload,
};
use crate::glue::{self, Interrupt};
use crate::link_setup;
use crate::meta;
use crate::properties::{common_properties, string_value, CommonSettings, JsonProperty};
use crate::ssh::Tunnel;
use crate::stats::Stats;
use crate::sync;
use crate::transport::{
    FrameStamp, LinkError, LinkEvent, Order, OutFrame, Outcome, SenderLink, SharedBytes,
    Unanswered, Waker,
};
use crate::workers::{Interrupter, OrderedPool, PoolError, Results};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use netgear_protocol::{self as protocol, JsonText, Reply, Sequence};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "netgearsink",
        gst::DebugColorFlags::empty(),
        Some("NetGear sender"),
    )
});

/// vidgear's secure pattern-2 receiver: libzmq counts the CURVE credential its
/// authenticator adds before a connection's first message against the receive queue of
/// one message vidgear sets, and never frees that place, so nothing is ever delivered.
const SECURE_PUBSUB_WARNING: &str = "secure mode in pub-sub: a vidgear receiver gets no frame at all (a vidgear fault, vidgear's own sender fares no better: its receive queue of one message is taken for good by the CURVE credential); netgearsrc receives them; with a vidgear receiver use pattern req-rep";

const DEFAULT_JPEG_COMPRESSION: bool = true;
const DEFAULT_JPEG_QUALITY: u32 = 90;
const MIN_JPEG_QUALITY: u32 = 10;
const MAX_JPEG_QUALITY: u32 = 100;
const DEFAULT_JPEG_FASTDCT: bool = true;
const DEFAULT_JPEG_FASTUPSAMPLE: bool = false;
const DEFAULT_OVERWRITE_CERT: bool = false;
/// 0: one encoder thread per core.
const DEFAULT_JPEG_THREADS: u32 = 0;
const MAX_JPEG_THREADS: u32 = 64;
const DEFAULT_LOAD_BALANCE: bool = false;
const DEFAULT_JPEG_BANDS: u32 = bands::AUTO;

#[derive(Debug, Clone)]
struct Settings {
    common: CommonSettings,
    jpeg_compression: bool,
    jpeg: JpegSettings,
    message: JsonProperty,
    overwrite_cert: bool,
    tunnel: TunnelSettings,
    jpeg_threads: u32,
    load_balance: bool,
    jpeg_bands: u32,
    max_frame_age_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            common: CommonSettings::new(Role::Sender),
            jpeg_compression: DEFAULT_JPEG_COMPRESSION,
            jpeg: JpegSettings {
                quality: DEFAULT_JPEG_QUALITY,
                fast_dct: DEFAULT_JPEG_FASTDCT,
                fast_upsample: DEFAULT_JPEG_FASTUPSAMPLE,
                colorspace: String::new(),
            },
            message: JsonProperty::default(),
            overwrite_cert: DEFAULT_OVERWRITE_CERT,
            tunnel: TunnelSettings::default(),
            jpeg_threads: DEFAULT_JPEG_THREADS,
            load_balance: DEFAULT_LOAD_BALANCE,
            jpeg_bands: DEFAULT_JPEG_BANDS,
            max_frame_age_ms: freshness::DEFAULT_MAX_FRAME_AGE_MS,
        }
    }
}

/// What the streaming thread works with to turn buffers into jobs for the companion
/// thread; taken out of the state while it works, so no lock is held across a wait.
struct Stream {
    input: Option<Input>,
    writer: FrameWriter,
    pattern: Pattern,
    /// Multi-server: the port put in every header.
    header_port: Option<u16>,
    /// The next frame's number, so a receiver recognises a frame sent again.
    sequence: Sequence,
    /// jpeg-threads > 1: raw frames are encoded here, in parallel; the companion takes
    /// the results in order.
    encoders: Option<FrameEncoder>,
    /// Whether a frame goes to the pool whole or in bands (`jpeg-bands`).
    bands: BandChoice,
    /// Whether frames have an age for `max-frame-age`; asked again after new caps.
    ageing: Ageing,
}

/// A frame's payload as it is handed over: ready, or still being encoded (by the encoder
/// pool, whole or in bands).
enum Pending {
    Ready(SharedBytes),
    Encoding(Encoding),
}

/// What the companion thread does, in the order the streaming thread handed it over.
enum Job {
    Frame {
        header: Vec<u8>,
        payload: Pending,
        stamp: FrameStamp,
        /// When the frame goes stale (`max-frame-age`).
        expires: Option<std::time::Instant>,
    },
    /// End of stream: the termination, after the last frame's reply.
    Terminate,
}

/// The network side, owned by the companion thread: sends frames, waits for replies.
struct Network {
    /// For bus messages, errors and counters; weak, so the thread keeps no element alive.
    element: glib::WeakRef<super::NetGearSink>,
    /// The encoder pool's results, taken in hand-off order.
    encoded: Option<Results<EncodeJob, EncodeResult>>,
    link: SenderLink,
    /// After the link, so the termination leaves through the tunnel before ssh stops.
    tunnel: Option<Tunnel>,
    /// The SSH host, for error texts.
    tunnel_host: String,
    /// For frames that come back with replies.
    reader: FrameReader,
    multi_client: bool,
    max_frame_bytes: u64,
    /// Multi-server: the port put in the termination.
    header_port: Option<u16>,
    terminated: bool,
}

impl companion::Worker for Network {
    type Job = Job;

    fn run(&mut self, job: Job) -> Result<(), gst::FlowError> {
        let element = self.element.upgrade().ok_or(gst::FlowError::Flushing)?;
        let imp = element.imp();
        match job {
            Job::Frame {
                header,
                payload,
                stamp,
                expires,
            } => imp.send_frame(self, header, payload, stamp, expires),
            Job::Terminate => {
                // Frames still in flight are answered (or given up) first.
                let outcomes = self.link.settle(&imp.stats);
                let settled = imp.take_outcomes(self, outcomes);
                imp.send_termination(self, true);
                settled
            }
        }
    }

    fn in_flight(&self) -> bool {
        self.link.has_in_flight()
    }

    /// Replies to the frames in flight are read (and posted) while no frame comes.
    fn idle(&mut self, doorbell: &Waker) -> Result<(), gst::FlowError> {
        let element = self.element.upgrade().ok_or(gst::FlowError::Flushing)?;
        let imp = element.imp();
        let outcomes = self.link.await_answers(doorbell, &imp.stats);
        imp.take_outcomes(self, outcomes)
    }

    fn discard(&mut self, job: Job) {
        if let (Some(element), Job::Frame { .. }) = (self.element.upgrade(), job) {
            Stats::bump(&element.imp().stats.dropped);
        }
    }
}

struct Started {
    /// `None` while the streaming thread has it.
    stream: Option<Box<Stream>>,
    /// The companion thread that owns the network side.
    companion: Arc<Companion<Network>>,
    /// Wakes the streaming thread and the companion waiting for the encoder pool.
    encoder_interrupter: Option<Interrupter>,
    /// For log and error texts while the stream is out.
    endpoints: String,
}

#[derive(Default)]
enum State {
    #[default]
    Stopped,
    Started(Started),
}

#[derive(Default)]
pub struct NetGearSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    interrupt: Interrupt,
    /// The last frame found nobody listening (the link gave it up after one timeout).
    nobody_listening: AtomicBool,
    /// A refused connection was warned about and no receiver has connected since.
    refusal_warned: AtomicBool,
    /// The termination is on its way: a receiver going away now is expected, not warned of.
    terminating: AtomicBool,
    stats: Stats,
    /// Frames dropped as older than `max-frame-age` (`stale` in stats).
    stale: AtomicU64,
}

impl NetGearSink {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        sync::lock(&self.settings)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        sync::lock(&self.state)
    }

    fn take_stream(&self) -> Option<Box<Stream>> {
        match &mut *self.state() {
            State::Started(started) => started.stream.take(),
            State::Stopped => None,
        }
    }

    fn put_stream(&self, stream: Box<Stream>) {
        if let State::Started(started) = &mut *self.state() {
            started.stream = Some(stream);
        }
    }

    fn endpoints(&self) -> String {
        match &*self.state() {
            State::Started(started) => started.endpoints.clone(),
            State::Stopped => String::new(),
        }
    }

    /// The per-frame settings. `jpeg-*` and `message` may change while playing, so they
    /// are read for every frame on purpose; a relayed frame keeps its own message.
    fn frame_settings(&self, buffer: &gst::BufferRef) -> (JpegSettings, JsonText) {
        let relayed = meta::read(buffer).and_then(|info| info.message);
        let s = self.settings();
        let message = match &relayed {
            Some(text) => JsonText::from_user_text(text),
            None => s.message.json().clone(),
        };
        (s.jpeg.clone(), message)
    }

    /// The companion and the encoder pool's interrupter, while started.
    fn pipelining(&self) -> Option<(Arc<Companion<Network>>, Option<Interrupter>)> {
        match &*self.state() {
            State::Started(started) => Some((
                started.companion.clone(),
                started.encoder_interrupter.clone(),
            )),
            State::Stopped => None,
        }
    }

    /// Turns one buffer into a job: its header, and its payload lent from the buffer,
    /// packed or encoded here, or submitted to the encoder pool.
    fn prepare(
        &self,
        stream: &mut Stream,
        buffer: &gst::Buffer,
        expires: Option<std::time::Instant>,
    ) -> Result<Job, gst::FlowError> {
        let input = stream.input.as_ref().ok_or(gst::FlowError::NotNegotiated)?;
        let (jpeg, message) = self.frame_settings(buffer);
        let pooled = match &stream.encoders {
            Some(_) => encode_job(buffer, input, &jpeg).map_err(|e| self.frame_failed(e))?,
            None => None,
        };
        let (kind, payload) = match (pooled, stream.encoders.as_mut()) {
            (Some((kind, job)), Some(pool)) => {
                let encoding = stream.bands.submit(pool, job).map_err(|_| self.dropped())?;
                if encoding.is_banded() {
                    Stats::bump(&self.stats.band_encodes);
                }
                (kind, Pending::Encoding(encoding))
            }
            _ => {
                let (kind, payload) = stream
                    .writer
                    .write(buffer, input, &jpeg)
                    .map_err(|e| self.frame_failed(e))?;
                let bytes: SharedBytes = match payload {
                    Payload::Lent(bytes) => bytes,
                    Payload::Scratch => Arc::new(stream.writer.take_scratch()),
                };
                (kind, Pending::Ready(bytes))
            }
        };
        let mut header = protocol::encode_frame_header(
            stream.header_port,
            &kind,
            &message,
            stream.pattern.number(),
        );
        let captured = capture_time::of_buffer(self.obj().upcast_ref(), buffer);
        protocol::append_capture_time(&mut header, captured);
        protocol::add_sequence(&mut header, stream.sequence);
        stream.sequence = stream.sequence.next();
        Ok(Job::Frame {
            header,
            payload,
            stamp: stamp::of(buffer),
            expires,
        })
    }

    /// A frame lost on our side (unlock, flush): counted; the caller returns `Flushing`.
    fn dropped(&self) -> gst::FlowError {
        Stats::bump(&self.stats.dropped);
        gst::FlowError::Flushing
    }

    /// Companion thread: sends one frame and waits for the reply (patterns 0/1; with load
    /// balancing, for a receiver that is free).
    fn send_frame(
        &self,
        net: &mut Network,
        header: Vec<u8>,
        payload: Pending,
        stamp: FrameStamp,
        expires: Option<std::time::Instant>,
    ) -> Result<(), gst::FlowError> {
        let payload = match payload {
            Pending::Ready(bytes) => bytes,
            Pending::Encoding(encoding) => self.encoded(net, &encoding)?,
        };
        self.keep_tunnel_up(net)?;
        let frame = OutFrame {
            header,
            payload,
            stamp,
            expires,
        };
        let outcomes = net.link.send(frame, &self.stats);
        self.take_outcomes(net, outcomes)
    }

    /// Companion thread: counts what became of frames and reads their replies; a link
    /// error is posted.
    fn take_outcomes(
        &self,
        net: &mut Network,
        outcomes: Result<Vec<Outcome>, LinkError>,
    ) -> Result<(), gst::FlowError> {
        for outcome in outcomes.map_err(|e| self.link_failed(e))? {
            let (frame, reply) = match outcome {
                Outcome::Answered { frame, reply } => (frame, reply),
                Outcome::Sent(frame) => (frame, Vec::new()),
                // Nobody listening: this frame is given up after one timeout (warned about
                // by the link's events); the error comes after max-retries of them in a row.
                Outcome::Dropped(frame) => {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "frame with pts {:?} given up",
                        frame.stamp.pts
                    );
                    Stats::bump(&self.stats.dropped);
                    continue;
                }
                Outcome::Stale(frame) => {
                    self.stale_dropped(frame.stamp.pts, None);
                    continue;
                }
            };
            self.nobody_listening.store(false, Ordering::Relaxed);
            Stats::bump(&self.stats.frames);
            Stats::add(&self.stats.bytes, (*frame.payload).as_ref().len() as u64);
            self.handle_reply(net, reply, frame.stamp);
        }
        Ok(())
    }

    /// Companion thread: the JPEG of a pooled frame, waiting for its encoders.
    fn encoded(&self, net: &Network, encoding: &Encoding) -> Result<SharedBytes, gst::FlowError> {
        let results = net.encoded.as_ref().ok_or(gst::FlowError::Error)?;
        match encoding.take(results) {
            Some(Ok(Ok(jpeg))) => Ok(Arc::new(jpeg)),
            Some(Ok(Err(e))) => Err(self.frame_failed(FrameError::Encode(e))),
            Some(Err(PoolError::Panicked(why))) => Err(self.failed(gst::error_msg!(
                gst::StreamError::Encode,
                ["JPEG encoder thread failed: {}", why]
            ))),
            Some(Err(PoolError::Interrupted)) | None => Err(self.dropped()),
        }
    }

    /// An SSH tunnel whose ssh died is started again before the next frame; its lines go
    /// to the log.
    fn keep_tunnel_up(&self, net: &mut Network) -> Result<(), gst::FlowError> {
        let Some(t) = net.tunnel.as_mut() else {
            return Ok(());
        };
        match tunnel::keep_up(t) {
            Ok(lines) => {
                for line in lines {
                    gst::warning!(CAT, imp = self, "ssh: {line}");
                }
                Ok(())
            }
            Err(e) => Err(self.failed(tunnel::failed(&net.tunnel_host, &e))),
        }
    }

    /// A link event: connection changes go to the bus; a refused connection (as soon as it
    /// is certain), the first unanswered attempt of an outage and a receiver going down
    /// are warned about, each naming endpoint and cause (the error, if any, comes later);
    /// after the termination, a receiver leaving is what was asked for.
    fn link_event(&self, event: LinkEvent) {
        glue::post_link_event(self.obj().upcast_ref(), *CAT, &event);
        let warn = match &event {
            LinkEvent::Refused { .. } => !self.refusal_warned.swap(true, Ordering::Relaxed),
            LinkEvent::Connected { .. } => {
                self.refusal_warned.store(false, Ordering::Relaxed);
                false
            }
            LinkEvent::Unanswered { attempt, cause, .. } => {
                // Only a missing receiver lets EOS drop the queue; a failed handshake must
                // still end in the error.
                let nobody = *cause == Unanswered::NobodyListening;
                self.nobody_listening.store(nobody, Ordering::Relaxed);
                // A refusal already warned about needs no second warning.
                *attempt == 1 && !(nobody && self.refusal_warned.load(Ordering::Relaxed))
            }
            LinkEvent::ReceiverDown { .. } => true,
            _ => false,
        };
        if warn && !self.terminating.load(Ordering::Relaxed) {
            let hint = match &event {
                LinkEvent::Unanswered { cause, .. } | LinkEvent::ReceiverDown { cause, .. } => {
                    cause.hint()
                }
                _ => Unanswered::NobodyListening.hint(),
            };
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("{}", event),
                ["{}", hint.unwrap_or_default()]
            );
        }
    }

    /// Secure pub-sub reaches netgearsrc but never a vidgear receiver; said once at start.
    fn warn_secure_pubsub(&self, settings: &Settings) {
        let common = &settings.common;
        if common.pattern == Pattern::PubSub && common.secure_mode != SecureMode::None {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                ("{}", SECURE_PUBSUB_WARNING),
                ["see README, Messages; netgearsrc receives secure pub-sub"]
            );
        }
    }

    /// `max-frame-age`'s verdict on a buffer; the first after new caps asks upstream
    /// whether it is live.
    fn judge(&self, stream: &mut Stream, buffer: &gst::Buffer) -> Verdict {
        let sink = self.obj();
        if stream.ageing == Ageing::Unknown {
            stream.ageing = Ageing::of(sink.upcast_ref());
            gst::debug!(CAT, imp = self, "frames aged: {:?}", stream.ageing);
        }
        let max_age = freshness::max_age(self.settings().max_frame_age_ms);
        freshness::judge(sink.upcast_ref(), buffer, stream.ageing, max_age)
    }

    /// A frame dropped as older than `max-frame-age`: when it reached the sink (`age`
    /// known), or held up by the link.
    fn stale_dropped(&self, pts: Option<u64>, age: Option<std::time::Duration>) {
        Stats::bump(&self.stale);
        match age {
            Some(age) => gst::debug!(
                CAT,
                imp = self,
                "frame with pts {pts:?} dropped: {} ms old",
                age.as_millis()
            ),
            None => gst::debug!(
                CAT,
                imp = self,
                "frame with pts {pts:?} dropped: stale before the link could send it"
            ),
        }
    }

    /// Posts an error of the stream, after making later renders fail with it.
    fn failed(&self, message: gst::ErrorMessage) -> gst::FlowError {
        match self.pipelining() {
            Some((companion, _)) => {
                companion.fail(gst::FlowError::Error, || self.post_error_message(message))
            }
            None => self.post_error_message(message),
        }
        gst::FlowError::Error
    }

    fn frame_failed(&self, error: FrameError) -> gst::FlowError {
        self.failed(gst::error_msg!(
            gst::StreamError::Format,
            ["Could not send a frame to {}: {}", self.endpoints(), error]
        ))
    }

    fn link_failed(&self, error: LinkError) -> gst::FlowError {
        match error {
            // The link counted the frames it dropped.
            LinkError::Interrupted => gst::FlowError::Flushing,
            e => {
                let hint = e.hint().unwrap_or_default();
                self.failed(gst::error_msg!(
                    gst::ResourceError::Write,
                    ("{}", e),
                    ["{}", hint]
                ))
            }
        }
    }

    /// Reads a receiver's reply: data goes to the bus as `netgear-return`, a returned
    /// frame as `netgear-return-frame`, each naming the frame it answers (`stamp`).
    fn handle_reply(&self, net: &mut Network, mut parts: Vec<zmq::Message>, stamp: FrameStamp) {
        let Some(first) = parts.first() else { return };
        let reply = protocol::parse_reply(first);
        let port = match &reply {
            Ok(Reply::Data { port, .. } | Reply::Frame { port, .. }) => {
                port.filter(|_| net.multi_client)
            }
            _ => None,
        };
        match reply {
            Ok(Reply::Text(text)) => gst::trace!(CAT, imp = self, "receiver said: {text}"),
            Ok(Reply::Data { data, .. }) if data.is_null() => {}
            Ok(Reply::Data { data, .. }) => {
                Stats::bump(&self.stats.returns);
                let text = data.into_string();
                let fields =
                    |b: gst::structure::Builder| stamp::fields(b.field("data", text), stamp);
                glue::post_element_message(self.obj().upcast_ref(), "netgear-return", fields, port);
            }
            Ok(Reply::Frame { payload, .. }) if parts.len() == 2 => {
                let bytes = parts.swap_remove(1);
                let limit = net.max_frame_bytes;
                match net.reader.sample(&payload, bytes, limit) {
                    Ok(sample) => self.post_return_frame(sample, port, stamp),
                    Err(e) => self.malformed_reply(&e),
                }
            }
            Ok(Reply::Frame { .. }) => {
                self.malformed_reply(&protocol::ProtocolError::PartCount(parts.len()))
            }
            Err(e) => self.malformed_reply(&e),
        }
    }

    fn post_return_frame(&self, sample: gst::Sample, port: Option<u16>, stamp: FrameStamp) {
        Stats::bump(&self.stats.returns);
        let fields = |b: gst::structure::Builder| stamp::fields(b.field("sample", sample), stamp);
        glue::post_element_message(
            self.obj().upcast_ref(),
            "netgear-return-frame",
            fields,
            port,
        );
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

    /// Sends the termination message once. `wait`: give the receiver time to answer
    /// (EOS); otherwise best effort without blocking (stopping without EOS).
    fn send_termination(&self, net: &mut Network, wait: bool) {
        if net.terminated {
            return;
        }
        net.terminated = true;
        self.terminating.store(true, Ordering::Relaxed);
        let message = protocol::encode_termination(net.header_port);
        let answered = net.link.terminate(&message, wait);
        Stats::bump(&self.stats.terminations);
        gst::debug!(
            CAT,
            imp = self,
            "sent termination to {} (answered: {answered})",
            net.link.config().endpoint_list()
        );
    }

    /// The SSH tunnel (if asked for) and the link through it; the settings the link uses.
    fn open_link(
        &self,
        settings: &Settings,
    ) -> Result<(SenderLink, Option<Tunnel>, CommonSettings), gst::ErrorMessage> {
        let (tunnel, through) = match tunnel::open(&settings.tunnel, &settings.common)? {
            Some((tunnel, through)) => (Some(tunnel), through),
            None => (None, settings.common.clone()),
        };
        if let Some(t) = &tunnel {
            gst::info!(CAT, imp = self, "SSH tunnel: {}", t.command_line());
        }
        let common = &through;
        let (mut config, waker) = link_setup::prepare_start(
            common,
            Role::Sender,
            link_setup::KeyOptions {
                overwrite: settings.overwrite_cert,
                ..Default::default()
            },
            *CAT,
            self.obj().upcast_ref(),
        )?;
        config.events = glue::link_events(&*self.obj(), |sink, event| sink.imp().link_event(event));
        let mut link = SenderLink::open(config, waker.clone())
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenWrite, ["{}", e]))?;
        if settings.load_balance {
            link.set_order(Order::LoadBalance);
        }
        self.interrupt.arm(waker);
        Ok((link, tunnel, through))
    }

    fn open_stream(&self, settings: &Settings) -> Result<Started, gst::ErrorMessage> {
        let (link, tunnel, through) = self.open_link(settings)?;
        let common = &through;
        let endpoints = link.config().endpoint_list();
        let encoders = self.encoder_pool(settings)?;
        let network = Network {
            element: self.obj().downgrade(),
            encoded: encoders.as_ref().map(OrderedPool::results),
            link,
            tunnel,
            tunnel_host: settings.tunnel.host.clone(),
            reader: FrameReader::default(),
            multi_client: common.multi_client,
            max_frame_bytes: common.max_frame_bytes,
            header_port: common.multi_server.then(|| common.own_port()),
            terminated: false,
        };
        // One frame waits while one is on the wire; with the pool, as many as it encodes
        // at once, so every encoder has work while the network is busy.
        let capacity = encoders.as_ref().map_or(1, OrderedPool::workers);
        let companion = Companion::spawn("netgearsink-net", network, capacity).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Failed,
                ["Could not start a thread: {}", e]
            )
        })?;
        Ok(Started {
            encoder_interrupter: encoders.as_ref().map(OrderedPool::interrupter),
            stream: Some(Box::new(Stream {
                input: None,
                writer: FrameWriter::default(),
                pattern: common.pattern,
                header_port: common.multi_server.then(|| common.own_port()),
                sequence: Sequence::start(),
                encoders,
                bands: BandChoice::new(settings.jpeg_bands),
                ageing: Ageing::Unknown,
            })),
            companion: Arc::new(companion),
            endpoints,
        })
    }

    /// `jpeg-threads` encoder threads when there is more than one and raw input may be
    /// encoded; otherwise frames are encoded in series by the streaming thread.
    fn encoder_pool(&self, settings: &Settings) -> Result<Option<FrameEncoder>, gst::ErrorMessage> {
        let threads = match settings.jpeg_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n as usize,
        };
        if threads < 2 || !settings.jpeg_compression {
            return Ok(None);
        }
        gst::debug!(CAT, imp = self, "{threads} JPEG encoder threads");
        frame_encoder(threads).map(Some).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Failed,
                ["Could not start encoder threads: {}", e]
            )
        })
    }
}

#[glib::object_subclass]
impl ObjectSubclass for NetGearSink {
    const NAME: &'static str = "GstNetGearSink";
    type Type = super::NetGearSink;
    type ParentType = gst_base::BaseSink;
    type Interfaces = (gst::URIHandler,);
}

fn sink_properties() -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecBoolean::builder("jpeg-compression")
            .nick("JPEG compression")
            .blurb("Encode raw input to JPEG before sending, as vidgear does by default (image/jpeg input is always sent as it is)")
            .default_value(DEFAULT_JPEG_COMPRESSION)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("jpeg-quality")
            .nick("JPEG quality")
            .blurb("JPEG quality of inline compression")
            .minimum(MIN_JPEG_QUALITY)
            .maximum(MAX_JPEG_QUALITY)
            .default_value(DEFAULT_JPEG_QUALITY)
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder("jpeg-fastdct")
            .nick("JPEG fast DCT")
            .blurb("Use the fast, less accurate DCT when encoding; also asks the receiver to decode with it")
            .default_value(DEFAULT_JPEG_FASTDCT)
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder("jpeg-fastupsample")
            .nick("JPEG fast upsampling")
            .blurb("Ask the receiver to use fast chroma upsampling when decoding")
            .default_value(DEFAULT_JPEG_FASTUPSAMPLE)
            .mutable_playing()
            .build(),
        glib::ParamSpecString::builder("jpeg-colorspace")
            .nick("JPEG colorspace")
            .blurb("Colorspace the receiver decodes JPEG to: BGR, RGB, BGRX, RGBX, XBGR, XRGB, BGRA, RGBA, ABGR, ARGB or GRAY; empty: BGR for colour input, GRAY for gray")
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
            .default_value(DEFAULT_OVERWRITE_CERT)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("jpeg-threads")
            .nick("JPEG threads")
            .blurb("Threads that encode frames to JPEG in parallel (frames still leave in order): 0 = one per core, 1 = in series by the streaming thread")
            .maximum(MAX_JPEG_THREADS)
            .default_value(DEFAULT_JPEG_THREADS)
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("load-balance")
            .nick("Load balance")
            .blurb("Multi-client req-rep: send each frame to a receiver that has answered its last one, so each is fed as fast as it answers and several frames are in flight (frames still leave in order); false: to each receiver in turn, one frame at a time, as vidgear does")
            .default_value(DEFAULT_LOAD_BALANCE)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("jpeg-bands")
            .nick("JPEG bands")
            .blurb("Horizontal bands a frame is encoded in on the encoder threads at once, joined into one standard JPEG with restart markers (lower latency; any JPEG decoder, vidgear's included, reads it): 0 = automatic (a frame that finds the encoder threads idle, as in a live stream, gets one band per thread; frames that queue are encoded whole, one per thread), 1 = off (whole frames only), N = N bands for every frame. Needs jpeg-threads other than 1")
            .maximum(bands::MAX)
            .default_value(DEFAULT_JPEG_BANDS)
            .mutable_ready()
            .build(),
    ]
}

impl ObjectImpl for NetGearSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = common_properties(Role::Sender);
            props.extend(sink_properties());
            props.push(freshness::property());
            props.extend(TunnelSettings::properties());
            props.push(crate::uri::uri_property());
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.name() == "uri" {
            let element = self.obj();
            return crate::uri::set_uri_property(element.upcast_ref(), *CAT, Role::Sender, value);
        }
        let mut s = self.settings();
        gst::debug!(CAT, imp = self, "{} set", pspec.name());
        if s.common.set_property(value, pspec) || s.tunnel.set_property(value, pspec) {
            return;
        }
        match pspec.name() {
            "jpeg-compression" => {
                s.jpeg_compression = value.get().unwrap_or(DEFAULT_JPEG_COMPRESSION)
            }
            "jpeg-quality" => s.jpeg.quality = value.get().unwrap_or(DEFAULT_JPEG_QUALITY),
            "jpeg-fastdct" => s.jpeg.fast_dct = value.get().unwrap_or(DEFAULT_JPEG_FASTDCT),
            "jpeg-fastupsample" => {
                s.jpeg.fast_upsample = value.get().unwrap_or(DEFAULT_JPEG_FASTUPSAMPLE)
            }
            "jpeg-colorspace" => s.jpeg.colorspace = string_value(value),
            "message" => s.message.set(value),
            "overwrite-cert" => s.overwrite_cert = value.get().unwrap_or(DEFAULT_OVERWRITE_CERT),
            "jpeg-threads" => s.jpeg_threads = value.get().unwrap_or(DEFAULT_JPEG_THREADS),
            "load-balance" => s.load_balance = value.get().unwrap_or(DEFAULT_LOAD_BALANCE),
            "jpeg-bands" => s.jpeg_bands = value.get().unwrap_or(DEFAULT_JPEG_BANDS),
            "max-frame-age" => {
                s.max_frame_age_ms = value.get().unwrap_or(freshness::DEFAULT_MAX_FRAME_AGE_MS)
            }
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "uri" {
            return crate::uri::element_uri(self.obj().upcast_ref()).to_value();
        }
        if pspec.name() == "stats" {
            let mut stats = self.stats.to_structure("netgearsink-stats");
            stats.set("stale", self.stale.load(Ordering::Relaxed));
            return stats.to_value();
        }
        let s = self.settings();
        if let Some(v) = s
            .common
            .property(pspec)
            .or_else(|| s.tunnel.property(pspec))
        {
            return v;
        }
        match pspec.name() {
            "jpeg-compression" => s.jpeg_compression.to_value(),
            "jpeg-quality" => s.jpeg.quality.to_value(),
            "jpeg-fastdct" => s.jpeg.fast_dct.to_value(),
            "jpeg-fastupsample" => s.jpeg.fast_upsample.to_value(),
            "jpeg-colorspace" => s.jpeg.colorspace.to_value(),
            "message" => s.message.to_value(),
            "overwrite-cert" => s.overwrite_cert.to_value(),
            "jpeg-threads" => s.jpeg_threads.to_value(),
            "load-balance" => s.load_balance.to_value(),
            "jpeg-bands" => s.jpeg_bands.to_value(),
            "max-frame-age" => s.max_frame_age_ms.to_value(),
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
            let caps = crate::formats::send_caps();
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
        // The settings as they are now hold for the whole stream, except the properties
        // flagged mutable-playing, which `frame_settings` reads per frame.
        let settings = self.settings().clone();
        self.check_jpeg_colorspace(&settings.jpeg)?;
        self.check_load_balance(&settings)?;
        let started = self.open_stream(&settings)?;
        gst::info!(CAT, imp = self, "sending to {}", started.endpoints);
        self.stats.reset();
        self.stale.store(0, Ordering::Relaxed);
        self.nobody_listening.store(false, Ordering::Relaxed);
        self.refusal_warned.store(false, Ordering::Relaxed);
        self.terminating.store(false, Ordering::Relaxed);
        self.warn_secure_pubsub(&settings);
        *self.state() = State::Started(started);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::take(&mut *self.state());
        if let State::Started(started) = state {
            // Wake whatever the companion waits for, so it returns at once.
            self.interrupt.unlock();
            if let Some(interrupter) = &started.encoder_interrupter {
                interrupter.interrupt();
            }
            if let Some(mut network) = started.companion.stop() {
                self.send_termination(&mut network, false);
            }
            // Joins the encoder threads.
            drop(started.stream);
        }
        self.interrupt.disarm();
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let jpeg_compression = self.settings().jpeg_compression;
        let input = Input::from_caps(caps, jpeg_compression)
            .map_err(|e| gst::loggable_error!(CAT, "{e}"))?;
        if let Some(format) = input.cannot_compress(jpeg_compression) {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                [
                    "{} cannot be JPEG-compressed: sending raw frames",
                    format.to_str()
                ]
            );
        }
        gst::debug!(CAT, imp = self, "input {input:?}");
        let mut stream = self
            .take_stream()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps before start"))?;
        stream.input = Some(input);
        stream.ageing = Ageing::Unknown;
        self.put_stream(stream);
        Ok(())
    }

    /// Hands the frame to the companion thread and returns: the previous frame may still
    /// be on the wire. An error of an earlier frame (already posted) is returned here.
    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (companion, _) = self.pipelining().ok_or(gst::FlowError::Flushing)?;
        let mut stream = self.take_stream().ok_or(gst::FlowError::Flushing)?;
        let verdict = self.judge(&mut stream, buffer);
        let job = match verdict {
            Verdict::Send(expires) => self.prepare(&mut stream, buffer, expires),
            Verdict::Stale(age) => {
                self.put_stream(stream);
                self.stale_dropped(buffer.pts().map(gst::ClockTime::nseconds), Some(age));
                return Ok(gst::FlowSuccess::Ok);
            }
        };
        self.put_stream(stream);
        match companion.hand_off(job?) {
            Err(gst::FlowError::Flushing) => Err(self.dropped()),
            other => other.map(|()| gst::FlowSuccess::Ok),
        }
    }

    /// EOS: the termination leaves after the last frame's reply; an error of a frame not
    /// yet answered at the last render keeps EOS from going on.
    fn event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            if let Some((companion, _)) = self.pipelining() {
                // Nobody listening: the frames still queued would each wait a timeout for
                // nothing; drop them and end the one on the wire now (issue 14 item 9).
                let nobody = self.nobody_listening.load(Ordering::Relaxed);
                if nobody {
                    let dropped = companion.unlock();
                    Stats::add(&self.stats.dropped, dropped.len() as u64);
                    companion.unlock_stop();
                    self.interrupt.unlock();
                    gst::element_imp_warning!(
                        self,
                        gst::ResourceError::Write,
                        (
                            "End of stream with nobody listening at {}: {} frames not sent",
                            self.endpoints(),
                            dropped.len() + 1
                        )
                    );
                }
                let ended = companion
                    .hand_off(Job::Terminate)
                    .and_then(|()| companion.drain());
                if nobody {
                    self.interrupt.unlock_stop();
                }
                if let Err(e) = ended {
                    gst::debug!(CAT, imp = self, "not ending the stream: {e:?}");
                    return false;
                }
            }
        }
        self.parent_event(event)
    }

    /// Wakes every wait: the streaming thread's for room in the hand-off or for an
    /// encoder, the companion's on the network; frames not yet sent are dropped.
    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        // The hand-off first: once the network wait ends, the companion would otherwise
        // make room for, and send, a frame the flush should drop.
        if let Some((companion, interrupter)) = self.pipelining() {
            let dropped = companion.unlock();
            Stats::add(&self.stats.dropped, dropped.len() as u64);
            if let Some(i) = interrupter {
                i.interrupt();
            }
        }
        self.interrupt.unlock();
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.interrupt.unlock_stop();
        if let Some((companion, interrupter)) = self.pipelining() {
            companion.unlock_stop();
            if let Some(i) = interrupter {
                i.resume();
            }
        }
        Ok(())
    }
}

// `netgear://` URIs (see `crate::uri`).
crate::uri::uri_handler!(NetGearSink, Sink, Role::Sender, *CAT);

impl NetGearSink {
    /// An unknown `jpeg-colorspace` would crash vidgear's receive thread: refuse it at start.
    fn check_jpeg_colorspace(&self, jpeg: &JpegSettings) -> Result<(), gst::ErrorMessage> {
        jpeg.check_colorspace()
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{}", e)))
    }

    /// `load-balance` only has receivers to balance in multi-client req-rep.
    fn check_load_balance(&self, settings: &Settings) -> Result<(), gst::ErrorMessage> {
        let common = &settings.common;
        config::check_load_balance(settings.load_balance, common.multi_client, common.pattern)
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ["Invalid settings: {}", e]))
    }
}
