// SPDX-License-Identifier: MPL-2.0
//! GStreamer buffers into payloads to send: raw rows packed tight in OpenCV's channel order
//! (or lent to ZeroMQ as they are when already tight), or JPEG-encoded; camera formats
//! through [`super::yuv`].

use super::jpeg_jobs::{EncodeJob, JobImage};
use super::yuv::{self, YuvInput, YuvWriter};
use super::FrameError;
use crate::formats::{send_format, tensors, SendFormat, CAMERA_FORMATS};
use crate::transport::SharedBytes;
use gst_video::prelude::*;
use netgear_protocol::jpeg::{Colorspace, EncodeParams, Encoder, Image};
use netgear_protocol::{pixels, Compression, PayloadKind, RawLayout};
use std::ops::Range;
use std::sync::Arc;

/// What the negotiated caps say about each buffer.
#[derive(Debug, Clone)]
pub enum Input {
    Raw(Box<RawInput>),
    /// A camera format (YUY2, NV12, …): JPEG from its planes, or raw as BGR.
    Yuv(Box<YuvInput>),
    Jpeg,
    /// `other/tensors`: the buffer is the packed array, sent as it is.
    Tensor(RawLayout),
}

/// A raw input JPEG cannot carry (GRAY16_LE, tensors), named for the warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncompressible(String);

impl Uncompressible {
    pub fn to_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone)]
pub struct RawInput {
    info: gst_video::VideoInfo,
    format: SendFormat,
    layout: RawLayout,
    /// Encode to JPEG from this layout (jpeg-compression=true and a JPEG-able format).
    jpeg: Option<Colorspace>,
}

impl RawInput {
    fn new(info: gst_video::VideoInfo, jpeg_compression: bool) -> Result<RawInput, FrameError> {
        let format = *send_format(info.format())
            .ok_or_else(|| FrameError::Unsupported(info.format().to_str().to_string()))?;
        let layout = RawLayout::new(
            format.dtype,
            info.height() as usize,
            info.width() as usize,
            format.channels,
        );
        let jpeg = match jpeg_compression {
            true => format.jpeg_colorspace.and_then(Colorspace::from_name),
            false => None,
        };
        Ok(RawInput {
            info,
            format,
            layout,
            jpeg,
        })
    }

    /// Maps the buffer's first plane: its bytes and row stride.
    fn plane<'a>(
        &self,
        buffer: &'a gst::BufferRef,
    ) -> Result<gst_video::VideoFrameRef<&'a gst::BufferRef>, FrameError> {
        gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &self.info)
            .map_err(|_| FrameError::Buffer)
    }
}

fn plane_stride(frame: &gst_video::VideoFrameRef<&gst::BufferRef>) -> Result<usize, FrameError> {
    usize::try_from(frame.plane_stride()[0]).map_err(|_| FrameError::Buffer)
}

impl Input {
    /// The input for `caps`; with `jpeg_compression`, raw frames are encoded where the
    /// format allows (see `cannot_compress`).
    pub fn from_caps(caps: &gst::CapsRef, jpeg_compression: bool) -> Result<Input, FrameError> {
        let unsupported = || FrameError::Unsupported(caps.to_string());
        let s = caps.structure(0).ok_or_else(unsupported)?;
        if s.name() == "image/jpeg" {
            return Ok(Input::Jpeg);
        }
        if s.name() == tensors::MEDIA_TYPE {
            return Ok(Input::Tensor(tensors::layout_from_caps(s)?));
        }
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|_| unsupported())?;
        if CAMERA_FORMATS.contains(&info.format()) {
            return Ok(Input::Yuv(Box::new(YuvInput::new(info, jpeg_compression)?)));
        }
        Ok(Input::Raw(Box::new(RawInput::new(info, jpeg_compression)?)))
    }

    /// JPEG was asked for but the input has none (GRAY16, tensors): frames go raw.
    pub fn cannot_compress(&self, jpeg_compression: bool) -> Option<Uncompressible> {
        match self {
            Input::Raw(raw) if jpeg_compression && raw.format.jpeg_colorspace.is_none() => {
                Some(Uncompressible(raw.info.format().to_str().to_string()))
            }
            Input::Tensor(layout) if jpeg_compression => Some(Uncompressible(format!(
                "{} ({})",
                tensors::MEDIA_TYPE,
                layout.dtype.name()
            ))),
            _ => None,
        }
    }
}

