// SPDX-License-Identifier: MPL-2.0
//! Frames in bands on the encoder threads (`jpeg-bands`). A raw frame that finds every
//! encoder thread idle and every earlier frame on its way, as the frames of a live stream
//! do, is cut into one horizontal band per thread; the companion joins the bands' JPEGs
//! into one with restart markers (`jpeg::join_bands`), so the frame leaves after a
//! fraction of one encode. Frames that come while earlier ones are still being encoded or
//! wait for the network (a backlog) are encoded whole, one per thread, side by side.

use crate::frames::{EncodeJob, EncodeResult, JobImage};
use crate::transport::SharedBytes;
use crate::workers::{OrderedPool, PoolError, Results};
use netgear_protocol::jpeg::{band_rows, join_bands, MAX_BANDS, MIN_BAND_PIXELS};
use std::ops::Range;
use std::sync::Arc;

/// `jpeg-bands=0`: bands for frames that find the encoders idle, whole frames otherwise.
pub const AUTO: u32 = 0;
/// `jpeg-bands=1`: whole frames only.
pub const OFF: u32 = 1;
pub const MAX: u32 = MAX_BANDS as u32;

/// The encoder pool of the sink.
pub type EncoderPool = OrderedPool<EncodeJob, EncodeResult>;

/// How the sink cuts frames for its encoder pool: the `jpeg-bands` property.
#[derive(Debug, Clone, Copy)]
pub struct BandChoice {
    bands: u32,
}

impl BandChoice {
    pub fn new(jpeg_bands: u32) -> BandChoice {
        BandChoice { bands: jpeg_bands }
    }

    /// Submits `job` to the pool whole or cut into bands. Blocks as `submit` does;
    /// `Err(Interrupted)` leaves bands already submitted to be skipped by later takes.
    /// Camera (Y'CbCr) frames are encoded whole: their planes are not cut into bands.
    pub fn submit(&self, pool: &mut EncoderPool, job: EncodeJob) -> Result<Encoding, PoolError> {
        let JobImage::Packed { width, height, .. } = job.image else {
            return pool.submit(job).map(Encoding::Whole);
        };
        let rows = band_rows(width, height, self.bands_for(pool, width * height));
        if rows.len() < 2 {
            return pool.submit(job).map(Encoding::Whole);
        }
        // Only this thread submits: the bands' numbers follow one another.
        let mut first = None;
        let mut last = 0;
        for band in rows {
            last = pool.submit(band_job(&job, band))?;
            first.get_or_insert(last);
        }
        Ok(Encoding::Bands(first.unwrap_or(last)..last + 1))
    }

    fn bands_for(&self, pool: &EncoderPool, pixels: usize) -> usize {
        match self.bands {
            OFF => 1,
            // Nothing pending: every earlier frame is encoded and taken by the network.
            AUTO if pool.pending() == 0 && pixels >= MIN_BAND_PIXELS => pool.workers(),
            AUTO => 1,
            n => n as usize,
        }
    }
}

/// The rows `rows` of a packed frame to encode, as a picture of their own.
fn band_job(job: &EncodeJob, rows: Range<usize>) -> EncodeJob {
    let image = match &job.image {
        JobImage::Packed {
            pixels,
            width,
            pitch,
            colorspace,
            ..
        } => JobImage::Packed {
            pixels: Arc::new(BandPixels {
                frame: pixels.clone(),
                bytes: rows.start * pitch..rows.end * pitch,
            }),
            width: *width,
            height: rows.len(),
            pitch: *pitch,
            colorspace: *colorspace,
        },
        JobImage::Yuv(planes) => JobImage::Yuv(planes.clone()),
    };
    EncodeJob {
        image,
        params: job.params,
    }
}

/// A band's rows of a frame shared with the other bands' jobs.
struct BandPixels {
    frame: SharedBytes,
    bytes: Range<usize>,
}

impl AsRef<[u8]> for BandPixels {
    fn as_ref(&self) -> &[u8] {
        // The last row may be shorter than the pitch: the encoder checks what it needs.
        let frame = (*self.frame).as_ref();
        let end = self.bytes.end.min(frame.len());
        frame.get(self.bytes.start.min(end)..end).unwrap_or(&[])
    }
}

/// A frame submitted to the encoder pool: whole (its job number) or in bands (theirs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoding {
    Whole(u64),
    Bands(Range<u64>),
}

impl Encoding {
    pub fn is_banded(&self) -> bool {
        matches!(self, Encoding::Bands(_))
    }

