// SPDX-License-Identifier: MPL-2.0
//! Received payloads into GStreamer buffers: the output format a frame needs, its caps and
//! pool, and the buffer itself (the message without a copy where rows need no padding).

use super::jpeg_jobs::FrameDecode;
use super::{check_decoded_size, video_info, FrameError};
use crate::formats::{decoded_format, planar_format, raw_format, send_format, tensors};
use gst::prelude::*;
use gst_video::VideoFormat;
use netgear_protocol::jpeg::{Colorspace, DecodeParams, Decoder, JpegInfo, PlaneMut, Subsampling};
use netgear_protocol::{self as protocol, pixels, Compression, PayloadKind, RawLayout};

/// What a JPEG decodes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeTarget {
    /// A packed layout libjpeg-turbo writes (by default the header's colorspace).
    Packed(Colorspace),
    /// Planar YUV (I420, Y42B or Y444), without libjpeg-turbo's colour conversion.
    Planar(Subsampling),
}

/// What a pad carries; a frame that needs another key renegotiates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKey {
    /// Raw frames as the wire carries them.
    Raw(RawLayout),
    /// Raw 3- or 4-channel frames rewritten into another packed layout downstream asked for.
    Reordered {
        layout: RawLayout,
        format: VideoFormat,
    },
    /// JPEG frames pushed untouched.
    Jpeg { width: usize, height: usize },
    /// JPEG frames decoded (to the header's colorspace unless downstream asks otherwise).
    Decoded {
        target: DecodeTarget,
        width: usize,
        height: usize,
    },
}

/// Caps and buffers for one output key.
#[derive(Debug, Clone)]
pub struct Output {
    pub key: OutputKey,
    pub caps: gst::Caps,
    /// Raw video layout (not for JPEG pass-through).
    info: Option<gst_video::VideoInfo>,
    /// Buffers for decoded or re-padded frames, reused across frames.
    pool: Option<gst::BufferPool>,
    /// Raw rows are as long as GStreamer's: the message itself becomes the buffer.
    tight: bool,
}

/// Lets a ZeroMQ message become a GStreamer buffer without a copy.
pub(super) struct WireBytes(zmq::Message);

// SAFETY: a zmq message owns its bytes (or a reference count on them); libzmq forbids
// sharing a socket between threads, not moving a message. The buffer only reads it.
unsafe impl Send for WireBytes {}

impl AsRef<[u8]> for WireBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Output {
    /// The caps (and, with `pooled`, a buffer pool) for `key`, refusing frames over `limit`.
    pub fn new(key: OutputKey, limit: u64, pooled: bool) -> Result<Output, FrameError> {
        let raw = match &key {
            OutputKey::Raw(layout) => match raw_format(layout) {
                Some(format) => (format, layout.width, layout.height),
                None => return Self::tensor(key.clone(), layout, limit),
            },
            OutputKey::Reordered { layout, format } => (*format, layout.width, layout.height),
            OutputKey::Decoded {
                target,
                width,
                height,
            } => {
                let format = match target {
                    DecodeTarget::Packed(colorspace) => decoded_format(colorspace.name()).1,
                    DecodeTarget::Planar(subsampling) => planar_format(*subsampling),
                };
                (format, *width, *height)
            }
            OutputKey::Jpeg { width, height } => return Self::jpeg(key.clone(), *width, *height),
        };
        let info = video_info(raw.0, raw.1, raw.2)?;
        check_decoded_size(&info, limit)?;
        let caps = info.to_caps().map_err(|_| FrameError::Buffer)?;
        let tight = match &key {
            OutputKey::Raw(layout) => {
                usize::try_from(info.stride()[0]).ok() == Some(layout.row_bytes())
                    && info.size() == layout.frame_bytes()
            }
            _ => false,
        };
        let pool = match pooled && !tight {
            true => Some(new_pool(&caps, info.size())?),
            false => None,
        };
        Ok(Output {
            key,
            caps,
            info: Some(info),
            pool,
            tight,
        })
    }

