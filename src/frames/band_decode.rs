// SPDX-License-Identifier: MPL-2.0
//! JPEGs with restart markers decoded band by band on every core: `jpeg::split_bands` cuts
//! the JPEG at its restart markers into band JPEGs, and each decodes straight into its own
//! rows of the output buffer, the first on the calling thread, the others on helper
//! threads. A JPEG without restart markers at whole MCU rows (vidgear's) is left to the
//! whole-frame decode.
//!
//! Bands meet at MCU rows. 4:2:2 and 4:4:4 chroma is upsampled along rows only, so the
//! pixels are a whole-frame decode's; 4:2:0 chroma upsampling sees no row across a band
//! edge, which changes the pixel row on either side of each edge slightly (above 60 dB
//! PSNR against a whole-frame decode, see `jpeg::bands`' tests).

use super::wire_to_buffer::{params_of, DecodeTarget, Output, OutputKey};
use super::FrameError;
use crate::workers::{OrderedPool, PoolError};
use netgear_protocol::jpeg::{
    split_bands, Band, Colorspace, DecodeParams, Decoder, JpegError, JpegInfo, MIN_BAND_PIXELS,
};
use netgear_protocol::PayloadKind;

/// Rows of the output buffer lent to one helper's band.
struct Rows {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: each `Rows` is a disjoint part of one mapped buffer, lent to one job; the lender
// waits for every job it submitted before its borrow of the buffer ends (`InFlight`).
unsafe impl Send for Rows {}

/// One band for a helper thread.
struct BandJob {
    jpeg: Vec<u8>,
    info: JpegInfo,
    target: Target,
    rows: Rows,
}

type Helpers = OrderedPool<BandJob, Result<(), JpegError>>;

/// Decodes JPEGs band by band on `cores` threads (the caller's included).
pub struct BandDecoder {
    cores: usize,
    /// The caller's decoder for the first band, and the helpers for the others; made
    /// with the first JPEG that has bands.
    local: Option<Decoder>,
    helpers: Option<Helpers>,
}

impl Default for BandDecoder {
    fn default() -> Self {
        BandDecoder::new(std::thread::available_parallelism().map_or(1, usize::from))
    }
}

impl BandDecoder {
    pub fn new(cores: usize) -> BandDecoder {
        BandDecoder {
            cores,
            local: None,
            helpers: None,
        }
    }

    /// The frame decoded band by band into a buffer of `output` when its JPEG has restart
    /// markers at whole MCU rows and `output` takes packed pixels; `None`: decode it whole.
    /// Restart markers that break the header's promise (truncated, out of order) are an
    /// error: the frame is malformed.
    pub fn decode(
        &mut self,
        output: &Output,
        kind: &PayloadKind,
        jpeg: &[u8],
    ) -> Option<Result<gst::Buffer, FrameError>> {
        let PayloadKind::Jpeg(compression) = kind else {
            return None;
        };
        let &OutputKey::Decoded {
            target: DecodeTarget::Packed(colorspace),
            width,
            height,
        } = &output.key
        else {
            return None;
        };
        if self.cores < 2 || width * height < MIN_BAND_PIXELS || !self.ready() {
            return None;
        }
        let (info, bands) = match split_bands(jpeg, self.cores) {
            Ok(Some(split)) => split,
            Ok(None) => return None,
            Err(e) => return Some(Err(FrameError::Jpeg(e))),
        };
        let wanted = JpegInfo { width, height };
        if info != wanted {
            let error = JpegError::NotThisJpeg {
                info: wanted,
                header: info,
            };
            return Some(Err(FrameError::Jpeg(error)));
        }
        let target = Target {
            colorspace,
            width,
            pitch: 0,
            params: params_of(compression),
        };
        Some(self.decode_into_buffer(output, bands, target))
    }