    /// The frame's JPEG, waiting for its encoders (on the companion thread), with the
    /// bands joined; as `Results::take` answers for one job.
    pub fn take(
        &self,
        results: &Results<EncodeJob, EncodeResult>,
    ) -> Option<Result<EncodeResult, PoolError>> {
        let seqs = match self {
            Encoding::Whole(seq) => return results.take(*seq),
            Encoding::Bands(seqs) => seqs.clone(),
        };
        let mut jpegs = Vec::with_capacity(seqs.clone().count());
        for seq in seqs {
            match results.take(seq)? {
                Ok(Ok(jpeg)) => jpegs.push(jpeg),
                failed => return Some(failed),
            }
        }
        let parts: Vec<&[u8]> = jpegs.iter().map(Vec::as_slice).collect();
        Some(Ok(join_bands(&parts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::frame_encoder;
    use netgear_protocol::jpeg::{Colorspace, DecodeParams, Decoder, EncodeParams, JpegInfo};

    fn job(width: usize, height: usize) -> EncodeJob {
        let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
        EncodeJob {
            image: JobImage::Packed {
                pixels: Arc::new(pixels),
                width,
                height,
                pitch: width * 3,
                colorspace: Colorspace::from_name("BGR").unwrap(),
            },
            params: EncodeParams {
                quality: 90,
                fast_dct: true,
            },
        }
    }

    fn restarts(jpeg: &[u8]) -> usize {
        jpeg.windows(2)
            .filter(|w| w[0] == 0xFF && (0xD0..=0xD7).contains(&w[1]))
            .count()
    }

    fn decoded(jpeg: &[u8]) -> (JpegInfo, Vec<u8>) {
        let mut decoder = Decoder::new().unwrap();
        let info = decoder.info(jpeg).unwrap();
        let bgr = Colorspace::from_name("BGR").unwrap();
        let mut out = vec![0u8; info.width * info.height * 3];
        let params = DecodeParams::default();
        decoder
            .decode(jpeg, info, bgr, info.width * 3, params, &mut out)
            .unwrap();
        (info, out)
    }

    #[test]
    fn an_idle_pool_encodes_a_frame_in_one_band_per_thread() {
        let mut pool = frame_encoder(2).unwrap();
        let results = pool.results();
        let auto = BandChoice::new(AUTO);
        let banded = auto.submit(&mut pool, job(1280, 720)).unwrap();
        assert_eq!(banded, Encoding::Bands(0..2));
        let jpeg = banded.take(&results).unwrap().unwrap().unwrap();
        assert_eq!(restarts(&jpeg), 1);
        let whole = BandChoice::new(OFF)
            .submit(&mut pool, job(1280, 720))
            .unwrap();
        assert_eq!(whole, Encoding::Whole(2));
        let single = whole.take(&results).unwrap().unwrap().unwrap();
        assert_eq!(restarts(&single), 0);
        // The same coefficients, so the same pixels.
        assert_eq!(decoded(&jpeg), decoded(&single));
        assert_eq!(
            decoded(&jpeg).0,
            JpegInfo {
                width: 1280,
                height: 720
            }
        );
    }

    #[test]
    fn frames_that_find_earlier_ones_pending_are_encoded_whole() {
        let mut pool = frame_encoder(2).unwrap();
        let results = pool.results();
        let auto = BandChoice::new(AUTO);
        assert!(auto.submit(&mut pool, job(1280, 720)).unwrap().is_banded());
        let second = auto.submit(&mut pool, job(1280, 720)).unwrap();
        assert_eq!(second, Encoding::Whole(2), "the bands are not taken yet");
        let forced = BandChoice::new(3)
            .submit(&mut pool, job(1280, 720))
            .unwrap();
        assert_eq!(forced, Encoding::Bands(3..6), "a band count is kept to");
        let small = BandChoice::new(4).submit(&mut pool, job(320, 240)).unwrap();
        assert_eq!(small, Encoding::Bands(6..10));
        assert!(second.take(&results).unwrap().unwrap().is_ok());
        assert_eq!(
            restarts(&forced.take(&results).unwrap().unwrap().unwrap()),
            2
        );
        assert_eq!(
            restarts(&small.take(&results).unwrap().unwrap().unwrap()),
            3
        );
        assert_eq!(pool.pending(), 0);
        let idle = auto.submit(&mut pool, job(320, 240)).unwrap();
        assert_eq!(idle, Encoding::Whole(10), "too small to cut by choice");
    }

    #[test]
    fn a_band_that_fails_fails_the_frame() {
        let mut pool = frame_encoder(2).unwrap();
        let results = pool.results();
        let mut short = job(1280, 720);
        if let JobImage::Packed { pixels, .. } = &mut short.image {
            *pixels = Arc::new(vec![0u8; 1280 * 3 * 500]);
        }
        let banded = BandChoice::new(2).submit(&mut pool, short).unwrap();
        assert!(matches!(banded.take(&results), Some(Ok(Err(_)))));
    }
}
