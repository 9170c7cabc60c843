// SPDX-License-Identifier: MPL-2.0
//! `netgeardemux`: one sometimes pad `src_<port>` per multi-server sender.
//!
//! Routing is by the `NetGearMeta` port `netgearsrc` puts on every multi-server buffer.
//! Upstream interleaves the servers, so its caps change whenever consecutive frames come
//! from servers of different sizes; each output pad instead remembers its own server's caps
//! and re-sends them only when that server's caps change.

use crate::meta;
use crate::sync;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "netgeardemux",
        gst::DebugColorFlags::empty(),
        Some("NetGear multi-server demuxer"),
    )
});

/// One server's output pad.
struct Output {
    pad: gst::Pad,
    /// The caps last sent on this pad (this server's caps).
    caps: Option<gst::Caps>,
    /// The server terminated; a frame from it again starts a new stream on the pad.
    ended: bool,
}

/// What the streaming thread knows while data flows.
struct Streaming {
    outputs: BTreeMap<u16, Output>,
    /// Caps in force on the sink pad: those of the next buffer.
    caps: Option<gst::Caps>,
    segment: Option<gst::Event>,
    group_id: gst::GroupId,
    routed: u64,
    /// Buffers without a port (not from a multi-server netgearsrc).
    dropped: u64,
}

impl Default for Streaming {
    fn default() -> Self {
        Streaming {
            outputs: BTreeMap::new(),
            caps: None,
            segment: None,
            group_id: gst::GroupId::next(),
            routed: 0,
            dropped: 0,
        }
    }
}

#[derive(Default)]
enum State {
    #[default]
    Stopped,
    Started(Streaming),
}

/// What a buffer's port maps to, decided under the lock and acted on without it.
enum Route {
    /// A pad exists; `caps` are to be sent first when the server's caps changed.
    Existing {
        pad: gst::Pad,
        caps: Option<gst::Caps>,
        restart: bool,
    },
    New(gst::Caps),
}

pub struct NetGearDemux {
    sinkpad: gst::Pad,
    state: Mutex<State>,
    /// Its own lock: updated after every push, with no state lock held.
    flow: Mutex<gst_base::UniqueFlowCombiner>,
}

