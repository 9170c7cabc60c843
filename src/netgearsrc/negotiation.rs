// SPDX-License-Identifier: MPL-2.0
//! `netgearsrc`'s output negotiation: what the source pad carries, and what downstream
//! takes (JPEG as it is, which layout JPEG decodes to, which layout raw frames go out in,
//! whether it wants server EOS events). Each is asked once, and again after a reconfigure
//! (`reset`).

use super::timing::Timing;
use super::{NetGearSrc, CAT};
use crate::formats::{decoded_format, raw_format, reorderable, PLANAR_FORMATS, SEND_FORMATS};
use crate::frames::{DecodeTarget, FrameError, FrameReader, Output, OutputKey};
use crate::glue;
use crate::meta;
use gst::glib;
use gst::prelude::*;
use gst_base::prelude::*;
use gst_video::VideoFormat;
use netgear_protocol::jpeg::Colorspace;
use netgear_protocol::{self as protocol, Dtype, Incoming, PayloadKind, RawLayout};
use std::sync::Mutex;

#[derive(Default)]
pub struct Negotiation {
    /// What the source pad carries now.
    output: Option<Output>,
    /// Whether downstream takes image/jpeg.
    jpeg_passthrough: Option<bool>,
    /// The header colorspace JPEG last came in and what it decodes to for downstream.
    decode_choice: Option<(Colorspace, DecodeTarget)>,
    /// The format raw frames last came in and the packed format downstream gets them in.
    raw_choice: Option<(VideoFormat, VideoFormat)>,
    /// Whether downstream wants `meta::SERVER_EOS`s; asked at the first termination.
    server_eos_wanted: Option<bool>,
}

impl Negotiation {
    /// Downstream changed: everything is asked again, and the next frame sets its caps.
    pub fn reset(&mut self) {
        self.release_output();
        *self = Negotiation::default();
    }

    pub fn release_output(&mut self) {
        if let Some(old) = self.output.take() {
            old.release();
        }
    }

    /// The output a frame needs, given what downstream takes.
    pub fn output_key(
        &mut self,
        element: &NetGearSrc,
        reader: &mut FrameReader,
        kind: &PayloadKind,
        payload: &[u8],
    ) -> Result<OutputKey, FrameError> {
        let passthrough = matches!(kind, PayloadKind::Jpeg(_)) && self.jpeg_passthrough(element);
        Ok(match reader.output_key(kind, payload, passthrough)? {
            OutputKey::Decoded {
                target: DecodeTarget::Packed(colorspace),
                width,
                height,
            } => OutputKey::Decoded {
                target: self.decode_target(element, colorspace),
                width,
                height,
            },
            OutputKey::Raw(layout) => self.raw_target(element, layout),
            key => key,
        })
    }

    /// The pad's output for `key`, with new caps when the frame format changes; `timing`
    /// adds the frame rate to them.
    pub fn switch_output(
        &mut self,
        element: &NetGearSrc,
        timing: &Mutex<Option<Timing>>,
        key: OutputKey,
        max_frame_bytes: u64,
    ) -> Result<&Output, FrameError> {
        if self.output.as_ref().is_none_or(|o| o.key != key) {
            let output = Output::new(key, max_frame_bytes, true)?;
            gst::debug!(CAT, obj = element, "new caps {}", output.caps);
            let applied = set_output_caps(element, timing, &output.caps).is_ok();
            self.release_output();
            if !applied {
                return Err(FrameError::Refused(output.caps.to_string()));
            }
            self.output = Some(output);
        }
        self.output.as_ref().ok_or(FrameError::Buffer)
    }

