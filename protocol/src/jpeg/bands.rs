// SPDX-License-Identifier: MPL-2.0
//! One frame in horizontal bands, both ways. [`join_bands`] joins the JPEGs of bands
//! encoded apart into one baseline JPEG with a restart marker between bands: a restart
//! resets the DC predictors, so bands encoded with the same tables concatenate exactly (the
//! joined scan is the one libjpeg-turbo writes for the whole frame with a restart interval
//! of one band). [`split_bands`] cuts a JPEG whose restart intervals are whole MCU rows into
//! band JPEGs that decode apart, each into its own rows.
//!
//! `split_bands` reads JPEGs from the network: every offset is checked, nothing panics,
//! what it allocates is bounded by the input's size, and restart markers that are not the
//! ones the header promises (missing, extra, out of order) are an error.

use super::{be16, is_frame_marker, parse_frame, FrameHeader, JpegError, JpegInfo};
use std::ops::Range;

/// The most bands a frame is cut into.
pub const MAX_BANDS: usize = 64;
/// Smaller frames are encoded and decoded whole: the per-band set-up would eat the gain.
pub const MIN_BAND_PIXELS: usize = 640 * 480;
/// Band heights are multiples of the tallest MCU (4:2:0 and 4:4:0, 16 rows).
const BAND_ALIGN: usize = 16;
/// JPEG's restart interval and picture height are 16-bit.
const MAX_16BIT: usize = u16::MAX as usize;
/// Header bytes every band repeats (tables, frame and scan headers); a JPEG with more is
/// not cut, which bounds what its bands allocate beyond its own size.
const MAX_BAND_HEADER: usize = 64 * 1024;

const SOI: [u8; 2] = [0xFF, 0xD8];
const EOI: [u8; 2] = [0xFF, 0xD9];
const RST0: u8 = 0xD0;
const DRI: u8 = 0xDD;
const SOS: u8 = 0xDA;

/// The rows of about `bands` bands of a `width` x `height` picture: equal heights that are
/// multiples of every MCU height, the last band shorter. One band when the picture is too
/// short to cut, or when no more than [`MAX_BANDS`] bands keep the restart interval within
/// JPEG's 16 bits.
pub fn band_rows(width: usize, height: usize, bands: usize) -> Vec<Range<usize>> {
    // Rows a band may have before its restart interval overflows, with the smallest
    // MCUs (8x8: 4:4:4, gray).
    let rows_within_interval = MAX_16BIT / width.div_ceil(8).max(1) * 8;
    let band = height
        .div_ceil(bands.clamp(1, MAX_BANDS))
        .next_multiple_of(BAND_ALIGN)
        .min(rows_within_interval / BAND_ALIGN * BAND_ALIGN);
    if band == 0 || band >= height || height.div_ceil(band) > MAX_BANDS {
        return std::iter::once(0..height).collect();
    }
    (0..height)
        .step_by(band)
        .map(|top| top..(top + band).min(height))
        .collect()
}

/// What bands need from a baseline JPEG's header.
struct Header {
    frame: FrameHeader,
    /// Where the SOF's height field is.
    height_at: usize,
    /// Where the SOS marker is, and where the scan's data begins after its segment.
    sos: usize,
    data: usize,
    /// MCUs per restart interval; 0: no restart markers.
    restart_interval: usize,
    /// The segments (marker included) a band JPEG repeats, in order, SOS last: all from
    /// SOI to the scan but DRI, comments and APPn other than JFIF (APP0) and Adobe (APP14),
    /// which say how the components are coloured.
    kept: Vec<Range<usize>>,
}

/// The marker segment at `at` (after fill bytes): its marker, its bytes from the marker on,
/// and its body. `None` for a marker without a length, or a segment past the end.
fn segment(jpeg: &[u8], at: usize) -> Option<(u8, Range<usize>, Range<usize>)> {
    if *jpeg.get(at)? != 0xFF {
        return None;
    }
    let mut code = at + 1;
    while *jpeg.get(code)? == 0xFF {
        code += 1;
    }
    let marker = jpeg[code];
    if matches!(marker, 0x00 | 0x01 | 0xD0..=0xD9) {
        return None;
    }
    let length = be16(jpeg, code + 1).filter(|&l| l >= 2)?;
    let end = (code + 1)
        .checked_add(length)
        .filter(|&e| e <= jpeg.len())?;
    Some((marker, code - 1..end, code + 3..end))
}