impl NetGearDemux {
    fn state(&self) -> MutexGuard<'_, State> {
        sync::lock(&self.state)
    }

    fn flow(&self) -> MutexGuard<'_, gst_base::UniqueFlowCombiner> {
        sync::lock(&self.flow)
    }

    /// Runs `f` on the streaming state; `None` when stopped.
    fn with_streaming<T>(&self, f: impl FnOnce(&mut Streaming) -> T) -> Option<T> {
        match &mut *self.state() {
            State::Started(s) => Some(f(s)),
            State::Stopped => None,
        }
    }

    fn sink_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(port) = meta::read(&buffer).and_then(|info| info.port) else {
            let dropped = self
                .with_streaming(|s| {
                    s.dropped += 1;
                    s.dropped
                })
                .ok_or(gst::FlowError::Flushing)?;
            gst::debug!(
                CAT,
                imp = self,
                "dropped a buffer without a server port ({dropped} so far)"
            );
            return Ok(gst::FlowSuccess::Ok);
        };
        let route = self
            .with_streaming(|s| Self::route(s, port))
            .ok_or(gst::FlowError::Flushing)?
            .ok_or_else(|| {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ["A frame from server {} arrived before any caps", port]
                );
                gst::FlowError::NotNegotiated
            })?;
        let pad = match route {
            Route::New(caps) => self.add_output(port, caps)?,
            Route::Existing { pad, caps, restart } => {
                if restart {
                    self.restart_output(&pad, port, caps);
                } else if let Some(caps) = caps {
                    gst::debug!(CAT, obj = pad, "server {port} now sends {caps}");
                    pad.push_event(gst::event::Caps::new(&caps));
                }
                pad
            }
        };
        let ret = pad.push(buffer);
        self.flow().update_pad_flow(&pad, ret)
    }

    /// Where a buffer from `port` goes, and which caps its pad needs first.
    fn route(s: &mut Streaming, port: u16) -> Option<Route> {
        let current = s.caps.clone()?;
        s.routed += 1;
        let Some(out) = s.outputs.get_mut(&port) else {
            return Some(Route::New(current));
        };
        let restart = std::mem::take(&mut out.ended);
        let changed = out.caps.as_ref() != Some(&current);
        if changed || restart {
            out.caps = Some(current.clone());
        }
        Some(Route::Existing {
            pad: out.pad.clone(),
            caps: (changed || restart).then_some(current),
            restart,
        })
    }

    /// Creates, primes and adds the pad of a server seen for the first time.
    fn add_output(&self, port: u16, caps: gst::Caps) -> Result<gst::Pad, gst::FlowError> {
        let obj = self.obj();
        let templ = obj
            .pad_template("src_%u")
            .ok_or(gst::FlowError::NotNegotiated)?;
        let pad = gst::Pad::builder_from_template(&templ)
            .name(format!("src_{port}"))
            .query_function(|pad, parent, query| {
                NetGearDemux::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.src_query(pad, query),
                )
            })
            .build();
        pad.use_fixed_caps();
        let _ = pad.set_active(true);
        let (group_id, segment) = self
            .with_streaming(|s| (s.group_id, s.segment.clone()))
            .ok_or(gst::FlowError::Flushing)?;
        // Sticky events are stored on the unlinked pad and reach the peer with the first buffer.
        let stream_id = pad.create_stream_id(&*obj, Some(&port.to_string()));
        pad.push_event(
            gst::event::StreamStart::builder(&stream_id)
                .group_id(group_id)
                .build(),
        );
        pad.push_event(gst::event::Caps::new(&caps));
        if let Some(segment) = segment {
            pad.push_event(segment);
        }
        self.with_streaming(|s| {
            s.outputs.insert(
                port,
                Output {
                    pad: pad.clone(),
                    caps: Some(caps.clone()),
                    ended: false,
                },
            )
        });
        self.flow().add_pad(&pad);
        gst::info!(CAT, imp = self, "server {port}: new pad with {caps}");
        obj.add_pad(&pad).map_err(|_| gst::FlowError::Error)?;
        Ok(pad)
    }

    /// A server that terminated sends again: a new stream on its pad. Sinks and
    /// aggregators drop everything after EOS until a flush, so the pad is flushed first
    /// (nothing is queued after EOS); running time is kept.
    fn restart_output(&self, pad: &gst::Pad, port: u16, caps: Option<gst::Caps>) {
        gst::info!(CAT, obj = pad, "server {port} is back: new stream");
        pad.push_event(gst::event::FlushStart::new());
        pad.push_event(gst::event::FlushStop::new(false));
        let group_id = self.with_streaming(|s| s.group_id);
        let stream_id = pad.create_stream_id(&*self.obj(), Some(&port.to_string()));
        pad.push_event(
            gst::event::StreamStart::builder(&stream_id)
                .group_id_if_some(group_id)
                .build(),
        );
        if let Some(caps) = caps {
            pad.push_event(gst::event::Caps::new(&caps));
        }
        if let Some(segment) = self.with_streaming(|s| s.segment.clone()).flatten() {
            pad.push_event(segment);
        }
    }

    /// Every output pad, to forward an event to without holding the lock.
    fn output_pads(&self) -> Vec<gst::Pad> {
        self.with_streaming(|s| s.outputs.values().map(|o| o.pad.clone()).collect())
            .unwrap_or_default()
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        gst::log!(CAT, obj = pad, "event {event:?}");
        match event.view() {
            gst::EventView::StreamStart(e) => {
                // Each output pad gets a stream-start of its own; they share upstream's group.
                let group_id = e.group_id();
                self.with_streaming(|s| {
                    if let Some(id) = group_id {
                        s.group_id = id;
                    }
                });
                true
            }
            gst::EventView::Caps(c) => {
                let caps = c.caps_owned();
                self.with_streaming(|s| s.caps = Some(caps));
                true
            }
            gst::EventView::Segment(_) => {
                self.with_streaming(|s| s.segment = Some(event.clone()));
                self.forward(event)
            }
            gst::EventView::CustomDownstream(c) => match c.structure() {
                Some(s) if s.name() == meta::SERVER_EOS => {
                    self.server_ended(s.get::<u32>("port").ok());
                    true
                }
                _ => self.forward(event),
            },
            gst::EventView::FlushStop(_) => {
                self.flow().reset();
                self.with_streaming(|s| s.outputs.values_mut().for_each(|o| o.ended = false));
                self.forward(event)
            }
            gst::EventView::Eos(_) => self.end(event),
            _ => self.forward(event),
        }
    }

    /// Sends an event on every output pad; true when there are none or any took it.
    fn forward(&self, event: gst::Event) -> bool {
        let pads = self.output_pads();
        if pads.is_empty() {
            return true;
        }
        // Every pad gets the event, so no short-circuit.
        let taken: Vec<bool> = pads.iter().map(|p| p.push_event(event.clone())).collect();
        taken.contains(&true)
    }

    /// One server terminated: EOS on its pad only.
    fn server_ended(&self, port: Option<u32>) {
        let port = port.and_then(|p| u16::try_from(p).ok());
        let pad = port.and_then(|p| {
            self.with_streaming(|s| {
                s.outputs.get_mut(&p).map(|o| {
                    o.ended = true;
                    o.pad.clone()
                })
            })
            .flatten()
        });
        match pad {
            Some(pad) => {
                gst::info!(CAT, obj = pad, "server {port:?} terminated: EOS on its pad");
                pad.push_event(gst::event::Eos::new());
            }
            None => gst::debug!(CAT, imp = self, "termination of unknown server {port:?}"),
        }
    }

    /// Upstream ended: EOS everywhere. With no pad at all nothing downstream can end, so
    /// that is an error, as in other demuxers.
    fn end(&self, event: gst::Event) -> bool {
        let pads = self.output_pads();
        if pads.is_empty() {
            gst::element_imp_error!(
                self,
                gst::StreamError::Demux,
                ["The stream ended before any server sent a frame"]
            );
            return false;
        }
        for pad in &pads {
            pad.push_event(event.clone());
        }
        self.obj().no_more_pads();
        true
    }

    fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Caps(q) => {
                let caps = self.upstream_caps(pad, q.filter_owned().as_ref());
                q.set_result(&caps);
                true
            }
            // netgearsrc sends per-server EOS events only to those who ask.
            gst::QueryViewMut::Custom(q)
                if q.structure().is_some_and(|s| s.name() == meta::SERVER_EOS) =>
            {
                true
            }
            gst::QueryViewMut::AcceptCaps(q) => {
                // Each server's caps are checked by its own pad's peer when they are sent.
                let ok = q.caps().is_subset(&pad.pad_template_caps());
                q.set_result(ok);
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    /// What upstream may send: what every linked output's peer takes. Before any output
    /// is linked, raw video only, so netgearsrc decodes JPEG for `compositor` and friends.
    fn upstream_caps(&self, pad: &gst::Pad, filter: Option<&gst::Caps>) -> gst::Caps {
        let mut caps = pad.pad_template_caps();
        let linked: Vec<gst::Pad> = self
            .output_pads()
            .into_iter()
            .filter(|p| p.is_linked())
            .collect();
        if linked.is_empty() {
            caps = caps.intersect(&gst::Caps::new_empty_simple("video/x-raw"));
        }
        for out in &linked {
            caps = caps.intersect(&out.peer_query_caps(Some(&caps)));
        }
        match filter {
            Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        }
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            // A server's pad carries that server's caps, nothing else.
            gst::QueryViewMut::Caps(q) => {
                let caps = pad
                    .current_caps()
                    .unwrap_or_else(|| pad.pad_template_caps());
                let caps = match q.filter() {
                    Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
                    None => caps,
                };
                q.set_result(&caps);
                true
            }
            // Latency, position, scheduling…: upstream answers for every server alike.
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    /// Removes every output pad (back to READY).
    fn remove_outputs(&self) {
        let old = std::mem::take(&mut *self.state());
        self.flow().clear();
        if let State::Started(s) = old {
            for out in s.outputs.into_values() {
                let _ = out.pad.set_active(false);
                let _ = self.obj().remove_pad(&out.pad);
            }
        }
    }

    fn stats(&self) -> gst::Structure {
        let (routed, dropped, servers) = self
            .with_streaming(|s| (s.routed, s.dropped, s.outputs.len() as u64))
            .unwrap_or_default();
        gst::Structure::builder("netgeardemux-stats")
            .field("frames", routed)
            .field("dropped", dropped)
            .field("servers", servers)
            .build()
    }
}

#[glib::object_subclass]
impl ObjectSubclass for NetGearDemux {
    const NAME: &'static str = "GstNetGearDemux";
    type Type = super::NetGearDemux;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("sink").expect("sink pad template");
        let sinkpad = gst::Pad::builder_from_template(&templ)
            .chain_function(|_pad, parent, buffer| {
                NetGearDemux::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain(buffer),
                )
            })
            .event_function(|pad, parent, event| {
                NetGearDemux::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(pad, event),
                )
            })
            .query_function(|pad, parent, query| {
                NetGearDemux::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_query(pad, query),
                )
            })
            .build();
        NetGearDemux {
            sinkpad,
            state: Mutex::new(State::Stopped),
            flow: Mutex::new(gst_base::UniqueFlowCombiner::new()),
        }
    }
}

