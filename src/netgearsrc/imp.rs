// SPDX-License-Identifier: MPL-2.0

/**
 * SECTION:element-netgearsrc
 * @see_also: netgearsink, netgeardemux
 *
 * Receives video frames from a vidgear NetGear sender (`NetGear().send(frame)` in Python)
 * or from `netgearsink`, over ZeroMQ, speaking NetGear's wire protocol. A live source:
 * buffers carry the running time at which they arrived. Raw frames come out as BGR, BGRA,
 * GRAY8 or GRAY16_LE; JPEG frames as `image/jpeg` when downstream takes it, else decoded.
 * Frames from `netgearsink` also carry their capture time as a `GstReferenceTimestampMeta`
 * with caps `timestamp/x-unix`; `max-lateness` drops those that arrive late.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 netgearsrc ! videoconvert ! autovideosink
 * gst-launch-1.0 netgearsrc pattern=pub-sub timeout=5000 ! videoconvert ! autovideosink
 * gst-launch-1.0 netgearsrc ! jpegparse ! matroskamux ! filesink location=feed.mkv
 * ]|
 */
use super::clock::StartClock;
use super::lateness::{self, Lateness};
use super::probes::Probes;
use super::receiver::{self, BusMessage, Context, Step, Stream};
use super::returns::{self, Returns};
use super::timing::{Timed, Timing, Verdict};
use super::CAT;
use crate::config::{Pattern, Role};
use crate::frames::rate::{frame_duration, RateMode};
use crate::glue::{self, Interrupt, WarningLimiter};
use crate::link_setup;
use crate::properties::{common_properties, string_value, CommonSettings};
use crate::stats::Stats;
use crate::sync;
use crate::transport::Refusal;
use crate::transport::{pattern_name, HandshakeFailure, LinkEvent, ReceiverLink};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

/// 0: never end on silence.
const DEFAULT_TIMEOUT_MS: u32 = 0;
/// A network source waits for its sender (as udpsrc does): the give-up counts once one
/// has been heard.
const DEFAULT_WAIT_FOR_SENDER: bool = true;
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
    wait_for_sender: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            common: CommonSettings::new(Role::Receiver),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            allowed_addresses: String::new(),
            framerate: DEFAULT_FRAMERATE,
            wait_for_sender: DEFAULT_WAIT_FOR_SENDER,
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

#[derive(Default)]
pub struct NetGearSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    returns: Returns,
    lateness: Lateness,
    interrupt: Interrupt,
    warnings: WarningLimiter,
    probes: Probes,
    /// The port the link bound (read-only `bound-port`), 0 when stopped.
    bound_port: AtomicU32,
    stats: Stats,
    /// Frame rate and held frames; its own lock, taken only by the streaming thread and
    /// the latency query.
    timing: Mutex<Option<Timing>>,
    /// The clock the element provides, held from start until a sender is there.
    clock: StartClock,
}

impl NetGearSrc {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        sync::lock(&self.settings)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        sync::lock(&self.state)
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