/// The JPEG properties read for each frame (they may change while playing).
#[derive(Debug, Clone)]
pub struct JpegSettings {
    pub quality: u32,
    pub fast_dct: bool,
    pub fast_upsample: bool,
    /// The colorspace announced to the receiver; empty: BGR for colour frames, GRAY for
    /// gray ones.
    pub colorspace: String,
}

/// The `jpeg-colorspace` values a vidgear receiver can decode our JPEGs to: simplejpeg's
/// `decode_jpeg` names (vidgear 0.3.6, simplejpeg 1.9) without CMYK, which only decodes
/// CMYK JPEGs (neither our encoder nor `jpegenc` makes them) and otherwise raises in
/// vidgear's receive thread.
pub const RECEIVER_COLORSPACES: &[&str] = &[
    "BGR", "RGB", "BGRX", "RGBX", "XBGR", "XRGB", "BGRA", "RGBA", "ABGR", "ARGB", "GRAY",
];

/// A `jpeg-colorspace` the receiver cannot decode to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "jpeg-colorspace=\"{0}\" is not a colorspace vidgear decodes to: use one of {list}, \
     or leave it empty for BGR (GRAY for gray input)",
    list = RECEIVER_COLORSPACES.join(", ")
)]
pub struct ColorspaceError(pub String);

impl JpegSettings {
    fn params(&self) -> EncodeParams {
        EncodeParams {
            quality: self.quality,
            fast_dct: self.fast_dct,
        }
    }

    /// Refuses a `jpeg-colorspace` that would make vidgear's decoder raise.
    pub fn check_colorspace(&self) -> Result<(), ColorspaceError> {
        let known = self.colorspace.is_empty()
            || RECEIVER_COLORSPACES
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&self.colorspace));
        match known {
            true => Ok(()),
            false => Err(ColorspaceError(self.colorspace.clone())),
        }
    }

    /// The header's compression fields. The receiver decodes into the colorspace named
    /// here whatever layout the JPEG was encoded from (JPEG keeps no layout and no alpha),
    /// so colour frames are announced as BGR, what vidgear users (OpenCV) expect.
    fn compression(&self, encoded_from: Option<Colorspace>) -> Compression {
        let colorspace = match (self.colorspace.is_empty(), encoded_from) {
            (false, _) => self.colorspace.to_ascii_uppercase(),
            (true, Some(cs)) if cs.is_gray() => "GRAY".to_owned(),
            (true, _) => "BGR".to_owned(),
        };
        Compression {
            dct: self.fast_dct,
            ups: self.fast_upsample,
            colorspace,
        }
    }
}

/// Where a prepared payload is: lent from the buffer, or in the writer's scratch.
pub enum Payload {
    Lent(SharedBytes),
    Scratch,
}

/// Turns buffers into payloads; holds the scratch space and the JPEG encoder across frames.
#[derive(Default)]
pub struct FrameWriter {
    /// Reused for packed rows or encoded JPEG, so frames do not allocate.
    scratch: Vec<u8>,
    encoder: Option<Encoder>,
    yuv: YuvWriter,
}

fn encoder(slot: &mut Option<Encoder>) -> Result<&mut Encoder, FrameError> {
    match slot {
        Some(e) => Ok(e),
        slot => Ok(slot.insert(Encoder::new().map_err(FrameError::Encode)?)),
    }
}