impl ObjectImpl for NetGearDemux {
    fn constructed(&self) {
        self.parent_constructed();
        self.obj()
            .add_pad(&self.sinkpad)
            .expect("adding the sink pad");
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                .nick("Statistics")
                .blurb("frames (routed), dropped (buffers without a server port), servers (pads)")
                .read_only()
                .build()]
        });
        PROPERTIES.as_ref()
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "stats" => self.stats().to_value(),
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }
}

impl GstObjectImpl for NetGearDemux {}

impl ElementImpl for NetGearDemux {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "NetGear multi-server demuxer",
                "Demuxer/Network",
                "Splits a multi-server netgearsrc stream into one pad per server (src_<port>), each with its own caps, segment and EOS",
                "gst-plugin-netgear developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let mut caps = gst::Caps::new_empty_simple("video/x-raw");
            caps.merge(gst::Caps::new_empty_simple("image/jpeg"));
            caps.merge(crate::formats::tensors::template_caps());
            let sink = gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &caps,
            )
            .expect("static pad template");
            let src = gst::PadTemplate::new(
                "src_%u",
                gst::PadDirection::Src,
                gst::PadPresence::Sometimes,
                &caps,
            )
            .expect("static pad template");
            vec![sink, src]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            *self.state() = State::Started(Streaming::default());
            self.flow().reset();
        }
        let ret = self.parent_change_state(transition)?;
        if transition == gst::StateChange::PausedToReady {
            self.remove_outputs();
        }
        Ok(ret)
    }
}