/// Reads a single-scan, Huffman-coded sequential JPEG's header; `None` for anything else
/// (progressive, lossless, arithmetic, several scans, odd structure): decoded whole.
fn read_header(jpeg: &[u8]) -> Option<Header> {
    if jpeg.get(..2)? != SOI {
        return None;
    }
    let (mut pos, mut frame, mut height_at, mut restart_interval) = (2, None, 0, 0);
    let (mut kept, mut kept_bytes) = (Vec::new(), 0);
    loop {
        let (marker, whole, body) = segment(jpeg, pos)?;
        let keep = match marker {
            0xC0 | 0xC1 if frame.is_none() => {
                frame = Some(parse_frame(marker, &jpeg[body.clone()]).ok()?);
                height_at = body.start + 1;
                true
            }
            m if is_frame_marker(m) => return None,
            DRI => {
                restart_interval = be16(jpeg, body.start).filter(|_| body.len() == 2)?;
                false
            }
            0xE1..=0xED | 0xEF | 0xFE => false,
            _ => true,
        };
        if keep {
            kept_bytes += whole.len();
            kept.push(whole.clone());
        }
        if kept_bytes > MAX_BAND_HEADER {
            return None;
        }
        if marker == SOS {
            let frame = frame?;
            // One scan of every component, interleaved.
            let components = usize::from(*jpeg.get(body.start)?);
            if components != frame.components || body.len() != 4 + 2 * components {
                return None;
            }
            return Some(Header {
                frame,
                height_at,
                sos: whole.start,
                data: whole.end,
                restart_interval,
                kept,
            });
        }
        pos = whole.end;
    }
}

fn malformed(why: &'static str) -> JpegError {
    JpegError::Malformed(why)
}

/// Joins the JPEGs of consecutive bands of one picture, encoded apart with the same
/// settings and without restart markers, into one JPEG: the first band's header with the
/// whole picture's height and a restart interval of one band, each band's scan data, a
/// restart marker (RST0..RST7, cyclically) between bands.
pub fn join_bands(bands: &[&[u8]]) -> Result<Vec<u8>, JpegError> {
    let (first, rest) = bands.split_first().ok_or(malformed("no bands"))?;
    let head = read_header(first).ok_or(malformed("a band is not a baseline JPEG"))?;
    if head.restart_interval != 0 {
        return Err(malformed("a band has restart markers of its own"));
    }
    let (band_height, width) = (head.frame.info.height, head.frame.info.width);
    let mut height = band_height;
    for (index, band) in rest.iter().enumerate() {
        let rows = height_of_like(band, first, &head)?;
        let last = index + 1 == rest.len();
        if rows > band_height || (!last && rows != band_height) {
            return Err(malformed("bands of unequal height"));
        }
        height += rows;
    }
    let (mcu_width, mcu_height) = head.frame.mcu;
    if !rest.is_empty() && !band_height.is_multiple_of(mcu_height) {
        return Err(malformed("a band is not a whole number of MCU rows"));
    }
    let interval = band_height / mcu_height * width.div_ceil(mcu_width);
    if height > MAX_16BIT || interval > MAX_16BIT {
        let value = height.max(interval);
        return Err(JpegError::TooLarge {
            what: "banded picture",
            value,
        });
    }
    let data: usize = bands.iter().map(|b| b.len()).sum();
    let mut out = Vec::with_capacity(head.data + data + 6);
    out.extend_from_slice(&first[..head.sos]);
    out[head.height_at..head.height_at + 2].copy_from_slice(&(height as u16).to_be_bytes());
    if !rest.is_empty() {
        out.extend_from_slice(&[0xFF, DRI, 0, 4]);
        out.extend_from_slice(&(interval as u16).to_be_bytes());
    }
    out.extend_from_slice(&first[head.sos..head.data]);
    for (index, band) in bands.iter().enumerate() {
        if index > 0 {
            out.extend_from_slice(&[0xFF, RST0 + ((index - 1) % 8) as u8]);
        }
        let end = band.len().checked_sub(2).filter(|&e| e >= head.data);
        let scan = end
            .and_then(|e| band.get(head.data..e))
            .filter(|_| band.ends_with(&EOI));
        out.extend_from_slice(scan.ok_or(malformed("a band does not end its scan with EOI"))?);
    }
    out.extend_from_slice(&EOI);
    Ok(out)
}

