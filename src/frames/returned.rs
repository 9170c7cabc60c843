// SPDX-License-Identifier: MPL-2.0
//! Frames a receiver sends back with its replies (`netgearsrc`'s `return` pad, vidgear's
//! `recv(return_data=frame)`): each buffer is prepared once, raw (byte for byte) or
//! JPEG-compressed, and the result is kept so any number of replies can carry it.

use super::{FrameError, FrameWriter, Input, JpegSettings, Payload, Uncompressible};
use crate::transport::SharedBytes;
use netgear_protocol::PayloadKind;
use std::sync::Arc;

/// How returned frames are encoded (the source's `return-jpeg*` properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReturnJpeg {
    /// Compress raw frames, as vidgear's receiver does when its `jpeg_compression` is on.
    pub enabled: bool,
    pub quality: u32,
    pub fast_dct: bool,
}

impl ReturnJpeg {
    fn settings(&self) -> JpegSettings {
        JpegSettings {
            quality: self.quality,
            fast_dct: self.fast_dct,
            // Only a hint for the decoder; vidgear's receiver sends its own, off by default.
            fast_upsample: false,
            // The layout encoded from (image/jpeg input: BGR).
            colorspace: String::new(),
        }
    }
}

/// A frame ready to go back: what the reply header says about it, and its bytes.
pub struct ReturnedFrame {
    pub kind: PayloadKind,
    pub bytes: SharedBytes,
}

impl ReturnedFrame {
    pub fn bytes(&self) -> &[u8] {
        (*self.bytes).as_ref()
    }
}

/// Turns the `return` pad's buffers into returned frames, for the pad's current caps.
pub struct ReturnEncoder {
    caps: gst::Caps,
    /// The input for `caps`, built for `jpeg` (compressing or not).
    input: Input,
    jpeg: bool,
    writer: FrameWriter,
}

impl ReturnEncoder {
    /// An encoder for buffers of `caps`; fails for caps a frame cannot be made of.
    pub fn new(caps: &gst::CapsRef) -> Result<ReturnEncoder, FrameError> {
        Ok(ReturnEncoder {
            caps: caps.to_owned(),
            input: Input::from_caps(caps, false)?,
            jpeg: false,
            writer: FrameWriter::default(),
        })
    }

    /// A raw input that cannot be JPEG (GRAY16_LE, tensors) while compression is asked for.
    pub fn cannot_compress(&self, jpeg: &ReturnJpeg) -> Option<Uncompressible> {
        self.input.cannot_compress(jpeg.enabled)
    }

    /// Prepares one buffer: tight raw rows are kept as they are (no copy), other raw
    /// frames are packed into OpenCV's layout, or encoded once when `jpeg` is on.
    pub fn prepare(
        &mut self,
        buffer: &gst::Buffer,
        jpeg: &ReturnJpeg,
    ) -> Result<ReturnedFrame, FrameError> {
        if jpeg.enabled != self.jpeg {
            self.input = Input::from_caps(&self.caps, jpeg.enabled)?;
            self.jpeg = jpeg.enabled;
        }
        let (kind, payload) = self.writer.write(buffer, &self.input, &jpeg.settings())?;
        let bytes: SharedBytes = match payload {
            Payload::Lent(bytes) => bytes,
            // The scratch is reused for the next frame: the kept frame needs its own copy.
            Payload::Scratch => Arc::new(self.writer.scratch().to_vec()),
        };
        Ok(ReturnedFrame { kind, bytes })
    }
}