    /// Makes the decoder and the helper threads once; false if either cannot be made.
    fn ready(&mut self) -> bool {
        if self.local.is_none() {
            self.local = Decoder::new().ok();
        }
        if self.helpers.is_none() {
            let helpers =
                OrderedPool::new("netgear-banddec", self.cores - 1, Decoder::new, decode_band);
            self.helpers = helpers.ok();
        }
        self.local.is_some() && self.helpers.is_some()
    }

    fn decode_into_buffer(
        &mut self,
        output: &Output,
        bands: Vec<Band>,
        target: Target,
    ) -> Result<gst::Buffer, FrameError> {
        let (mut buffer, pitch) = output.acquire()?;
        {
            let buffer = buffer.get_mut().ok_or(FrameError::Buffer)?;
            let mut map = buffer.map_writable().map_err(|_| FrameError::Buffer)?;
            let (Some(local), Some(helpers)) = (self.local.as_mut(), self.helpers.as_mut()) else {
                return Err(FrameError::Buffer);
            };
            let target = Target { pitch, ..target };
            decode_bands(local, helpers, bands, target, &mut map).map_err(FrameError::Jpeg)?;
        }
        Ok(buffer)
    }
}

/// What the bands decode to: `colorspace` pixels, rows of `width` pixels `pitch` bytes
/// apart.
#[derive(Debug, Clone, Copy)]
struct Target {
    colorspace: Colorspace,
    width: usize,
    pitch: usize,
    params: DecodeParams,
}

impl Target {
    fn info(&self, band: &Band) -> JpegInfo {
        JpegInfo {
            width: self.width,
            height: band.rows.len(),
        }
    }
}

/// Decodes each band (they follow one another from the first row) into its rows of `out`:
/// the first with `local`, the others on the helpers. Returns once every band is decoded.
fn decode_bands(
    local: &mut Decoder,
    helpers: &mut Helpers,
    bands: Vec<Band>,
    target: Target,
    out: &mut [u8],
) -> Result<(), JpegError> {
    let mut bands = bands.into_iter();
    let first = bands.next().ok_or(JpegError::Malformed("no bands"))?;
    let (own, mut rest) = take_rows(out, &first, target.pitch);
    let mut in_flight = InFlight { helpers, count: 0 };
    for band in bands {
        let rows;
        (rows, rest) = take_rows(rest, &band, target.pitch);
        let job = BandJob {
            info: target.info(&band),
            jpeg: band.jpeg,
            target,
            rows: Rows {
                ptr: rows.as_mut_ptr(),
                len: rows.len(),
            },
        };
        in_flight.submit(job)?;
    }
    let Target {
        colorspace,
        pitch,
        params,
        ..
    } = target;
    let decoded = local.decode(
        &first.jpeg,
        target.info(&first),
        colorspace,
        pitch,
        params,
        own,
    );
    let helped = in_flight.wait();
    decoded.and(helped)
}

/// Splits `band`'s rows off the front of `out`, whose first row is the band's first.
fn take_rows<'a>(out: &'a mut [u8], band: &Band, pitch: usize) -> (&'a mut [u8], &'a mut [u8]) {
    // The last band's last row may be shorter than the pitch: the decoder checks the rows.
    let len = band.rows.len().saturating_mul(pitch).min(out.len());
    out.split_at_mut(len)
}

/// A helper's job: decode one band into the rows lent to it.
fn decode_band(decoder: &mut Result<Decoder, JpegError>, job: BandJob) -> Result<(), JpegError> {
    let decoder = decoder.as_mut().map_err(|e| e.clone())?;
    // SAFETY: `job.rows` is a part of the output buffer lent to this job alone, alive until
    // the lender has this job's result (see `Rows`).
    let rows = unsafe { std::slice::from_raw_parts_mut(job.rows.ptr, job.rows.len) };
    let Target {
        colorspace,
        pitch,
        params,
        ..
    } = job.target;
    decoder.decode(&job.jpeg, job.info, colorspace, pitch, params, rows)
}