    /// An array no video format carries: its bytes go out as they came (never padded).
    fn tensor(key: OutputKey, layout: &RawLayout, limit: u64) -> Result<Output, FrameError> {
        let needs = layout.frame_bytes();
        if needs as u64 > limit {
            return Err(FrameError::OverLimit {
                width: u32::try_from(layout.width).unwrap_or(u32::MAX),
                height: u32::try_from(layout.height).unwrap_or(u32::MAX),
                needs,
                limit,
            });
        }
        Ok(Output {
            caps: tensors::caps(layout),
            key,
            info: None,
            pool: None,
            tight: true,
        })
    }

    fn jpeg(key: OutputKey, width: usize, height: usize) -> Result<Output, FrameError> {
        let dimension =
            |v: usize| i32::try_from(v).map_err(|_| FrameError::TooLarge { width, height });
        let caps = gst::Caps::builder("image/jpeg")
            .field("width", dimension(width)?)
            .field("height", dimension(height)?)
            .field("framerate", gst::Fraction::new(0, 1))
            .build();
        Ok(Output {
            key,
            caps,
            info: None,
            pool: None,
            tight: false,
        })
    }

    /// Lets the pool's buffers go (a pool outlives its output only while buffers are out).
    pub fn release(&self) {
        if let Some(pool) = &self.pool {
            let _ = pool.set_active(false);
        }
    }

    /// A buffer for the output's raw layout, and its row stride.
    pub(super) fn acquire(&self) -> Result<(gst::Buffer, usize), FrameError> {
        let info = self.info.as_ref().ok_or(FrameError::Buffer)?;
        let stride = usize::try_from(info.stride()[0]).map_err(|_| FrameError::Buffer)?;
        let buffer = match &self.pool {
            Some(pool) => pool.acquire_buffer(None).map_err(|_| FrameError::Buffer)?,
            None => gst::Buffer::with_size(info.size()).map_err(|_| FrameError::Buffer)?,
        };
        Ok((buffer, stride))
    }
}

pub(super) fn new_pool(caps: &gst::Caps, size: usize) -> Result<gst::BufferPool, FrameError> {
    let pool = gst::BufferPool::new();
    let mut config = pool.config();
    let size = u32::try_from(size).map_err(|_| FrameError::Buffer)?;
    config.set_params(Some(caps), size, 2, 0);
    pool.set_config(config).map_err(|_| FrameError::Buffer)?;
    pool.set_active(true).map_err(|_| FrameError::Buffer)?;
    Ok(pool)
}

/// Turns received payloads into buffers; holds the JPEG decoder across frames.
#[derive(Default)]
pub struct FrameReader {
    decoder: Option<Decoder>,
}

impl FrameReader {
    fn decoder(&mut self) -> Result<&mut Decoder, FrameError> {
        match &mut self.decoder {
            Some(d) => Ok(d),
            slot => Ok(slot.insert(Decoder::new().map_err(FrameError::Jpeg)?)),
        }
    }

    /// The output a frame needs: raw as sent, JPEG passed through, or JPEG decoded.
    pub fn output_key(
        &mut self,
        kind: &PayloadKind,
        payload: &[u8],
        jpeg_passthrough: bool,
    ) -> Result<OutputKey, FrameError> {
        let compression = match kind {
            PayloadKind::Raw(layout) => {
                protocol::check_raw_payload(layout, payload.len())?;
                return Ok(OutputKey::Raw(*layout));
            }
            PayloadKind::Jpeg(compression) => compression,
        };
        let JpegInfo { width, height } = self.decoder()?.info(payload).map_err(FrameError::Jpeg)?;
        if width > protocol::MAX_DIMENSION || height > protocol::MAX_DIMENSION {
            let shape = format!("JPEG of {width}x{height}");
            return Err(protocol::ProtocolError::BadShape(shape).into());
        }
        Ok(match jpeg_passthrough {
            true => OutputKey::Jpeg { width, height },
            false => OutputKey::Decoded {
                target: DecodeTarget::Packed(decoded_format(&compression.colorspace).0),
                width,
                height,
            },
        })
    }