/// The height of a band whose header is the first band's but for the height.
fn height_of_like(band: &[u8], first: &[u8], head: &Header) -> Result<usize, JpegError> {
    let at = head.height_at;
    let same = band.len() > head.data
        && band.get(..at) == first.get(..at)
        && band.get(at + 2..head.data) == first.get(at + 2..head.data);
    match (same, be16(band, at)) {
        (true, Some(rows)) if rows > 0 => Ok(rows),
        _ => Err(malformed("bands encoded with different settings")),
    }
}

/// One band cut from a JPEG: a JPEG of its own, and the picture's rows it decodes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    pub jpeg: Vec<u8>,
    pub rows: Range<usize>,
}

/// How a JPEG's restart intervals group into bands.
struct Plan {
    /// Restart intervals in the scan, and per band (the last band may have fewer).
    intervals: usize,
    per_band: usize,
    /// Picture rows per band (the last band may have fewer).
    rows: usize,
}

impl Plan {
    /// `None` unless the restart intervals are whole MCU rows and there are at least two.
    fn new(head: &Header, bands: usize) -> Option<Plan> {
        let JpegInfo { width, height } = head.frame.info;
        let (mcu_width, mcu_height) = head.frame.mcu;
        let per_row = width.div_ceil(mcu_width);
        let interval = head.restart_interval;
        if interval == 0 || !interval.is_multiple_of(per_row) {
            return None;
        }
        let rows_per_interval = interval / per_row;
        let intervals = height.div_ceil(mcu_height).div_ceil(rows_per_interval);
        let count = bands.clamp(1, MAX_BANDS).min(intervals);
        if count < 2 {
            return None;
        }
        let per_band = intervals.div_ceil(count);
        Some(Plan {
            intervals,
            per_band,
            rows: per_band * rows_per_interval * mcu_height,
        })
    }
}

/// Cuts a baseline JPEG whose restart intervals are whole MCU rows into at most `bands`
/// band JPEGs, each with the JPEG's tables, its own height and its share of the scan (its
/// restart markers renumbered from RST0). `Ok(None)`: the JPEG has no such restart
/// markers, or is of another kind; it decodes whole. An error: the scan's restart markers
/// are not the ones the header promises, or the scan is cut short.
pub fn split_bands(jpeg: &[u8], bands: usize) -> Result<Option<(JpegInfo, Vec<Band>)>, JpegError> {
    let Some(head) = read_header(jpeg) else {
        return Ok(None);
    };
    let Some(plan) = Plan::new(&head, bands) else {
        return Ok(None);
    };
    let cutter = Cutter::new(jpeg, &head, &plan);
    Ok(Some((head.frame.info, cutter.cut(head.data)?)))
}

/// Builds the band JPEGs while walking the scan once.
struct Cutter<'a> {
    jpeg: &'a [u8],
    plan: &'a Plan,
    height: usize,
    /// SOI, the kept segments (DRI before SOS when a band holds several intervals).
    template: Vec<u8>,
    height_at: usize,
    bands: Vec<Band>,
    current: Vec<u8>,
}

