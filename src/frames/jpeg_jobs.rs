// SPDX-License-Identifier: MPL-2.0
//! The JPEG work frames take to other threads, in the ordered pools of `workers`: the
//! sink's encode job (a raw frame's mapped plane to a JPEG) and the source's decode job (a
//! received JPEG into a buffer from the output's pool). The streaming thread prepares each
//! job (`encode_job`, `FrameReader::prepare_decode`); its bytes travel with it uncopied.

use super::wire_to_buffer::{decode_into, DecodeTarget, WireBytes};
use super::FrameError;
use crate::transport::SharedBytes;
use crate::workers::OrderedPool;
use netgear_protocol::jpeg::{
    Colorspace, DecodeParams, Decoder, EncodeParams, Encoder, Image, JpegError, JpegInfo,
    SharedYuv, YuvScratch,
};

/// One raw frame to encode.
pub struct EncodeJob {
    pub image: JobImage,
    pub params: EncodeParams,
}

/// The pixels of a job, lent by the submitter without a copy (a mapped buffer's planes).
pub enum JobImage {
    /// `height` rows of `pitch` bytes in `colorspace`'s layout.
    Packed {
        pixels: SharedBytes,
        width: usize,
        height: usize,
        pitch: usize,
        colorspace: Colorspace,
    },
    /// Y'CbCr planes, encoded without colour conversion.
    Yuv(SharedYuv),
}

/// The JPEG of one frame, or why it could not be encoded.
pub type EncodeResult = Result<Vec<u8>, JpegError>;

/// A worker's encoder, and the buffers it encodes into and from (kept across frames).
pub struct EncodeWorker {
    encoder: Result<Encoder, JpegError>,
    scratch: Vec<u8>,
    planes: YuvScratch,
}

impl EncodeWorker {
    pub fn new() -> EncodeWorker {
        EncodeWorker {
            encoder: Encoder::new(),
            scratch: Vec::new(),
            planes: YuvScratch::default(),
        }
    }

    pub fn encode(&mut self, job: EncodeJob) -> EncodeResult {
        let encoder = self.encoder.as_mut().map_err(|e| e.clone())?;
        match &job.image {
            JobImage::Packed {
                pixels,
                width,
                height,
                pitch,
                colorspace,
            } => {
                let image = Image {
                    pixels: (**pixels).as_ref(),
                    width: *width,
                    height: *height,
                    pitch: *pitch,
                    colorspace: *colorspace,
                };
                encoder.encode(image, job.params, &mut self.scratch)?;
            }
            JobImage::Yuv(planes) => {
                let image = planes.image();
                encoder.encode_yuv(&image, job.params, &mut self.planes, &mut self.scratch)?;
            }
        }
        // An exact-size copy: the scratch keeps its worst-case capacity for the next frame.
        Ok(self.scratch.clone())
    }
}

impl Default for EncodeWorker {
    fn default() -> Self {
        EncodeWorker::new()
    }
}

/// JPEGs of raw frames, or why a frame was not encoded, in the order the frames were given.
pub type FrameEncoder = OrderedPool<EncodeJob, EncodeResult>;

/// `workers` threads encoding frames to JPEG, in order.
pub fn frame_encoder(workers: usize) -> std::io::Result<FrameEncoder> {
    OrderedPool::new(
        "netgear-jpegenc",
        workers,
        EncodeWorker::new,
        EncodeWorker::encode,
    )
}

/// A JPEG decode prepared on the streaming thread (its buffer taken from the output's pool)
/// to run on a decoder thread.
pub struct FrameDecode {
    pub(super) buffer: gst::Buffer,
    pub(super) video: gst_video::VideoInfo,
    pub(super) target: DecodeTarget,
    pub(super) info: JpegInfo,
    pub(super) params: DecodeParams,
    pub(super) jpeg: WireBytes,
}

impl FrameDecode {
    /// Decodes into the buffer prepared for it.
    pub fn run(self, decoder: &mut Decoder) -> Result<gst::Buffer, FrameError> {
        let FrameDecode {
            mut buffer,
            video,
            target,
            info,
            params,
            jpeg,
        } = self;
        decode_into(
            decoder,
            &mut buffer,
            &video,
            (target, info),
            params,
            jpeg.as_ref(),
        )?;
        Ok(buffer)
    }
}

/// Decoded buffers, or why a frame was not decoded, in the order the frames were given.
pub type FrameDecoder = OrderedPool<FrameDecode, Result<gst::Buffer, FrameError>>;

/// One thread with its own decoder, decoding frames while the source receives the next.
pub fn frame_decoder() -> std::io::Result<FrameDecoder> {
    OrderedPool::new(
        "netgear-jpegdec",
        1,
        Decoder::new,
        |decoder: &mut Result<Decoder, JpegError>, job: FrameDecode| match decoder {
            Ok(decoder) => job.run(decoder),
            Err(e) => Err(FrameError::Jpeg(e.clone())),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn frame(idx: usize, width: usize, height: usize) -> Vec<u8> {
        (0..width * height * 3)
            .map(|i| ((i / 3 % width + i / 3 / width + idx * 9 + i % 3 * 40) % 200) as u8)
            .collect()
    }

    /// Six 96x40 BGR frames through a two-worker encoder pool, checked against the encoder.
    fn pooled_jpegs() -> Vec<Vec<u8>> {
        let bgr = Colorspace::from_name("BGR").unwrap();
        let params = EncodeParams {
            quality: 90,
            fast_dct: true,
        };
        let (w, h) = (96, 40);
        let mut encoders = frame_encoder(2).unwrap();
        let mut serial = EncodeWorker::new();
        let mut expected = Vec::new();
        for idx in 0..6 {
            let pixels: SharedBytes = Arc::new(frame(idx, w, h));
            let job = || EncodeJob {
                image: JobImage::Packed {
                    pixels: pixels.clone(),
                    width: w,
                    height: h,
                    pitch: w * 3,
                    colorspace: bgr,
                },
                params,
            };
            expected.push(serial.encode(job()).unwrap());
            encoders.submit(job()).unwrap();
        }
        let jpegs: Vec<Vec<u8>> = std::iter::from_fn(|| encoders.next_result())
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(jpegs, expected);
        jpegs
    }

    #[test]
    fn encoder_pool_encodes_like_the_encoder_in_order() {
        assert_eq!(pooled_jpegs().len(), 6);
    }
}