    /// The buffer of a frame whose output (from `output_key`) is `output`.
    pub fn fill(
        &mut self,
        output: &Output,
        kind: &PayloadKind,
        payload: zmq::Message,
    ) -> Result<gst::Buffer, FrameError> {
        match (&output.key, kind) {
            (OutputKey::Jpeg { .. }, _) => Ok(gst::Buffer::from_slice(WireBytes(payload))),
            (OutputKey::Raw(_), _) if output.tight => {
                Ok(gst::Buffer::from_slice(WireBytes(payload)))
            }
            (OutputKey::Raw(layout), _) => repad(output, layout, &payload),
            (OutputKey::Reordered { layout, format }, _) => {
                reorder(output, layout, *format, &payload)
            }
            (
                &OutputKey::Decoded {
                    target,
                    width,
                    height,
                },
                PayloadKind::Jpeg(compression),
            ) => {
                let info = JpegInfo { width, height };
                self.decode(output, (target, info), compression, &payload)
            }
            (OutputKey::Decoded { .. }, PayloadKind::Raw(_)) => Err(FrameError::Buffer),
        }
    }

    fn decode(
        &mut self,
        output: &Output,
        (target, info): (DecodeTarget, JpegInfo),
        compression: &Compression,
        payload: &[u8],
    ) -> Result<gst::Buffer, FrameError> {
        let (mut buffer, _) = output.acquire()?;
        let video = output.info.as_ref().ok_or(FrameError::Buffer)?;
        let decoder = self.decoder()?;
        let params = params_of(compression);
        decode_into(decoder, &mut buffer, video, (target, info), params, payload)?;
        Ok(buffer)
    }

    /// A frame to decode on another thread (see `jpeg_jobs`); the payload comes back
    /// when the frame is no JPEG to decode (raw, passed through).
    pub fn prepare_decode(
        &mut self,
        output: &Output,
        kind: &PayloadKind,
        payload: zmq::Message,
    ) -> Result<Result<FrameDecode, zmq::Message>, FrameError> {
        let (
            &OutputKey::Decoded {
                target,
                width,
                height,
            },
            PayloadKind::Jpeg(compression),
        ) = (&output.key, kind)
        else {
            return Ok(Err(payload));
        };
        let (buffer, _) = output.acquire()?;
        Ok(Ok(FrameDecode {
            buffer,
            video: output.info.clone().ok_or(FrameError::Buffer)?,
            target,
            info: JpegInfo { width, height },
            params: params_of(compression),
            jpeg: WireBytes(payload),
        }))
    }

    /// A frame that came with a reply (vidgear's ndarray return) as a sample.
    pub fn sample(
        &mut self,
        kind: &PayloadKind,
        payload: zmq::Message,
        limit: u64,
    ) -> Result<gst::Sample, FrameError> {
        let key = self.output_key(kind, &payload, false)?;
        let output = Output::new(key, limit, false)?;
        let buffer = self.fill(&output, kind, payload)?;
        Ok(gst::Sample::builder()
            .buffer(&buffer)
            .caps(&output.caps)
            .build())
    }
}

pub(super) fn params_of(compression: &Compression) -> DecodeParams {
    DecodeParams {
        fast_dct: compression.dct,
        fast_upsample: compression.ups,
    }
}

/// Decodes a JPEG into a writable buffer laid out as `video` says.
pub(super) fn decode_into(
    decoder: &mut Decoder,
    buffer: &mut gst::Buffer,
    video: &gst_video::VideoInfo,
    (target, info): (DecodeTarget, JpegInfo),
    params: DecodeParams,
    jpeg: &[u8],
) -> Result<(), FrameError> {
    let stride = video
        .stride()
        .first()
        .and_then(|s| usize::try_from(*s).ok())
        .ok_or(FrameError::Buffer)?;
    let buffer = buffer.get_mut().ok_or(FrameError::Buffer)?;
    let mut map = buffer.map_writable().map_err(|_| FrameError::Buffer)?;
    let decoded = match target {
        DecodeTarget::Packed(colorspace) => {
            decoder.decode(jpeg, info, colorspace, stride, params, &mut map)
        }
        DecodeTarget::Planar(subsampling) => {
            let planes = planes_of(video, &mut map)?;
            decoder.decode_planar(jpeg, info, subsampling, params, planes)
        }
    };
    decoded.map_err(FrameError::Jpeg)
}

