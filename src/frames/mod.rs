// SPDX-License-Identifier: MPL-2.0
//! Frames between the wire and GStreamer buffers, both ways: a received payload (raw rows
//! re-padded, JPEG decoded into pooled buffers or passed through) becomes a buffer with its
//! caps; a buffer (raw rows packed and put in OpenCV's order, or JPEG-encoded) becomes a
//! payload to send; the JPEG jobs either way run on worker threads (`jpeg_jobs`). Used by
//! both elements, by the sink's returned frames and by the source's `return` pad.
//! `netgearsrc` also checks our sink's frame numbering (`sequence`) and reads each frame's
//! capture time (`capture_time`) here.

mod band_decode;
mod buffer_to_wire;
pub mod capture_time;
mod colorimetry;
mod jpeg_jobs;
pub mod rate;
mod returned;
mod sequence;
mod wire_to_buffer;
mod yuv;

pub use band_decode::BandDecoder;
pub use buffer_to_wire::{encode_job, FrameWriter, Input, JpegSettings, Payload, Uncompressible};
pub use jpeg_jobs::{
    frame_decoder, frame_encoder, EncodeJob, EncodeResult, FrameDecoder, FrameEncoder, JobImage,
};
pub use returned::{ReturnEncoder, ReturnJpeg, ReturnedFrame};
pub use sequence::SequenceCheck;
pub use wire_to_buffer::{DecodeTarget, FrameReader, Output, OutputKey};

use gst_video::VideoFormat;
use netgear_protocol::jpeg::JpegError;
use netgear_protocol::ProtocolError;

/// Why a frame could not cross between the wire and a buffer.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("corrupt JPEG: {0}")]
    Jpeg(#[source] JpegError),
    #[error("JPEG encoding failed: {0}")]
    Encode(#[source] JpegError),
    /// Downstream refused the caps the frame needs.
    #[error("downstream refused {0}")]
    Refused(String),
    #[error("a {width}x{height} frame needs {needs} bytes, over max-frame-bytes={limit}")]
    OverLimit {
        width: u32,
        height: u32,
        needs: usize,
        limit: u64,
    },
    #[error("{width}x{height} is too large for a video frame")]
    TooLarge { width: usize, height: usize },
    #[error("{0} cannot be sent")]
    Unsupported(String),
    #[error("a buffer of {have} bytes is too small for its caps ({needs} bytes)")]
    TooSmall { have: usize, needs: usize },
    #[error("a buffer of {have} bytes does not hold its caps' array ({needs} bytes)")]
    WrongSize { have: usize, needs: usize },
    #[error(transparent)]
    TensorCaps(#[from] crate::formats::tensors::TensorCapsError),
    #[error("could not allocate, map or fill a buffer")]
    Buffer,
}

/// The raw video info of a frame of `format`, `width` × `height`, variable framerate.
pub fn video_info(
    format: VideoFormat,
    width: usize,
    height: usize,
) -> Result<gst_video::VideoInfo, FrameError> {
    let too_large = || FrameError::TooLarge { width, height };
    let builder = gst_video::VideoInfo::builder(
        format,
        u32::try_from(width).map_err(|_| too_large())?,
        u32::try_from(height).map_err(|_| too_large())?,
    )
    .fps(gst::Fraction::new(0, 1));
    let builder = match gst_video::VideoFormatInfo::from_format(format).is_yuv() {
        // JPEG's YCbCr (JFIF) is full-range BT.601, as jpegdec announces it; the
        // default (limited range) would make videoconvert wash the colours out.
        true => builder.colorimetry(&gst_video::VideoColorimetry::new(
            gst_video::VideoColorRange::Range0_255,
            gst_video::VideoColorMatrix::Bt601,
            gst_video::VideoTransferFunction::Unknown,
            gst_video::VideoColorPrimaries::Unknown,
        )),
        false => builder,
    };
    builder.build().map_err(|_| too_large())
}

/// A tiny JPEG can claim a huge picture: refuse to allocate more than the limit for it.
pub fn check_decoded_size(info: &gst_video::VideoInfo, limit: u64) -> Result<(), FrameError> {
    if info.size() as u64 > limit {
        return Err(FrameError::OverLimit {
            width: info.width(),
            height: info.height(),
            needs: info.size(),
            limit,
        });
    }
    Ok(())
}
