// SPDX-License-Identifier: MPL-2.0
//! What `netgearsrc` sends back with its replies (bidirectional / multi-client mode):
//! `return-data`, or the latest frame from the `return` request pad, which goes back with
//! every reply until a newer one arrives, as vidgear's `recv(return_data=frame)` does
//! (with `return-once`, with the next reply only).

use super::{NetGearSrc, CAT};
use crate::frames::{ReturnEncoder, ReturnJpeg, ReturnedFrame};
use crate::glue;
use crate::properties::JsonProperty;
use gst::glib;
use gst::prelude::*;
use netgear_protocol::JsonText;
use std::sync::{Arc, Mutex, MutexGuard};

const DEFAULT_RETURN_JPEG_QUALITY: u32 = 90;
const MIN_RETURN_JPEG_QUALITY: u32 = 10;
const MAX_RETURN_JPEG_QUALITY: u32 = 100;

/// The `return-*` properties; all may change while playing, so they are read per reply
/// and per returned frame.
#[derive(Debug)]
struct ReturnSettings {
    data: JsonProperty,
    once: bool,
    jpeg: ReturnJpeg,
}

impl Default for ReturnSettings {
    fn default() -> Self {
        ReturnSettings {
            data: JsonProperty::default(),
            once: false,
            jpeg: ReturnJpeg {
                enabled: false,
                quality: DEFAULT_RETURN_JPEG_QUALITY,
                fast_dct: true,
            },
        }
    }
}

/// The `return` pad and the frame it gave.
#[derive(Default)]
struct ReturnPad {
    pad: Option<gst::Pad>,
    /// Made from the pad's caps; `None` before caps, and while a buffer is being prepared.
    encoder: Option<ReturnEncoder>,
    /// Prepared once per buffer, shared by the replies that carry it.
    frame: Option<Arc<ReturnedFrame>>,
}

#[derive(Default)]
pub struct Returns {
    settings: Mutex<ReturnSettings>,
    /// Its own lock: the return pad's buffers come from another streaming thread.
    pad: Mutex<ReturnPad>,
}

/// `return-data`, returned with every reply in bidirectional / multi-client mode.
pub fn data_property() -> glib::ParamSpec {
    glib::ParamSpecString::builder("return-data")
        .nick("Return data")
        .blurb("Returned to the sender with every reply in bidirectional / multi-client mode: JSON if it parses, else a string; may change while playing")
        .mutable_playing()
        .build()
}

/// How frames from the `return` pad go back (vidgear's receiver with `return_data=frame`).
pub fn frame_properties() -> Vec<glib::ParamSpec> {
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

impl Returns {
    fn settings(&self) -> MutexGuard<'_, ReturnSettings> {
        glue::lock(&self.settings)
    }

    fn pad(&self) -> MutexGuard<'_, ReturnPad> {
        glue::lock(&self.pad)
    }

    /// Applies a property of `data_property()` or `frame_properties()`; `false` for any
    /// other.
    pub fn set_property(&self, value: &glib::Value, pspec: &glib::ParamSpec) -> bool {
        let defaults = ReturnSettings::default();
        let mut s = self.settings();
        match pspec.name() {
            "return-data" => s.data.set(value),
            "return-once" => s.once = value.get().unwrap_or(defaults.once),
            "return-jpeg" => s.jpeg.enabled = value.get().unwrap_or(defaults.jpeg.enabled),
            "return-jpeg-quality" => s.jpeg.quality = value.get().unwrap_or(defaults.jpeg.quality),
            "return-jpeg-fastdct" => {
                s.jpeg.fast_dct = value.get().unwrap_or(defaults.jpeg.fast_dct)
            }
            _ => return false,
        }
        true
    }

    pub fn property(&self, pspec: &glib::ParamSpec) -> Option<glib::Value> {
        let s = self.settings();
        Some(match pspec.name() {
            "return-data" => s.data.to_value(),
            "return-once" => s.once.to_value(),
            "return-jpeg" => s.jpeg.enabled.to_value(),
            "return-jpeg-quality" => s.jpeg.quality.to_value(),
            "return-jpeg-fastdct" => s.jpeg.fast_dct.to_value(),
            _ => return None,
        })
    }

    /// The frame this reply carries: the latest returned one, which stays for the next
    /// replies too unless `return-once` is set.
    pub fn frame_to_return(&self) -> Option<Arc<ReturnedFrame>> {
        let once = self.settings().once;
        let mut returns = self.pad();
        match once {
            true => returns.frame.take(),
            false => returns.frame.clone(),
        }
    }

    /// `return-data` as it is now: it may change while playing.
    pub fn data(&self) -> JsonText {
        self.settings().data.json().clone()
    }

    /// Adds the `return` pad `new_pad` makes, unless there is one.
    pub fn request_pad(
        &self,
        element: &NetGearSrc,
        new_pad: impl FnOnce() -> gst::Pad,
    ) -> Option<gst::Pad> {
        let mut returns = self.pad();
        if returns.pad.is_some() {
            gst::warning!(CAT, obj = element, "there is one return pad");
            return None;
        }
        let pad = new_pad();
        if element.current_state() > gst::State::Ready {
            let _ = pad.set_active(true);
        }
        element.add_pad(&pad).ok()?;
        returns.pad = Some(pad.clone());
        Some(pad)
    }

    /// Forgets the pad, its encoder and its frame.
    pub fn release_pad(&self) {
        *self.pad() = ReturnPad::default();
    }

    /// Prepares the buffer once (packed or JPEG-encoded) and keeps it as the frame the
    /// next replies carry. The encoder is taken out meanwhile, so replies are not held up.
    pub fn chain(
        &self,
        element: &NetGearSrc,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let jpeg = self.settings().jpeg;
        let mut encoder = self
            .pad()
            .encoder
            .take()
            .ok_or(gst::FlowError::NotNegotiated)?;
        if let Some(format) = encoder.cannot_compress(&jpeg) {
            gst::debug!(
                CAT,
                obj = element,
                "{format:?} cannot be JPEG: returned raw"
            );
        }
        let prepared = encoder.prepare(&buffer, &jpeg);
        let mut returns = self.pad();
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
                gst::element_error!(element, gst::StreamError::Format, ["Return frame: {}", e]);
                Err(gst::FlowError::Error)
            }
        }
    }

    pub fn event(&self, element: &NetGearSrc, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => match ReturnEncoder::new(c.caps()) {
                Ok(encoder) => {
                    self.pad().encoder = Some(encoder);
                    true
                }
                Err(e) => {
                    gst::warning!(CAT, obj = element, "return pad: {e}");
                    self.pad().encoder = None;
                    false
                }
            },
            gst::EventView::FlushStart(_) => {
                self.pad().frame = None;
                true
            }
            // The return branch ending does not end the stream of frames we receive; its
            // last frame keeps going back, as vidgear's return_data stays until replaced.
            gst::EventView::Eos(_)
            | gst::EventView::Segment(_)
            | gst::EventView::StreamStart(_) => true,
            _ => gst::Pad::event_default(pad, Some(element), event),
        }
    }
}