    /// What the stream reports to and asks of the element (`element` is `self.obj()`).
    fn context<'a>(&'a self, element: &'a super::NetGearSrc) -> Context<'a> {
        Context {
            element,
            stats: &self.stats,
            warnings: &self.warnings,
            returns: &self.returns,
            lateness: &self.lateness,
            timing: &self.timing,
            clock: &self.clock,
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

    /// A link event: connection changes go to the bus; a sender with another pattern is
    /// warned about as such; a failed handshake that the authenticator did not already
    /// report (wrong server key, wrong mechanism) is warned about like a refusal.
    fn link_event(&self, event: LinkEvent, pattern: Pattern, request_timeout: Duration) {
        self.sender_connected(&event);
        glue::post_link_event(self.obj().upcast_ref(), *CAT, &event);
        let ours = pattern_name(pattern);
        match &event {
            LinkEvent::HandshakeFailed { reason, peer, .. } => {
                if reason.is_socket_type_mismatch() {
                    let from = peer
                        .as_ref()
                        .map(|p| format!(" from {p}"))
                        .unwrap_or_default();
                    self.warn_mismatch(format!("Pattern mismatch: a sender{from} uses another pattern than this receiver's {ours}; ZeroMQ refused its socket type"));
                    return;
                }
                let peer = peer.as_deref().unwrap_or("?");
                if !matches!(reason, HandshakeFailure::Auth { .. }) && self.warnings.due() {
                    gst::element_imp_warning!(
                        self,
                        gst::ResourceError::NotAuthorized,
                        ["Refused a client from {}: {}", peer, reason]
                    );
                }
            }
            LinkEvent::Probed {
                peer: Some(peer), ..
            } if self.probes.repeated(peer, 3 * request_timeout) => {
                let ip = peer.rsplit_once(':').map_or(peer.as_str(), |(ip, _)| ip);
                self.warn_mismatch(format!("Probably a pattern mismatch: connections from {ip} keep closing during the handshake, as a sender with another pattern than this receiver's {ours} does when it retries (a frequent TCP health check does too)"));
            }
            _ => {}
        }
    }

    fn warn_mismatch(&self, text: String) {
        if self.warnings.due() {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                ("{}", text),
                ["set the same pattern on both ends"]
            );
        }
    }

    /// The counters, with the delays of stamped frames.
    fn stats_structure(&self) -> gst::Structure {
        let mut stats = self.stats.to_structure("netgearsrc-stats");
        self.lateness.add_to_stats(&mut stats);
        stats
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

    fn open_stream(&self, settings: &Settings) -> Result<Box<Stream>, gst::ErrorMessage> {
        let c = &settings.common;
        let options = link_setup::KeyOptions {
            overwrite: false,
            allowed_addresses: &settings.allowed_addresses,
        };
        let element = self.obj();
        let (mut config, waker) =
            link_setup::prepare_start(c, Role::Receiver, options, *CAT, element.upcast_ref())?;
        let (pattern, timeout) = (c.pattern, config.request_timeout);
        config.events = glue::link_events(&*element, move |src, event| {
            src.imp().link_event(event, pattern, timeout)
        });
        let element = element.downgrade();
        let on_refused = Box::new(move |peer: &str, why: &Refusal| {
            if let Some(element) = element.upgrade() {
                element.imp().refused(peer, why);
            }
        });
        let link = ReceiverLink::open(config, waker.clone(), on_refused)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ["{}", e]))?;
        self.interrupt.arm(waker);
        let stream = Stream::new(link, c, settings.timeout_ms, settings.wait_for_sender);
        Ok(Box::new(stream))
    }

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
        glib::ParamSpecBoolean::builder("wait-for-sender")
            .nick("Wait for sender")
            .blurb("Patterns 0, 1: wait for the first sender however long it takes (a camera still booting); the max-retries give-up counts silent periods only once a sender has been heard. false: count them from the start, as vidgear's receiver does. The timeout property is not affected")
            .default_value(DEFAULT_WAIT_FOR_SENDER)
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
        // A capture pipeline runs on the source's clock (see `clock`).
        obj.set_element_flags(gst::ElementFlags::PROVIDE_CLOCK);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = common_properties(Role::Receiver);
            props.push(returns::data_property());
            props.extend(src_properties());
            props.extend(returns::frame_properties());
            props.push(lateness::property());
            props.push(crate::uri::uri_property());
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.name() == "uri" {
            let element = self.obj();
            return crate::uri::set_uri_property(element.upcast_ref(), *CAT, Role::Receiver, value);
        }
        gst::debug!(CAT, imp = self, "{} set", pspec.name());
        if self.returns.set_property(value, pspec) || self.lateness.set_property(value, pspec) {
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
            "wait-for-sender" => s.wait_for_sender = value.get().unwrap_or(DEFAULT_WAIT_FOR_SENDER),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "uri" => return crate::uri::element_uri(self.obj().upcast_ref()).to_value(),
            "stats" => return self.stats_structure().to_value(),
            "bound-port" => return self.bound_port.load(Ordering::Relaxed).to_value(),
            _ => {}
        }
        if let Some(v) = self
            .returns
            .property(pspec)
            .or_else(|| self.lateness.property(pspec))
        {
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
            "wait-for-sender" => s.wait_for_sender.to_value(),
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

    fn provide_clock(&self) -> Option<gst::Clock> {
        Some(self.clock.clone().upcast())
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
        let link = stream.link();
        let bound = link.bound_port().unwrap_or(0);
        self.bound_port.store(u32::from(bound), Ordering::Relaxed);
        gst::info!(
            CAT,
            imp = self,
            "listening on {} (secure: {:?})",
            link.config().endpoint_list(),
            link.config().curve
        );
        self.stats.reset();
        self.lateness.reset();
        self.warnings.reset();
        self.probes.reset();
        self.reset_timing(settings.framerate);
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
    /// changed) makes the next frame ask again whether JPEG can pass and set its caps anew;
    /// one the source marked itself after a push under trial only looks at how it went.
    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        if self.trial_verdict()? {
            return Ok(());
        }
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
                stream.renegotiate();
            }
            let step = stream.receive(&self.context(&self.obj()));
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

// `netgear://` URIs (see `crate::uri`).
crate::uri::uri_handler!(NetGearSrc, Src, Role::Receiver, *CAT);

/// Frame rate, durations and latency (see `frames::rate` and `timing`), and the clock.
impl NetGearSrc {
    fn timing(&self) -> MutexGuard<'_, Option<Timing>> {
        sync::lock(&self.timing)
    }

    /// A new stream: the rate as `framerate` asks, the clock held until a sender is there.
    fn reset_timing(&self, framerate: gst::Fraction) {
        *self.timing() = Some(Timing::new(RateMode::from_property(framerate)));
        self.clock.hold();
    }

    /// A sender connected: the clock runs (a frame would run it too, see `receiver`).
    fn sender_connected(&self, event: &LinkEvent) {
        if matches!(event, LinkEvent::Connected { .. }) {
            self.clock.run();
        }
    }

    /// Pushes under trial (see `timing`) mark the pad for reconfigure, so the base class
    /// calls `negotiate()` before the next frame and the source sees how the push went.
    fn note_trial(&self, buffers: &[gst::Buffer]) {
        let trial = self.timing().as_mut().is_some_and(|t| t.pushing(buffers));
        if trial {
            self.obj().src_pad().mark_reconfigure();
        }
    }

    /// How the last push under trial went; `Ok(true)`: the reconfigure was the trial's own.
    /// A variable rate downstream refused makes the source measure one; caps refused with
    /// a rate end the stream with an error that says what to set.
    fn trial_verdict(&self) -> Result<bool, gst::LoggableError> {
        let pad = self.obj().src_pad().clone();
        let caps = pad.current_caps();
        let verdict = match self.timing().as_mut() {
            Some(timing) => timing.verdict(pad.last_flow_result(), caps.clone()),
            None => Verdict::NoTrial,
        };
        match verdict {
            Verdict::NoTrial => Ok(false),
            Verdict::Passed => Ok(true),
            Verdict::Measuring => {
                gst::info!(
                    CAT,
                    imp = self,
                    "downstream refuses a variable frame rate: measuring one, as framerate=0/1"
                );
                Ok(true)
            }
            Verdict::Refused(rate) => {
                self.rate_refused(caps, rate);
                Err(gst::loggable_error!(CAT, "downstream refused the caps"))
            }
        }
    }

    /// Downstream refused the caps with a rate, or a variable one it needs no matter what.
    fn rate_refused(&self, caps: Option<gst::Caps>, rate: Option<gst::Fraction>) {
        let caps = caps.map_or_else(|| "the caps".to_owned(), |c| c.to_string());
        let endpoints = self.endpoints();
        let fell_back = self.timing().as_ref().is_some_and(Timing::fell_back);
        let advice = match rate {
            None if fell_back => "it needs a frame rate and too few frames came to measure one: set framerate=N/D (e.g. framerate=30/1)".to_owned(),
            None => "if it needs a frame rate, set framerate=0/1 (measured) or framerate=N/D".to_owned(),
            Some(r) => format!(
                "if it needs another frame rate than {}/{}, set framerate=N/D; for other formats put videoconvert after netgearsrc",
                r.numer(),
                r.denom()
            ),
        };
        gst::element_imp_error!(
            self,
            gst::CoreError::Negotiation,
            (
                "Downstream refused {} from {} (not-negotiated)",
                caps,
                endpoints
            ),
            ["{}", advice]
        );
    }

    /// The endpoints the source listens on, for messages.
    fn endpoints(&self) -> String {
        match &*self.state() {
            State::Started(Started {
                stream: Some(stream),
                ..
            }) => stream.link().config().endpoint_list(),
            _ => "netgearsrc".to_owned(),
        }
    }

    /// A frame stamped with its arrival and duration: pushed now, or held while measuring.
    fn timed(&self, buffer: gst::Buffer) -> Result<Option<CreateSuccess>, gst::FlowError> {
        // Frames carry their arrival (see `receiver`).
        let arrival = buffer.pts().or_else(|| receiver::arrival_time(&self.obj()));
        let timed = match self.timing().as_mut() {
            Some(timing) => {
                let was_measuring = timing.is_measuring();
                let timed = timing.frame(buffer, arrival);
                if was_measuring && !timing.is_measuring() {
                    gst::debug!(CAT, imp = self, "measured {}", timing.measurement());
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
        self.note_trial(&buffers);
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