/// The Y, U and V planes of a planar buffer laid out as `info` says.
fn planes_of<'a>(
    info: &gst_video::VideoInfo,
    bytes: &'a mut [u8],
) -> Result<[PlaneMut<'a>; 3], FrameError> {
    let (offsets, strides) = (info.offset(), info.stride());
    let stride = |i: usize| {
        strides
            .get(i)
            .and_then(|s| usize::try_from(*s).ok())
            .ok_or(FrameError::Buffer)
    };
    let (&[y, u, v], true) = (offsets, offsets.len() == 3) else {
        return Err(FrameError::Buffer);
    };
    if !(y <= u && u <= v && v <= bytes.len()) {
        return Err(FrameError::Buffer);
    }
    let (head, v_plane) = bytes.split_at_mut(v);
    let (head, u_plane) = head.split_at_mut(u);
    let y_plane = head.get_mut(y..).ok_or(FrameError::Buffer)?;
    Ok([
        PlaneMut {
            bytes: y_plane,
            stride: stride(0)?,
        },
        PlaneMut {
            bytes: u_plane,
            stride: stride(1)?,
        },
        PlaneMut {
            bytes: v_plane,
            stride: stride(2)?,
        },
    ])
}

/// Rewrites 3- or 4-channel OpenCV pixels (BGR, BGRA) into `format`'s packed layout; bytes
/// the frame has no channel for (padding, alpha) are 255.
fn reorder(
    output: &Output,
    layout: &RawLayout,
    format: VideoFormat,
    payload: &[u8],
) -> Result<gst::Buffer, FrameError> {
    let target = send_format(format).ok_or(FrameError::Buffer)?;
    let (in_px, out_px) = (layout.channels, target.pixels.in_bytes);
    let shared = target.pixels.picks.len().min(in_px);
    let (mut buffer, stride) = output.acquire()?;
    {
        let buffer = buffer.get_mut().ok_or(FrameError::Buffer)?;
        let mut map = buffer.map_writable().map_err(|_| FrameError::Buffer)?;
        let row_in = layout.row_bytes();
        for y in 0..layout.height {
            let src = payload.get(y * row_in..(y + 1) * row_in);
            let dst = map.get_mut(y * stride..y * stride + layout.width * out_px);
            let (Some(src), Some(dst)) = (src, dst) else {
                return Err(FrameError::Buffer);
            };
            for (from, to) in src.chunks_exact(in_px).zip(dst.chunks_exact_mut(out_px)) {
                to.fill(255);
                for (channel, &at) in target.pixels.picks.iter().enumerate().take(shared) {
                    if let (Some(t), Some(f)) = (to.get_mut(at), from.get(channel)) {
                        *t = *f;
                    }
                }
            }
        }
    }
    Ok(buffer)
}

/// Copies packed rows into a buffer whose rows GStreamer pads.
fn repad(output: &Output, layout: &RawLayout, payload: &[u8]) -> Result<gst::Buffer, FrameError> {
    let (mut buffer, stride) = output.acquire()?;
    {
        let buffer = buffer.get_mut().ok_or(FrameError::Buffer)?;
        let mut map = buffer.map_writable().map_err(|_| FrameError::Buffer)?;
        let row = layout.row_bytes();
        pixels::copy_rows(payload, row, &mut map, stride, row, layout.height)
            .ok_or(FrameError::Buffer)?;
    }
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netgear_protocol::Dtype;

    #[test]
    fn tensors_get_their_caps_and_are_bounded_by_the_limit() {
        gst::init().unwrap();
        let flow = RawLayout::from_dims(Dtype::F32, &[480, 640, 2]).unwrap();
        let output = Output::new(OutputKey::Raw(flow), 480 * 640 * 8, true).unwrap();
        assert_eq!(
            output.caps.to_string(),
            "other/tensors, format=(string)static, num_tensors=(int)1, types=(string)float32, \
             dimensions=(string)2:640:480, framerate=(fraction)0/1"
        );
        assert!(output.tight && output.pool.is_none());
        let over = Output::new(OutputKey::Raw(flow), 480 * 640 * 8 - 1, true);
        assert!(matches!(over, Err(FrameError::OverLimit { needs, .. }) if needs == 480 * 640 * 8));
        let gray = RawLayout::from_dims(Dtype::U8, &[4, 6]).unwrap();
        let output = Output::new(OutputKey::Raw(gray), 1 << 20, false).unwrap();
        assert!(output
            .caps
            .to_string()
            .starts_with("video/x-raw, format=(string)GRAY8"));
    }
}