impl FrameWriter {
    /// The bytes of the last `Payload::Scratch`.
    pub fn scratch(&self) -> &[u8] {
        &self.scratch
    }

    /// Takes the bytes of the last `Payload::Scratch`, so they can travel with a job to
    /// another thread (the next frame allocates anew).
    pub fn take_scratch(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.scratch)
    }

    /// Prepares one buffer: raw frames whose rows are already tight go out of the buffer's
    /// own memory; others are packed and reordered (or JPEG-encoded) into the scratch.
    pub fn write(
        &mut self,
        buffer: &gst::Buffer,
        input: &Input,
        jpeg: &JpegSettings,
    ) -> Result<(PayloadKind, Payload), FrameError> {
        let raw = match input {
            Input::Jpeg => {
                let kind = PayloadKind::Jpeg(jpeg.compression(None));
                return Ok((kind, Payload::Lent(lend(buffer, None)?)));
            }
            Input::Raw(raw) => raw,
            Input::Yuv(yuv) => return self.write_yuv(buffer, yuv, jpeg),
            Input::Tensor(layout) => {
                let bytes = lend_exactly(buffer, layout.frame_bytes())?;
                return Ok((PayloadKind::Raw(*layout), Payload::Lent(bytes)));
            }
        };
        if let Some(range) = tight_range(buffer, raw) {
            return Ok((
                PayloadKind::Raw(raw.layout),
                Payload::Lent(lend(buffer, Some(range))?),
            ));
        }
        let frame = raw.plane(buffer.as_ref())?;
        let stride = plane_stride(&frame)?;
        let data = frame.plane_data(0).map_err(|_| FrameError::Buffer)?;
        match raw.jpeg {
            Some(colorspace) => {
                self.encode(data, stride, &raw.layout, colorspace, jpeg)?;
                let kind = PayloadKind::Jpeg(jpeg.compression(Some(colorspace)));
                Ok((kind, Payload::Scratch))
            }
            None => {
                pack(data, stride, raw, &mut self.scratch)?;
                Ok((PayloadKind::Raw(raw.layout), Payload::Scratch))
            }
        }
    }

    fn encode(
        &mut self,
        pixels: &[u8],
        pitch: usize,
        layout: &RawLayout,
        colorspace: Colorspace,
        jpeg: &JpegSettings,
    ) -> Result<(), FrameError> {
        let image = Image {
            pixels,
            width: layout.width,
            height: layout.height,
            pitch,
            colorspace,
        };
        encoder(&mut self.encoder)?
            .encode(image, jpeg.params(), &mut self.scratch)
            .map_err(FrameError::Encode)
    }

    /// A camera frame: JPEG from its planes into the scratch, or BGR in a buffer of its
    /// own (lent to ZeroMQ).
    fn write_yuv(
        &mut self,
        buffer: &gst::Buffer,
        input: &YuvInput,
        jpeg: &JpegSettings,
    ) -> Result<(PayloadKind, Payload), FrameError> {
        if !input.jpeg() {
            let bgr = self.yuv.convert_to_bgr(buffer, input)?;
            let kind = PayloadKind::Raw(input.bgr_layout());
            return Ok((kind, Payload::Lent(lend(&bgr, None)?)));
        }
        let encoder = encoder(&mut self.encoder)?;
        self.yuv
            .encode(buffer, input, encoder, jpeg.params(), &mut self.scratch)?;
        Ok((PayloadKind::Jpeg(jpeg.compression(None)), Payload::Scratch))
    }
}