impl<'a> Cutter<'a> {
    fn new(jpeg: &'a [u8], head: &Header, plan: &'a Plan) -> Cutter<'a> {
        let mut template = SOI.to_vec();
        let mut height_at = 0;
        let last = head.kept.len() - 1;
        for (index, range) in head.kept.iter().enumerate() {
            if index == last && plan.per_band > 1 {
                template.extend_from_slice(&[0xFF, DRI, 0, 4]);
                template.extend_from_slice(&(head.restart_interval as u16).to_be_bytes());
            }
            if range.contains(&head.height_at) {
                height_at = template.len() + head.height_at - range.start;
            }
            template.extend_from_slice(&jpeg[range.clone()]);
        }
        let count = plan.intervals.div_ceil(plan.per_band);
        let mut cutter = Cutter {
            jpeg,
            plan,
            height: head.frame.info.height,
            template,
            height_at,
            bands: Vec::with_capacity(count),
            current: Vec::new(),
        };
        cutter.start_band((jpeg.len() - head.data).div_ceil(count));
        cutter
    }

    /// Starts the next band with the header, room made for `share` bytes of scan data.
    fn start_band(&mut self, share: usize) {
        self.current = Vec::with_capacity(self.template.len() + share + 2);
        self.current.extend_from_slice(&self.template);
    }

    /// Ends the band being built with the scan data in `data`.
    fn finish_band(&mut self, data: Range<usize>) {
        self.current.extend_from_slice(&self.jpeg[data]);
        self.current.extend_from_slice(&EOI);
        let top = self.bands.len() * self.plan.rows;
        let rows = top..(top + self.plan.rows).min(self.height);
        let at = self.height_at;
        self.current[at..at + 2].copy_from_slice(&(rows.len() as u16).to_be_bytes());
        let jpeg = std::mem::take(&mut self.current);
        self.bands.push(Band { jpeg, rows });
    }

    /// Walks the scan data from `data` to EOI, checking each restart marker's number.
    fn cut(mut self, data: usize) -> Result<Vec<Band>, JpegError> {
        let truncated = malformed("scan cut short before EOI");
        let (mut from, mut at, mut seen) = (data, data, 0);
        loop {
            let ff = at
                + find_ff(self.jpeg.get(at..).ok_or(truncated.clone())?)
                    .ok_or(truncated.clone())?;
            let mut code = ff + 1;
            while self.jpeg.get(code) == Some(&0xFF) {
                code += 1;
            }
            let marker = *self.jpeg.get(code).ok_or(truncated.clone())?;
            at = code + 1;
            match marker {
                // A stuffed 0xFF data byte.
                0x00 => continue,
                0xD0..=0xD7 => {
                    if usize::from(marker - RST0) != seen % 8 {
                        return Err(malformed("restart markers out of order"));
                    }
                    seen += 1;
                    if seen >= self.plan.intervals {
                        return Err(malformed("more restart markers than the picture holds"));
                    }
                    self.restart(from..ff, seen);
                    from = at;
                }
                0xD9 if seen + 1 == self.plan.intervals => {
                    self.finish_band(from..ff);
                    return Ok(self.bands);
                }
                0xD9 => return Err(malformed("fewer restart markers than the picture holds")),
                _ => return Err(malformed("a marker inside the scan")),
            }
        }
    }

    /// Restart marker number `seen` (counted from 1) after the scan data in `data`: a band
    /// boundary, or a restart inside the band, renumbered from the band's start.
    fn restart(&mut self, data: Range<usize>, seen: usize) {
        let inside = seen % self.plan.per_band;
        if inside == 0 {
            let share = data.len();
            self.finish_band(data);
            self.start_band(share);
        } else {
            self.current.extend_from_slice(&self.jpeg[data]);
            self.current
                .extend_from_slice(&[0xFF, RST0 + ((inside - 1) % 8) as u8]);
        }
    }
}