    /// Whether a message is a JPEG frame that decodes into what the pad carries now.
    pub fn decodes_into_output(&self, reader: &mut FrameReader, parts: &[zmq::Message]) -> bool {
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
        }) = reader.output_key(&header.payload, payload, false)
        else {
            return false;
        };
        let chosen = match self.decode_choice {
            Some((from, chosen)) if from == colorspace => chosen,
            _ => return false,
        };
        let key = OutputKey::Decoded {
            target: chosen,
            width,
            height,
        };
        self.output.as_ref().is_some_and(|o| o.key == key)
    }

    /// Whether downstream wants `meta::SERVER_EOS`s: a custom event stops some consumers
    /// (e.g. `appsink`'s pull), so it goes only to those that answer the query of the same
    /// name (`netgeardemux`).
    pub fn server_eos_wanted(&mut self, pad: &gst::Pad) -> bool {
        *self.server_eos_wanted.get_or_insert_with(|| {
            let mut query = gst::query::Custom::new(gst::Structure::new_empty(meta::SERVER_EOS));
            pad.peer_query(&mut query)
        })
    }

    /// What a JPEG decodes into: the header's colorspace if downstream takes it, else the
    /// first packed layout libjpeg-turbo writes that downstream takes, else planar YUV
    /// (I420, Y42B, Y444), so nothing needs converting downstream. Asked once per header
    /// colorspace.
    fn decode_target(&mut self, element: &NetGearSrc, from: Colorspace) -> DecodeTarget {
        if let Some((header, chosen)) = self.decode_choice {
            if header == from {
                return chosen;
            }
        }
        let takes = downstream_takes(element);
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
            obj = element,
            "JPEG with colorspace {} decodes to {chosen:?}",
            from.name()
        );
        self.decode_choice = Some((from, chosen));
        chosen
    }

    /// Raw frames as they came if downstream takes their format, else rewritten into a
    /// packed layout downstream takes (3 and 4 channels). Asked once per format.
    fn raw_target(&mut self, element: &NetGearSrc, layout: RawLayout) -> OutputKey {
        let Some(format) = raw_format(&layout).filter(|_| layout.dtype == Dtype::U8) else {
            return OutputKey::Raw(layout);
        };
        let chosen = match self.raw_choice {
            Some((came, chosen)) if came == format => chosen,
            _ => {
                let takes = downstream_takes(element);
                let chosen = match takes(format) {
                    true => format,
                    false => reorderable(layout.channels)
                        .map(|f| f.video)
                        .find(|video| takes(*video))
                        .unwrap_or(format),
                };
                gst::info!(
                    CAT,
                    obj = element,
                    "raw {format:?} frames go out as {chosen:?}"
                );
                self.raw_choice = Some((format, chosen));
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

    /// Whether downstream takes JPEG as it is.
    fn jpeg_passthrough(&mut self, element: &NetGearSrc) -> bool {
        if let Some(decided) = self.jpeg_passthrough {
            return decided;
        }
        let jpeg = gst::Caps::builder("image/jpeg").build();
        let takes = element
            .src_pad()
            .peer_query_caps(Some(&jpeg))
            .can_intersect(&jpeg);
        let how = if takes {
            "pushed as image/jpeg"
        } else {
            "decoded to raw"
        };
        gst::info!(CAT, obj = element, "JPEG frames: {how}");
        self.jpeg_passthrough = Some(takes);
        takes
    }
}

/// Whether downstream takes a video format (asks its caps once per call).
fn downstream_takes(element: &NetGearSrc) -> impl Fn(VideoFormat) -> bool {
    let peer = element.src_pad().peer_query_caps(None);
    move |format| peer.can_intersect(&gst_video::VideoCapsBuilder::new().format(format).build())
}

/// Sets the caps a frame needs, with the frame rate; while the rate is measured they wait
/// for it (the held frames are pushed after them).
fn set_output_caps(
    element: &NetGearSrc,
    timing: &Mutex<Option<Timing>>,
    caps: &gst::Caps,
) -> Result<(), glib::BoolError> {
    let caps = match glue::lock(timing).as_mut() {
        Some(timing) => timing.caps_for(caps),
        None => Some(caps.clone()),
    };
    // A refused caps event is still stored and fails the next push, which would end the
    // stream: ask downstream first.
    match caps {
        Some(caps) if !element.src_pad().peer_query_accept_caps(&caps) => {
            Err(glib::bool_error!("downstream does not accept {caps}"))
        }
        Some(caps) => element.set_caps(&caps),
        None => Ok(()),
    }
}