/// Band jobs submitted and not yet waited for. Dropping it waits for them too, so no
/// helper writes into rows whose borrow has ended, whatever way `decode_bands` returns.
struct InFlight<'a> {
    helpers: &'a mut Helpers,
    count: usize,
}

impl InFlight<'_> {
    fn submit(&mut self, job: BandJob) -> Result<(), JpegError> {
        // Nobody interrupts the helpers: a submit only waits for a free one.
        self.helpers
            .submit(job)
            .map_err(|_| JpegError::Library("the band decoder threads failed".into()))?;
        self.count += 1;
        Ok(())
    }

    /// Every band's result; the first error, if any.
    fn wait(mut self) -> Result<(), JpegError> {
        let mut outcome = Ok(());
        while self.count > 0 {
            self.count -= 1;
            let result = match self.helpers.next_result() {
                Some(Ok(decoded)) => decoded,
                Some(Err(PoolError::Panicked(why))) => Err(JpegError::Library(why)),
                Some(Err(PoolError::Interrupted)) | None => {
                    Err(JpegError::Library("a band decoder thread was lost".into()))
                }
            };
            outcome = outcome.and(result);
        }
        outcome
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        while self.count > 0 {
            self.count -= 1;
            let _ = self.helpers.next_result();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::FrameReader;
    use netgear_protocol::jpeg::{
        band_rows, join_bands, EncodeParams, Encoder, Image, Subsampling,
    };
    use netgear_protocol::Compression;

    const LIMIT: u64 = 1 << 30;

    fn picture(width: usize, height: usize) -> Vec<u8> {
        (0..width * height * 3)
            .map(|i| ((i / 3 % width) * 2 + i / 3 / width + (i % 3) * 40 + i * 7 % 13) as u8)
            .collect()
    }

    /// `picture` encoded in `bands` bands and joined, as `netgearsink` sends it.
    fn banded_jpeg(width: usize, height: usize, bands: usize) -> Vec<u8> {
        let pixels = picture(width, height);
        let bgr = Colorspace::from_name("BGR").unwrap();
        let params = EncodeParams {
            quality: 90,
            fast_dct: true,
        };
        let mut encoder = Encoder::new().unwrap();
        let jpegs: Vec<Vec<u8>> = band_rows(width, height, bands)
            .into_iter()
            .map(|rows| {
                let image = Image {
                    pixels: &pixels[rows.start * width * 3..rows.end * width * 3],
                    width,
                    height: rows.len(),
                    pitch: width * 3,
                    colorspace: bgr,
                };
                let mut jpeg = Vec::new();
                encoder.encode(image, params, &mut jpeg).unwrap();
                jpeg
            })
            .collect();
        let parts: Vec<&[u8]> = jpegs.iter().map(Vec::as_slice).collect();
        join_bands(&parts).unwrap()
    }

    fn jpeg_kind() -> PayloadKind {
        PayloadKind::Jpeg(Compression {
            dct: true,
            ups: false,
            colorspace: "BGR".into(),
        })
    }

    fn output(target: DecodeTarget, width: usize, height: usize) -> Output {
        gst::init().unwrap();
        let key = OutputKey::Decoded {
            target,
            width,
            height,
        };
        Output::new(key, LIMIT, true).unwrap()
    }

    fn bytes(buffer: &gst::Buffer) -> Vec<u8> {
        buffer.map_readable().unwrap().to_vec()
    }

    fn whole_decode(output: &Output, jpeg: &[u8]) -> Vec<u8> {
        let mut reader = FrameReader::default();
        let payload = zmq::Message::from(jpeg);
        bytes(&reader.fill(output, &jpeg_kind(), payload).unwrap())
    }

    #[test]
    fn bands_decode_into_their_rows_as_a_whole_decode_would() {
        let bgr = DecodeTarget::Packed(Colorspace::from_name("BGR").unwrap());
        // 1282 wide: GStreamer pads each BGR row to 3848 bytes.
        for (width, height, bands, cores) in
            [(1280, 720, 2, 2), (1282, 721, 4, 3), (1920, 1080, 2, 8)]
        {
            let jpeg = banded_jpeg(width, height, bands);
            let output = output(bgr, width, height);
            let mut decoder = BandDecoder::new(cores);
            let banded = decoder
                .decode(&output, &jpeg_kind(), &jpeg)
                .unwrap()
                .unwrap();
            let whole = whole_decode(&output, &jpeg);
            // Row padding is not written by either.
            let pitch = whole.len() / height;
            let rows = |b: &[u8]| -> Vec<u8> {
                b.chunks(pitch)
                    .flat_map(|r| r[..width * 3].to_vec())
                    .collect()
            };
            assert!(rows(&bytes(&banded)) == rows(&whole), "{width}x{height}");
        }
    }

    #[test]
    fn what_has_no_bands_or_another_target_decodes_whole() {
        let bgr = DecodeTarget::Packed(Colorspace::from_name("BGR").unwrap());
        let jpeg = banded_jpeg(1280, 720, 2);
        let mut decoder = BandDecoder::new(2);
        let planar = output(DecodeTarget::Planar(Subsampling::S420), 1280, 720);
        assert!(
            decoder.decode(&planar, &jpeg_kind(), &jpeg).is_none(),
            "planar"
        );
        let small = banded_jpeg(320, 240, 2);
        let output_small = output(bgr, 320, 240);
        assert!(
            decoder
                .decode(&output_small, &jpeg_kind(), &small)
                .is_none(),
            "small"
        );
        let whole = banded_jpeg(1280, 720, 1);
        let output = output(bgr, 1280, 720);
        assert!(
            decoder.decode(&output, &jpeg_kind(), &whole).is_none(),
            "no restarts"
        );
        assert!(
            BandDecoder::new(1)
                .decode(&output, &jpeg_kind(), &jpeg)
                .is_none(),
            "one core"
        );
        let raw = PayloadKind::Raw(netgear_protocol::RawLayout::new(
            netgear_protocol::Dtype::U8,
            720,
            1280,
            3,
        ));
        assert!(decoder.decode(&output, &raw, &jpeg).is_none(), "raw");
    }

    #[test]
    fn broken_restarts_and_bad_bands_are_errors_and_the_decoder_goes_on() {
        let bgr = DecodeTarget::Packed(Colorspace::from_name("BGR").unwrap());
        let jpeg = banded_jpeg(1280, 720, 4);
        let output = output(bgr, 1280, 720);
        let mut decoder = BandDecoder::new(4);
        let rst = jpeg.windows(2).position(|w| w == [0xFF, 0xD1]).unwrap();
        let mut swapped = jpeg.clone();
        swapped[rst + 1] = 0xD2;
        let err = decoder.decode(&output, &jpeg_kind(), &swapped).unwrap();
        assert!(
            matches!(err, Err(FrameError::Jpeg(JpegError::Malformed(_)))),
            "{err:?}"
        );
        let cut = decoder
            .decode(&output, &jpeg_kind(), &jpeg[..jpeg.len() / 2])
            .unwrap();
        assert!(cut.is_err());
        // A band whose scan data is damaged: libjpeg-turbo's error comes back.
        let mut damaged = jpeg.clone();
        let after = rst + 2;
        damaged[after..after + 64].fill(0);
        let _ = decoder.decode(&output, &jpeg_kind(), &damaged);
        let other = output_of_size(bgr);
        let err = decoder.decode(&other, &jpeg_kind(), &jpeg).unwrap();
        assert!(matches!(
            err,
            Err(FrameError::Jpeg(JpegError::NotThisJpeg { .. }))
        ));
        let good = decoder
            .decode(&output, &jpeg_kind(), &jpeg)
            .unwrap()
            .unwrap();
        assert!(bytes(&good) == whole_decode(&output, &jpeg));
    }

    fn output_of_size(target: DecodeTarget) -> Output {
        output(target, 1280, 736)
    }
}