/// For a parallel encoder: the job that encodes `buffer` to JPEG (its mapped plane
/// travels with the job, no copy) and the payload kind to announce; `None` when the
/// frame is not JPEG-encoded (`image/jpeg` input, raw frames sent raw).
pub fn encode_job(
    buffer: &gst::Buffer,
    input: &Input,
    jpeg: &JpegSettings,
) -> Result<Option<(PayloadKind, EncodeJob)>, FrameError> {
    let (image, encoded_from) = match input {
        Input::Raw(raw) => match raw.jpeg {
            Some(colorspace) => (packed_image(buffer, raw, colorspace)?, Some(colorspace)),
            None => return Ok(None),
        },
        Input::Yuv(yuv) if yuv.jpeg() => (JobImage::Yuv(yuv::lend_planes(buffer, yuv)?), None),
        _ => return Ok(None),
    };
    let job = EncodeJob {
        image,
        params: jpeg.params(),
    };
    Ok(Some((
        PayloadKind::Jpeg(jpeg.compression(encoded_from)),
        job,
    )))
}

/// A packed frame's first plane, mapped for an encoder thread.
fn packed_image(
    buffer: &gst::Buffer,
    raw: &RawInput,
    colorspace: Colorspace,
) -> Result<JobImage, FrameError> {
    let frame = gst_video::VideoFrame::from_buffer_readable(buffer.clone(), &raw.info)
        .map_err(|_| FrameError::Buffer)?;
    let pitch = usize::try_from(frame.plane_stride()[0]).map_err(|_| FrameError::Buffer)?;
    frame.plane_data(0).map_err(|_| FrameError::Buffer)?;
    Ok(JobImage::Packed {
        pixels: Arc::new(PlaneBytes(frame)),
        width: raw.layout.width,
        height: raw.layout.height,
        pitch,
        colorspace,
    })
}

/// The first plane of a mapped video frame, lent to an encoder thread.
struct PlaneBytes(gst_video::VideoFrame<gst_video::video_frame::Readable>);

impl AsRef<[u8]> for PlaneBytes {
    fn as_ref(&self) -> &[u8] {
        // Checked to map when the job was made.
        self.0.plane_data(0).unwrap_or(&[])
    }
}

/// The bytes of a raw frame that can be sent as they are: tight rows, OpenCV's order. A
/// `VideoMeta` (e.g. from `rawvideoparse`) gives the buffer's own stride and offset.
fn tight_range(buffer: &gst::Buffer, raw: &RawInput) -> Option<Range<usize>> {
    if raw.jpeg.is_some() || !raw.format.pixels.is_identity() {
        return None;
    }
    let (stride, offset) = match buffer.meta::<gst_video::VideoMeta>() {
        Some(meta) => (*meta.stride().first()?, *meta.offset().first()?),
        None => (raw.info.stride()[0], raw.info.offset()[0]),
    };
    let start = offset;
    (usize::try_from(stride).ok()? == raw.layout.row_bytes())
        .then(|| start..start + raw.layout.frame_bytes())
}

fn pack(data: &[u8], stride: usize, raw: &RawInput, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let layout = &raw.layout;
    out.resize(layout.frame_bytes(), 0);
    pixels::pack_pixels(
        data,
        stride,
        layout.width,
        layout.height,
        raw.format.pixels,
        out,
    )
    .ok_or(FrameError::TooSmall {
        have: data.len(),
        needs: raw.info.size(),
    })
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

/// Lends a whole buffer that must hold exactly `size` bytes (a packed tensor).
fn lend_exactly(buffer: &gst::Buffer, size: usize) -> Result<SharedBytes, FrameError> {
    if buffer.size() != size {
        return Err(FrameError::WrongSize {
            have: buffer.size(),
            needs: size,
        });
    }
    lend(buffer, None)
}

/// Lends (part of) a buffer's memory to ZeroMQ without a copy.
fn lend(buffer: &gst::Buffer, range: Option<Range<usize>>) -> Result<SharedBytes, FrameError> {
    let map = buffer
        .clone()
        .into_mapped_buffer_readable()
        .map_err(|_| FrameError::Buffer)?;
    let range = range.unwrap_or(0..map.len());
    if range.end > map.len() {
        return Err(FrameError::TooSmall {
            have: map.len(),
            needs: range.end,
        });
    }
    Ok(Arc::new(BufferBytes { map, range }))
}