/// The first 0xFF in `bytes`, eight bytes at a time (entropy-coded data has few).
fn find_ff(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        // A byte is 0xFF exactly when it is 0x00 after inverting; the classic zero-byte test.
        let inverted = !word;
        let zero = inverted.wrapping_sub(0x0101_0101_0101_0101) & !inverted & 0x8080_8080_8080_8080;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == 0xFF)
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jpeg::tests::psnr;
    use crate::jpeg::{Colorspace, DecodeParams, Decoder, EncodeParams, Encoder, Image};
    use turbojpeg_sys as raw;

    const PARAMS: EncodeParams = EncodeParams {
        quality: 90,
        fast_dct: true,
    };

    /// Gradients with some noise, so every band has real scan data.
    fn picture(width: usize, height: usize, channels: usize) -> Vec<u8> {
        let mut seed = 7u32;
        (0..width * height * channels)
            .map(|i| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let (x, y, c) = (i / channels % width, i / channels / width, i % channels);
                ((x * 2 + y + c * 40) % 220 + (seed >> 28) as usize) as u8
            })
            .collect()
    }

    fn image<'a>(pixels: &'a [u8], width: usize, rows: Range<usize>, name: &str) -> Image<'a> {
        let colorspace = Colorspace::from_name(name).unwrap();
        let pitch = width * colorspace.bytes_per_pixel();
        Image {
            pixels: &pixels[rows.start * pitch..rows.end * pitch],
            width,
            height: rows.len(),
            pitch,
            colorspace,
        }
    }

    /// Each band of `rows` encoded apart, as the sink's encoder threads do.
    fn encode_bands(
        pixels: &[u8],
        width: usize,
        rows: &[Range<usize>],
        name: &str,
    ) -> Vec<Vec<u8>> {
        let mut encoder = Encoder::new().unwrap();
        rows.iter()
            .map(|band| {
                let mut jpeg = Vec::new();
                let band = image(pixels, width, band.clone(), name);
                encoder.encode(band, PARAMS, &mut jpeg).unwrap();
                jpeg
            })
            .collect()
    }

    /// The whole picture encoded by libjpeg-turbo itself, restarting every `blocks` MCUs
    /// (or every `rows` MCU rows), in 4:2:2 (gray for gray) or `subsamp`.
    fn encode_restarting(
        pixels: &[u8],
        (width, height): (usize, usize),
        name: &str,
        (blocks, rows): (i32, i32),
        subsamp: Option<raw::TJSAMP>,
    ) -> Vec<u8> {
        let mut encoder = Encoder::new().unwrap();
        let whole = image(pixels, width, 0..height, name);
        let default = match whole.colorspace.is_gray() {
            true => raw::TJSAMP_TJSAMP_GRAY,
            false => raw::TJSAMP_TJSAMP_422,
        };
        encoder
            .configure(subsamp.unwrap_or(default), PARAMS)
            .unwrap();
        let handle = &mut encoder.handle;
        handle
            .set(raw::TJPARAM_TJPARAM_RESTARTBLOCKS, blocks)
            .unwrap();
        handle.set(raw::TJPARAM_TJPARAM_RESTARTROWS, rows).unwrap();
        handle.compress_allocating(
            whole.pixels,
            (whole.width, whole.pitch, whole.height),
            whole.colorspace.format,
        )
    }

    fn decode(jpeg: &[u8], name: &str) -> (JpegInfo, Vec<u8>) {
        let mut decoder = Decoder::new().unwrap();
        let colorspace = Colorspace::from_name(name).unwrap();
        let info = decoder.info(jpeg).unwrap();
        let pitch = info.width * colorspace.bytes_per_pixel();
        let mut out = vec![0u8; pitch * info.height];
        let params = DecodeParams::default();
        decoder
            .decode(jpeg, info, colorspace, pitch, params, &mut out)
            .unwrap();
        (info, out)
    }

    /// Decodes each band into its rows of one picture.
    fn decode_split(info: JpegInfo, bands: &[Band], name: &str) -> Vec<u8> {
        let mut decoder = Decoder::new().unwrap();
        let colorspace = Colorspace::from_name(name).unwrap();
        let pitch = info.width * colorspace.bytes_per_pixel();
        let mut out = vec![0u8; pitch * info.height];
        for band in bands {
            let band_info = decoder.info(&band.jpeg).unwrap();
            assert_eq!(
                band_info,
                JpegInfo {
                    width: info.width,
                    height: band.rows.len()
                }
            );
            let rows = &mut out[band.rows.start * pitch..band.rows.end * pitch];
            let params = DecodeParams::default();
            decoder
                .decode(&band.jpeg, band_info, colorspace, pitch, params, rows)
                .unwrap();
        }
        out
    }

    fn count_restarts(jpeg: &[u8]) -> usize {
        jpeg.windows(2)
            .filter(|w| w[0] == 0xFF && (0xD0..=0xD7).contains(&w[1]))
            .count()
    }

    #[test]
    fn bands_are_whole_mcu_rows_and_small_pictures_stay_whole() {
        let rows = band_rows(1920, 1080, 2);
        assert_eq!(rows, vec![0..544, 544..1080]);
        let rows = band_rows(1280, 720, 4);
        assert_eq!(rows, vec![0..192, 192..384, 384..576, 576..720]);
        assert_eq!(band_rows(1280, 720, 1), vec![0..720]);
        assert_eq!(band_rows(64, 16, 4), vec![0..16], "one MCU row");
        assert_eq!(
            band_rows(64, 40, 8).len(),
            3,
            "no band under one aligned MCU row"
        );
        // 8K: two bands would need more than 65535 MCUs per restart interval.
        let wide = band_rows(7680, 4320, 2);
        assert!(
            wide.len() > 2 && wide.iter().all(|r| r.len() / 8 * 960 <= 65535),
            "{wide:?}"
        );
        for band in &wide[..wide.len() - 1] {
            assert_eq!(band.len() % BAND_ALIGN, 0);
        }
        // JPEG's widest picture: 48-row bands keep within the interval's 16 bits.
        let widest = band_rows(65535, 1080, 2);
        assert!(widest.iter().all(|r| r.len() <= 48), "{widest:?}");
    }

    #[test]
    fn joined_bands_are_libjpeg_turbos_own_restart_encode_byte_for_byte() {
        for (width, height, name, bands) in [
            (1280, 720, "BGR", 2),
            (1280, 720, "BGRX", 4),
            (641, 479, "RGB", 3),
            (640, 480, "GRAY", 5),
        ] {
            let pixels = picture(
                width,
                height,
                Colorspace::from_name(name).unwrap().bytes_per_pixel(),
            );
            let rows = band_rows(width, height, bands);
            assert!(rows.len() >= 2, "{rows:?}");
            let encoded = encode_bands(&pixels, width, &rows, name);
            let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            let joined = join_bands(&parts).unwrap();
            // 4:2:2 MCUs are 16x8, gray ones 8x8.
            let (mcu_width, mcu_height) = if name == "GRAY" { (8, 8) } else { (16, 8) };
            let interval = rows[0].len() / mcu_height * width.div_ceil(mcu_width);
            let reference =
                encode_restarting(&pixels, (width, height), name, (interval as i32, 0), None);
            assert!(
                joined == reference,
                "{width}x{height} {name} in {} bands",
                rows.len()
            );
            assert_eq!(count_restarts(&joined), rows.len() - 1);
        }
    }

    #[test]
    fn the_joined_jpeg_is_a_baseline_jpeg_of_the_whole_picture() {
        let (width, height) = (1920, 1080);
        let pixels = picture(width, height, 3);
        let rows = band_rows(width, height, 2);
        let encoded = encode_bands(&pixels, width, &rows, "BGR");
        let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let joined = join_bands(&parts).unwrap();
        let head = read_header(&joined).unwrap();
        assert_eq!(head.frame.info, JpegInfo { width, height });
        assert_eq!(
            joined[head.sos - 6..head.sos],
            [0xFF, DRI, 0, 4, 0x1F, 0xE0],
            "8160 MCUs"
        );
        assert!(
            joined.windows(2).any(|w| w == [0xFF, 0xC0]),
            "baseline SOF0"
        );
        let (info, banded) = decode(&joined, "BGR");
        assert_eq!(info, JpegInfo { width, height });
        // The same coefficients as one JPEG encoded whole: the same pixels.
        let mut encoder = Encoder::new().unwrap();
        let mut whole = Vec::new();
        encoder
            .encode(image(&pixels, width, 0..height, "BGR"), PARAMS, &mut whole)
            .unwrap();
        let (_, single) = decode(&whole, "BGR");
        assert!(banded == single);
        assert!(psnr(&pixels, &banded) > 25.0, "{}", psnr(&pixels, &banded));
    }

    #[test]
    fn joining_refuses_bands_that_do_not_belong_together() {
        let pixels = picture(640, 470, 3);
        let rows = band_rows(640, 470, 3);
        assert_eq!(rows, vec![0..160, 160..320, 320..470]);
        let encoded = encode_bands(&pixels, 640, &rows, "BGR");
        let mut other = Vec::new();
        let params = EncodeParams {
            quality: 50,
            fast_dct: true,
        };
        let middle = image(&pixels, 640, rows[1].clone(), "BGR");
        Encoder::new()
            .unwrap()
            .encode(middle, params, &mut other)
            .unwrap();
        let (a, b, c) = (&encoded[0][..], &encoded[1][..], &encoded[2][..]);
        assert!(join_bands(&[a, &other, c]).is_err(), "another quality");
        assert!(join_bands(&[c, a]).is_err(), "a short band first");
        assert!(join_bands(&[a, &b[..b.len() - 1]]).is_err(), "no EOI");
        assert!(join_bands(&[]).is_err());
        assert!(join_bands(&[&a[..100]]).is_err());
        assert_eq!(
            join_bands(&[a]).unwrap(),
            a.to_vec(),
            "one band is the band"
        );
        let joined = join_bands(&[a, b]).unwrap();
        assert!(
            join_bands(&[&joined, c]).is_err(),
            "restart markers of its own"
        );
    }

    #[test]
    fn split_bands_decode_to_the_whole_pictures_pixels() {
        let (width, height) = (1280, 720);
        let pixels = picture(width, height, 3);
        let rows = band_rows(width, height, 4);
        let encoded = encode_bands(&pixels, width, &rows, "BGR");
        let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let joined = join_bands(&parts).unwrap();
        let (_, whole) = decode(&joined, "BGR");
        // Four intervals: three wanted make two bands of two intervals.
        for (wanted, count) in [(2, 2), (3, 2), (4, 4), (9, 4)] {
            let (info, bands) = split_bands(&joined, wanted).unwrap().unwrap();
            assert_eq!(info, JpegInfo { width, height });
            assert_eq!(bands.len(), count);
            assert_eq!(bands.last().unwrap().rows.end, height);
            // 4:2:2 upsamples along rows only: cut at MCU rows, nothing changes.
            assert!(decode_split(info, &bands, "BGR") == whole, "{wanted} bands");
            let bytes: usize = bands.iter().map(|b| b.jpeg.len()).sum();
            assert!(bytes <= joined.len() + bands.len() * (read_header(&joined).unwrap().data + 8));
        }
        // The sink's own bands come back as they were made.
        let (_, bands) = split_bands(&joined, 4).unwrap().unwrap();
        for (band, made) in bands.iter().zip(&encoded) {
            assert_eq!(decode(&band.jpeg, "BGR"), decode(made, "BGR"));
        }
    }

    /// The PSNR of band-by-band decoding against decoding whole, for a 4:2:0 JPEG that
    /// restarts every MCU row (as other encoders write them).
    fn split_psnr_420(wanted: usize) -> f64 {
        let (width, height) = (1280, 720);
        let pixels = picture(width, height, 3);
        let subsamp = Some(raw::TJSAMP_TJSAMP_420);
        let jpeg = encode_restarting(&pixels, (width, height), "BGR", (0, 1), subsamp);
        let (_, whole) = decode(&jpeg, "BGR");
        let (info, bands) = split_bands(&jpeg, wanted).unwrap().unwrap();
        assert_eq!(bands.len(), wanted);
        // Several intervals per band: the restart markers inside are renumbered.
        assert_eq!(count_restarts(&bands[0].jpeg), 45usize.div_ceil(wanted) - 1);
        psnr(&decode_split(info, &bands, "BGR"), &whole)
    }

    #[test]
    fn bands_of_a_420_jpeg_differ_from_a_whole_decode_only_at_their_edges() {
        for wanted in [2, 3] {
            let db = split_psnr_420(wanted);
            // Fancy upsampling sees no chroma row across a band edge: one pixel row on
            // either side of each edge differs slightly.
            println!("4:2:0 in {wanted} bands: {db:.1} dB against a whole decode");
            assert!(db > 50.0, "{wanted} bands: {db:.1} dB");
        }
    }

    #[test]
    fn jpegs_without_row_restarts_are_left_whole() {
        let (width, height) = (640, 480);
        let pixels = picture(width, height, 3);
        let mut encoder = Encoder::new().unwrap();
        let mut plain = Vec::new();
        encoder
            .encode(image(&pixels, width, 0..height, "BGR"), PARAMS, &mut plain)
            .unwrap();
        assert_eq!(split_bands(&plain, 4), Ok(None), "no DRI (vidgear's)");
        let odd = encode_restarting(&pixels, (width, height), "BGR", (7, 0), None);
        assert_eq!(
            split_bands(&odd, 4),
            Ok(None),
            "intervals are not whole MCU rows"
        );
        let row = encode_restarting(&pixels, (width, height), "BGR", (0, 1), None);
        assert_eq!(split_bands(&row, 1), Ok(None), "one band wanted");
        assert!(split_bands(&row, 2).unwrap().is_some());
        assert_eq!(split_bands(b"", 2), Ok(None));
        assert_eq!(split_bands(b"\xFF\xD8\xFF", 2), Ok(None));
    }

    /// A JPEG of 60 MCU rows restarting every row, and where its restart markers are.
    fn row_restarts() -> (Vec<u8>, Vec<usize>) {
        let pixels = picture(640, 480, 3);
        let jpeg = encode_restarting(&pixels, (640, 480), "BGR", (0, 1), None);
        let at = (0..jpeg.len() - 1)
            .filter(|&i| jpeg[i] == 0xFF && (0xD0..=0xD7).contains(&jpeg[i + 1]))
            .collect();
        (jpeg, at)
    }

    #[test]
    fn restart_markers_out_of_order_missing_or_extra_are_errors() {
        let (jpeg, at) = row_restarts();
        assert_eq!(at.len(), 59);
        let mut swapped = jpeg.clone();
        swapped[at[3] + 1] = 0xD5;
        assert_eq!(
            split_bands(&swapped, 2),
            Err(malformed("restart markers out of order"))
        );
        let mut missing = jpeg.clone();
        missing.drain(at[10]..at[10] + 2);
        assert!(split_bands(&missing, 2).is_err(), "one marker gone");
        let mut extra = jpeg[..jpeg.len() - 2].to_vec();
        extra.extend_from_slice(&[0xFF, 0xD3, 0x12, 0xFF, 0xD9]);
        assert!(split_bands(&extra, 2).is_err(), "one marker too many");
        let truncated = &jpeg[..at[40]];
        assert_eq!(
            split_bands(truncated, 2),
            Err(malformed("scan cut short before EOI"))
        );
        let mut early_eoi = jpeg[..at[20]].to_vec();
        early_eoi.extend_from_slice(&EOI);
        assert!(split_bands(&early_eoi, 2).is_err());
        let mut stray = jpeg.clone();
        stray[at[5] + 1] = 0xC4;
        assert_eq!(
            split_bands(&stray, 2),
            Err(malformed("a marker inside the scan"))
        );
    }

    #[test]
    fn every_prefix_and_flipped_byte_is_handled_without_panic() {
        let (jpeg, _) = row_restarts();
        let head = read_header(&jpeg).unwrap();
        for end in 0..jpeg.len() {
            let cut = split_bands(&jpeg[..end], 3);
            // Past the scan header, a prefix is a truncated scan; before, no JPEG for bands.
            assert!(
                cut.is_err() == (end >= head.data),
                "prefix of {end}: {cut:?}"
            );
        }
        let step = (jpeg.len() / 3000).max(1);
        for at in (0..jpeg.len()).step_by(step).chain(0..head.data) {
            for flip in [0x01, 0x80, 0xFF] {
                let mut bad = jpeg.clone();
                bad[at] ^= flip;
                if let Ok(Some((info, bands))) = split_bands(&bad, 4) {
                    assert!(bands.len() <= 4 && bands.last().unwrap().rows.end == info.height);
                    let bytes: usize = bands.iter().map(|b| b.jpeg.len()).sum();
                    assert!(bytes <= bad.len() + bands.len() * (MAX_BAND_HEADER + 16));
                }
            }
        }
    }

    #[test]
    fn find_ff_finds_the_first_ff_at_every_offset() {
        for len in 0..40 {
            for at in 0..=len {
                let mut bytes = vec![0x7Fu8; len];
                if at < len {
                    bytes[at] = 0xFF;
                    if at + 3 < len {
                        bytes[at + 3] = 0xFF;
                    }
                }
                assert_eq!(find_ff(&bytes), (at < len).then_some(at), "{len} {at}");
            }
        }
        assert_eq!(find_ff(&[0xFE, 0x00, 0x01, 0xFF]), Some(3));
    }
}
