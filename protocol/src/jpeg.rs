// SPDX-License-Identifier: MPL-2.0
//! Inline JPEG with libjpeg-turbo 3 (the library vidgear's simplejpeg wraps), built from
//! source with its SIMD code and linked statically. The TurboJPEG 3 handle API is used
//! directly: the safe wrapper has no fast-DCT or fast-upsampling settings. Encoder and
//! decoder are created once per stream and reused.
//!
//! Network input is untrusted: before a decoder (or its caller) allocates for a picture,
//! [`check_plausible`] decides from the header and the compressed size whether the data can
//! hold the picture it claims, so a 600-byte "9000x9000" JPEG costs nothing.

use std::ffi::{c_int, c_ulong, CStr};
use turbojpeg_sys as raw;

mod bands;
mod planar;
mod row_simd;
mod to_jfif;
mod yuv_encode;
pub use bands::{band_rows, join_bands, split_bands, Band, MAX_BANDS, MIN_BAND_PIXELS};
pub use planar::{PlaneMut, Subsampling};
pub use to_jfif::{RgbMap, Siting, ToJfif};
pub use yuv_encode::{Component, SharedYuv, YuvImage, YuvLayout, YuvScratch, YuvSource};

/// The colorspace names vidgear (simplejpeg) uses, with libjpeg-turbo's pixel format.
const COLORSPACES: &[(&str, raw::TJPF, usize)] = &[
    ("RGB", raw::TJPF_TJPF_RGB, 3),
    ("BGR", raw::TJPF_TJPF_BGR, 3),
    ("RGBX", raw::TJPF_TJPF_RGBX, 4),
    ("BGRX", raw::TJPF_TJPF_BGRX, 4),
    ("XBGR", raw::TJPF_TJPF_XBGR, 4),
    ("XRGB", raw::TJPF_TJPF_XRGB, 4),
    ("GRAY", raw::TJPF_TJPF_GRAY, 1),
    ("RGBA", raw::TJPF_TJPF_RGBA, 4),
    ("BGRA", raw::TJPF_TJPF_BGRA, 4),
    ("ABGR", raw::TJPF_TJPF_ABGR, 4),
    ("ARGB", raw::TJPF_TJPF_ARGB, 4),
    ("CMYK", raw::TJPF_TJPF_CMYK, 4),
];

/// Progressive scans a decoder accepts: real encoders write about ten; thousands of tiny
/// scans would make a small JPEG cost seconds of CPU (libjpeg-turbo's fuzzers use 500).
const MAX_SCANS: c_int = 500;

/// A pixel layout libjpeg-turbo reads or writes, named as in vidgear's `colorspace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colorspace {
    name: &'static str,
    format: raw::TJPF,
    bytes_per_pixel: usize,
}

impl Colorspace {
    pub fn from_name(name: &str) -> Option<Colorspace> {
        COLORSPACES
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(name))
            .map(|&(name, format, bytes_per_pixel)| Colorspace {
                name,
                format,
                bytes_per_pixel,
            })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn bytes_per_pixel(&self) -> usize {
        self.bytes_per_pixel
    }

    pub fn is_gray(&self) -> bool {
        self.format == raw::TJPF_TJPF_GRAY
    }
}

/// Why a JPEG could not be encoded, read or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    /// libjpeg-turbo could not create a handle (out of memory).
    #[error("libjpeg-turbo could not create a handle")]
    NoHandle,
    /// libjpeg-turbo's own message for a failed call.
    #[error("{0}")]
    Library(String),
    /// A size that does not fit libjpeg-turbo's `int` arguments.
    #[error("{what} {value} is too large")]
    TooLarge { what: &'static str, value: usize },
    /// The pixels handed to the encoder are fewer than the image needs.
    #[error("{bytes} bytes do not hold {width}x{height} {colorspace} pixels")]
    ShortImage {
        bytes: usize,
        width: usize,
        height: usize,
        colorspace: &'static str,
    },
    /// The output buffer handed to the decoder is smaller than the picture.
    #[error("output buffer of {bytes} bytes is too small for {needed}")]
    ShortOutput { bytes: usize, needed: usize },
    /// The marker structure is not a JPEG's (or not one libjpeg-turbo decodes).
    #[error("not a decodable JPEG: {0}")]
    Malformed(&'static str),
    /// The header claims more picture than the compressed data can hold: a JPEG bomb.
    #[error("a {bytes}-byte JPEG cannot hold {width}x{height}")]
    Implausible {
        bytes: usize,
        width: usize,
        height: usize,
    },
    /// `decode` was given the size of another JPEG than the one it decodes.
    #[error(
        "decode was told {}x{} but the JPEG is {}x{}",
        .info.width, .info.height, .header.width, .header.height
    )]
    NotThisJpeg { info: JpegInfo, header: JpegInfo },
}

/// Owns a TurboJPEG 3 handle.
struct Handle(raw::tjhandle);

// SAFETY: a TurboJPEG handle may be used from any thread, one at a time (&mut self).
unsafe impl Send for Handle {}

impl Handle {
    fn new(init: raw::TJINIT) -> Result<Handle, JpegError> {
        // SAFETY: plain constructor; a null return is handled.
        let handle = unsafe { raw::tj3Init(init as c_int) };
        if handle.is_null() {
            Err(JpegError::NoHandle)
        } else {
            Ok(Handle(handle))
        }
    }

    fn error(&self) -> JpegError {
        // SAFETY: the handle is valid; tj3GetErrorStr returns a per-handle C string.
        let text = unsafe { CStr::from_ptr(raw::tj3GetErrorStr(self.0)) };
        JpegError::Library(text.to_string_lossy().into_owned())
    }

    /// Sets one TJPARAM; the values we pass are all within range.
    fn set(&mut self, param: raw::TJPARAM, value: c_int) -> Result<(), JpegError> {
        // SAFETY: the handle is valid.
        match unsafe { raw::tj3Set(self.0, param as c_int, value) } {
            0 => Ok(()),
            _ => Err(self.error()),
        }
    }

    fn get(&self, param: raw::TJPARAM) -> c_int {
        // SAFETY: the handle is valid.
        unsafe { raw::tj3Get(self.0, param as c_int) }
    }
}

/// Tests make JPEGs with parameters our encoder never sets (restart intervals, progressive,
/// arithmetic), into a buffer libjpeg-turbo allocates.
#[cfg(test)]
impl Handle {
    fn compress_allocating(
        &mut self,
        pixels: &[u8],
        (width, pitch, height): (usize, usize, usize),
        format: raw::TJPF,
    ) -> Vec<u8> {
        self.set(raw::TJPARAM_TJPARAM_NOREALLOC, 0).unwrap();
        let (mut buf, mut size) = (std::ptr::null_mut(), 0);
        // SAFETY: `pixels` holds `height` rows of `pitch` bytes (0: packed); libjpeg-turbo
        // allocates `buf`, freed below.
        let rc = unsafe {
            raw::tj3Compress8(
                self.0,
                pixels.as_ptr(),
                width as c_int,
                pitch as c_int,
                height as c_int,
                format,
                &mut buf,
                &mut size,
            )
        };
        assert_eq!(rc, 0, "{}", self.error());
        // SAFETY: libjpeg-turbo wrote `size` bytes at `buf`.
        let jpeg = unsafe { std::slice::from_raw_parts(buf, size as usize) }.to_vec();
        // SAFETY: allocated by tj3Compress8.
        unsafe { raw::tj3Free(buf.cast()) };
        jpeg
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle is valid and dropped once.
        unsafe { raw::tj3Destroy(self.0) };
    }
}

fn to_int(value: usize, what: &'static str) -> Result<c_int, JpegError> {
    c_int::try_from(value).map_err(|_| JpegError::TooLarge { what, value })
}

/// A length as libjpeg-turbo's `size_t` (an unsigned long in the bindings).
fn to_size(value: usize) -> Result<c_ulong, JpegError> {
    c_ulong::try_from(value).map_err(|_| JpegError::TooLarge {
        what: "JPEG",
        value,
    })
}

/// Raw pixels to encode: `height` rows of `pitch` bytes in `colorspace`'s layout.
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    pub pixels: &'a [u8],
    pub width: usize,
    pub height: usize,
    pub pitch: usize,
    pub colorspace: Colorspace,
}

impl Image<'_> {
    /// Whether `pixels` holds `height` rows of `pitch` bytes, the last one at least a row.
    fn is_complete(&self) -> bool {
        let row = self.width.saturating_mul(self.colorspace.bytes_per_pixel);
        let needed = self
            .pitch
            .checked_mul(self.height.saturating_sub(1))
            .and_then(|n| n.checked_add(row));
        self.width > 0
            && self.height > 0
            && self.pitch >= row
            && needed.is_some_and(|n| self.pixels.len() >= n)
    }
}

/// Decoder speed-ups the sender's header asks for (`dct`, `ups`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeParams {
    pub fast_dct: bool,
    pub fast_upsample: bool,
}

/// Settings for one encoded frame.
#[derive(Debug, Clone, Copy)]
pub struct EncodeParams {
    pub quality: u32,
    pub fast_dct: bool,
}

pub struct Encoder {
    handle: Handle,
}

impl Encoder {
    pub fn new() -> Result<Encoder, JpegError> {
        let mut handle = Handle::new(raw::TJINIT_TJINIT_COMPRESS)?;
        // We hand libjpeg-turbo a Rust buffer of the worst-case size: it must never
        // reallocate it with its own allocator.
        handle.set(raw::TJPARAM_TJPARAM_NOREALLOC, 1)?;
        Ok(Encoder { handle })
    }

    /// Sets quality, fast DCT and the chroma subsampling of the next picture.
    fn configure(&mut self, subsamp: raw::TJSAMP, params: EncodeParams) -> Result<(), JpegError> {
        let quality = params.quality.clamp(1, 100) as c_int;
        self.handle.set(raw::TJPARAM_TJPARAM_QUALITY, quality)?;
        self.handle.set(raw::TJPARAM_TJPARAM_SUBSAMP, subsamp)?;
        self.handle
            .set(raw::TJPARAM_TJPARAM_FASTDCT, c_int::from(params.fast_dct))
    }

    /// Encodes `height` rows of `pitch` bytes into `out` (resized as needed, its capacity
    /// reused across frames): 4:2:2 for colour, as vidgear does.
    pub fn encode(
        &mut self,
        image: Image<'_>,
        params: EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<(), JpegError> {
        if !image.is_complete() {
            return Err(JpegError::ShortImage {
                bytes: image.pixels.len(),
                width: image.width,
                height: image.height,
                colorspace: image.colorspace.name,
            });
        }
        let (w, h, p) = (
            to_int(image.width, "width")?,
            to_int(image.height, "height")?,
            to_int(image.pitch, "pitch")?,
        );
        let subsamp = match image.colorspace.is_gray() {
            true => raw::TJSAMP_TJSAMP_GRAY,
            false => raw::TJSAMP_TJSAMP_422,
        };
        self.configure(subsamp, params)?;
        self.compress_into(w, h, subsamp, out, |handle, jpeg, size| {
            // SAFETY: `pixels` holds `height` rows of `pitch` bytes (checked above).
            unsafe {
                raw::tj3Compress8(
                    handle,
                    image.pixels.as_ptr(),
                    w,
                    p,
                    h,
                    image.colorspace.format,
                    jpeg,
                    size,
                )
            }
        })
    }

    /// Runs `compress` (one tj3Compress* call) with `out`'s memory as its destination: room
    /// for libjpeg-turbo's worst case for the picture, which NOREALLOC keeps it inside.
    fn compress_into<F>(
        &mut self,
        width: c_int,
        height: c_int,
        subsamp: raw::TJSAMP,
        out: &mut Vec<u8>,
        compress: F,
    ) -> Result<(), JpegError>
    where
        F: FnOnce(raw::tjhandle, *mut *mut u8, *mut c_ulong) -> c_int,
    {
        // SAFETY: pure size computation; 0 means out of bounds.
        let bound = unsafe { raw::tj3JPEGBufSize(width, height, subsamp) };
        let bound = usize::try_from(bound).unwrap_or(0);
        if bound == 0 {
            return Err(JpegError::TooLarge {
                what: "image",
                value: (width as usize).saturating_mul(height as usize),
            });
        }
        // Spare capacity, not zero-filled: libjpeg-turbo writes the bytes we keep.
        out.clear();
        out.reserve(bound);
        let mut ptr = out.as_mut_ptr();
        let mut size = to_size(bound)?;
        let rc = compress(self.handle.0, &mut ptr, &mut size);
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if rc != 0 || size > bound || ptr != out.as_mut_ptr() {
            return Err(self.handle.error());
        }
        // SAFETY: libjpeg-turbo wrote `size` <= capacity bytes at the start of `out`.
        unsafe { out.set_len(size) };
        Ok(())
    }
}

/// What a JPEG's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo {
    pub width: usize,
    pub height: usize,
}

/// The parts of a JPEG's frame header (SOFn) the plausibility check needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    info: JpegInfo,
    /// The fewest bits of scan data a Huffman-coded JPEG of this frame can have; none
    /// for arithmetic coding.
    least_bits: u64,
    /// The width and height of one MCU of an interleaved scan, in pixels.
    mcu: (usize, usize),
    /// The number of components.
    components: usize,
}

fn be16(data: &[u8], at: usize) -> Option<usize> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(usize::from(u16::from_be_bytes([bytes[0], bytes[1]])))
}

/// The next marker at or after `pos` and the offset after it; skips stray bytes and fill
/// bytes as libjpeg does.
fn next_marker(jpeg: &[u8], pos: usize) -> Option<(u8, usize)> {
    let mut at = pos;
    loop {
        while *jpeg.get(at)? != 0xFF {
            at += 1;
        }
        while *jpeg.get(at)? == 0xFF {
            at += 1;
        }
        let marker = *jpeg.get(at)?;
        at += 1;
        if marker != 0 {
            return Some((marker, at));
        }
    }
}

fn is_frame_marker(marker: u8) -> bool {
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// Reads a SOFn body: size and, per component, how many 8x8 blocks it codes.
fn parse_frame(marker: u8, body: &[u8]) -> Result<FrameHeader, JpegError> {
    let malformed = JpegError::Malformed;
    let (height, width) = (be16(body, 1), be16(body, 3));
    let (Some(height), Some(width), Some(&count)) = (height, width, body.get(5)) else {
        return Err(malformed("truncated frame header"));
    };
    if width == 0 || height == 0 {
        return Err(malformed("zero or deferred (DNL) picture size"));
    }
    let factors: Vec<(u64, u64)> = body
        .get(6..6 + 3 * usize::from(count))
        .ok_or(malformed("truncated frame header"))?
        .chunks_exact(3)
        .map(|c| (u64::from(c[1] >> 4), u64::from(c[1] & 15)))
        .collect();
    if factors.is_empty()
        || factors
            .iter()
            .any(|&(h, v)| !(1..=4).contains(&h) || !(1..=4).contains(&v))
    {
        return Err(malformed("bad components or sampling factors"));
    }
    let h_max = factors.iter().map(|f| f.0).max().unwrap_or(1);
    let v_max = factors.iter().map(|f| f.1).max().unwrap_or(1);
    let (w, h) = (width as u64, height as u64);
    // Blocks per component as libjpeg counts them (jdiv_round_up(size * factor, max * 8)).
    let blocks: u64 = factors
        .iter()
        .map(|&(hf, vf)| (w * hf).div_ceil(h_max * 8) * (h * vf).div_ceil(v_max * 8))
        .sum();
    // Huffman codes are at least a bit long. A sequential scan codes a DC symbol and at
    // least an EOB for every block of every component; a progressive JPEG's first DC
    // scans code a symbol for every block; lossless coding one per sample (blocks: a
    // loose floor). Arithmetic coding has no floor (see check_plausible).
    let least_bits = match marker {
        0xC0 | 0xC1 | 0xC5 => 2 * blocks,
        0xC2 | 0xC3 | 0xC6 | 0xC7 => blocks,
        _ => 0,
    };
    Ok(FrameHeader {
        info: JpegInfo { width, height },
        least_bits,
        mcu: (8 * h_max as usize, 8 * v_max as usize),
        components: factors.len(),
    })
}

/// Walks the markers from SOI to the first scan as libjpeg does; returns the frame header
/// and where the first scan's data begins.
fn read_frame_header(jpeg: &[u8]) -> Result<(FrameHeader, usize), JpegError> {
    let malformed = JpegError::Malformed;
    if jpeg.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return Err(malformed("no SOI marker"));
    }
    let mut pos = 2;
    let mut frame = None;
    loop {
        let (marker, after) = next_marker(jpeg, pos).ok_or(malformed("no scan"))?;
        match marker {
            // Markers without a length: restart markers and TEM.
            0x01 | 0xD0..=0xD7 => {
                pos = after;
                continue;
            }
            0xD8 => return Err(malformed("two SOI markers")),
            0xD9 => return Err(malformed("no scan before EOI")),
            _ => {}
        }
        let length = be16(jpeg, after).filter(|&l| l >= 2);
        let end = length.and_then(|l| after.checked_add(l));
        let body = end
            .and_then(|end| jpeg.get(after + 2..end))
            .ok_or(malformed("truncated marker segment"))?;
        if marker == 0xDA {
            let frame = frame.ok_or(malformed("scan before frame header"))?;
            return Ok((frame, after + 2 + body.len()));
        }
        if is_frame_marker(marker) {
            if frame.is_some() {
                return Err(malformed("two frame headers"));
            }
            frame = Some(parse_frame(marker, body)?);
        }
        pos = after + 2 + body.len();
    }
}

/// Decides from the header and the compressed size whether `jpeg` can hold the picture it
/// claims, before anything is allocated for it. Every 8x8 block of every component needs
/// at least two bits of Huffman-coded data in a sequential JPEG (DC and EOB) and one in a
/// progressive JPEG's first DC scans, so a JPEG with fewer bits after its first SOS marker
/// is refused: a bomb or a truncated frame.
///
/// Arithmetic coding has no such floor: a real flat 8192x8192 arithmetic-coded JPEG is
/// 125 bytes with 5 bytes of scan data. No NetGear sender writes one (simplejpeg, OpenCV
/// and jpegenc use Huffman codes); for those the caller's frame-size limit is the bound.
pub fn check_plausible(jpeg: &[u8]) -> Result<JpegInfo, JpegError> {
    let (frame, scan_data) = read_frame_header(jpeg)?;
    let scan_bits = (jpeg.len().saturating_sub(scan_data) as u64).saturating_mul(8);
    if scan_bits < frame.least_bits {
        return Err(JpegError::Implausible {
            bytes: jpeg.len(),
            width: frame.info.width,
            height: frame.info.height,
        });
    }
    Ok(frame.info)
}

pub struct Decoder {
    handle: Handle,
    /// Planar decoding's planes in the JPEG's own subsampling, reused across frames.
    scratch: Vec<planar::Plane>,
}

impl Decoder {
    pub fn new() -> Result<Decoder, JpegError> {
        let mut handle = Handle::new(raw::TJINIT_TJINIT_DECOMPRESS)?;
        handle.set(raw::TJPARAM_TJPARAM_SCANLIMIT, MAX_SCANS)?;
        Ok(Decoder {
            handle,
            scratch: Vec::new(),
        })
    }

    /// Reads the size from a JPEG's header without decoding it; refuses a JPEG whose data
    /// cannot hold the picture it claims (see [`check_plausible`]).
    pub fn info(&mut self, jpeg: &[u8]) -> Result<JpegInfo, JpegError> {
        let claimed = check_plausible(jpeg)?;
        let len = to_size(jpeg.len())?;
        // SAFETY: reads `jpeg.len()` bytes of `jpeg`.
        let rc = unsafe { raw::tj3DecompressHeader(self.handle.0, jpeg.as_ptr(), len) };
        if rc != 0 {
            return Err(self.handle.error());
        }
        // SAFETY: the handle is valid.
        let (width, height) = unsafe {
            (
                raw::tj3Get(self.handle.0, raw::TJPARAM_TJPARAM_JPEGWIDTH as c_int),
                raw::tj3Get(self.handle.0, raw::TJPARAM_TJPARAM_JPEGHEIGHT as c_int),
            )
        };
        let read = JpegInfo {
            width: usize::try_from(width).unwrap_or(0),
            height: usize::try_from(height).unwrap_or(0),
        };
        if read != claimed {
            return Err(JpegError::Malformed("frame header read two ways"));
        }
        Ok(read)
    }

    /// Decodes into `out` (rows of `pitch` bytes); the size must be what `info` said.
    pub fn decode(
        &mut self,
        jpeg: &[u8],
        info: JpegInfo,
        colorspace: Colorspace,
        pitch: usize,
        params: DecodeParams,
        out: &mut [u8],
    ) -> Result<(), JpegError> {
        // libjpeg-turbo decodes the size in the data, not `info`: they must agree.
        let header = self.info(jpeg)?;
        if header != info {
            return Err(JpegError::NotThisJpeg { info, header });
        }
        let row = info.width.saturating_mul(colorspace.bytes_per_pixel);
        let needed = pitch
            .checked_mul(info.height - 1)
            .and_then(|n| n.checked_add(row))
            .filter(|_| pitch >= row);
        if needed.is_none_or(|n| out.len() < n) {
            return Err(JpegError::ShortOutput {
                bytes: out.len(),
                needed: needed.unwrap_or(usize::MAX),
            });
        }
        let pixels = to_int(info.width.saturating_mul(info.height), "picture")?;
        let len = to_size(jpeg.len())?;
        self.handle.set(raw::TJPARAM_TJPARAM_MAXPIXELS, pixels)?;
        self.handle
            .set(raw::TJPARAM_TJPARAM_FASTDCT, c_int::from(params.fast_dct))?;
        self.handle.set(
            raw::TJPARAM_TJPARAM_FASTUPSAMPLE,
            c_int::from(params.fast_upsample),
        )?;
        // SAFETY: `out` holds `height` rows of `pitch` bytes (checked above) and the JPEG
        // is `info.width` x `info.height` (MAXPIXELS and the check above keep it so).
        let rc = unsafe {
            raw::tj3Decompress8(
                self.handle.0,
                jpeg.as_ptr(),
                len,
                out.as_mut_ptr(),
                to_int(pitch, "pitch")?,
                colorspace.format,
            )
        };
        if rc != 0 {
            return Err(self.handle.error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smooth(width: usize, height: usize, channels: usize) -> Vec<u8> {
        (0..height)
            .flat_map(|y| {
                (0..width)
                    .flat_map(move |x| (0..channels).map(move |c| ((x + y + c * 40) % 200) as u8))
            })
            .collect()
    }

    /// Peak signal-to-noise ratio of two equal-length byte buffers, in dB (infinite when
    /// equal); every JPEG test of this crate judges quality by it.
    pub(super) fn psnr(a: &[u8], b: &[u8]) -> f64 {
        let sum: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum();
        let mse = sum / a.len() as f64;
        if mse == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (255.0f64 * 255.0 / mse).log10()
        }
    }

    #[test]
    fn round_trips_colour_and_gray_with_padded_rows() {
        let mut enc = Encoder::new().unwrap();
        let mut dec = Decoder::new().unwrap();
        for &(name, _, channels) in COLORSPACES {
            let colorspace = Colorspace::from_name(name).unwrap();
            let (width, height) = (61, 17);
            let packed = smooth(width, height, channels);
            // Rows padded to a multiple of 4, as GStreamer lays them out.
            let pitch = (width * channels).div_ceil(4) * 4;
            let mut padded = vec![0u8; pitch * height];
            for (s, d) in packed
                .chunks(width * channels)
                .zip(padded.chunks_mut(pitch))
            {
                d[..width * channels].copy_from_slice(s);
            }
            let image = Image {
                pixels: &padded,
                width,
                height,
                pitch,
                colorspace,
            };
            let mut jpeg = Vec::new();
            enc.encode(
                image,
                EncodeParams {
                    quality: 90,
                    fast_dct: true,
                },
                &mut jpeg,
            )
            .unwrap();
            assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
            let info = dec.info(&jpeg).unwrap();
            assert_eq!(info, JpegInfo { width, height });
            let mut out = vec![0u8; width * channels * height];
            dec.decode(
                &jpeg,
                info,
                colorspace,
                width * channels,
                DecodeParams::default(),
                &mut out,
            )
            .unwrap();
            // The X and A bytes of four-byte layouts are not image content.
            let (a, b): (Vec<u8>, Vec<u8>) = packed
                .iter()
                .zip(&out)
                .enumerate()
                .filter(|(i, _)| !matches!(name.as_bytes().get(i % channels), Some(b'X' | b'A')))
                .map(|(_, (x, y))| (*x, *y))
                .unzip();
            assert!(psnr(&a, &b) > 35.0, "{name} PSNR {}", psnr(&a, &b));
        }
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_crash() {
        let mut dec = Decoder::new().unwrap();
        assert!(dec.info(b"").is_err());
        assert!(dec.info(b"\xFF\xD8 not a jpeg at all").is_err());
        let mut enc = Encoder::new().unwrap();
        let colorspace = Colorspace::from_name("BGR").unwrap();
        let pixels = smooth(32, 32, 3);
        let image = Image {
            pixels: &pixels,
            width: 32,
            height: 32,
            pitch: 96,
            colorspace,
        };
        let params = EncodeParams {
            quality: 90,
            fast_dct: false,
        };
        let mut jpeg = Vec::new();
        enc.encode(image, params, &mut jpeg).unwrap();
        let info = dec.info(&jpeg).unwrap();
        let mut out = vec![0u8; 32 * 32 * 3];
        // libjpeg-turbo may warn rather than fail on truncation; it must not crash.
        let _ = dec.decode(
            &jpeg[..jpeg.len() / 3],
            info,
            colorspace,
            96,
            DecodeParams::default(),
            &mut out,
        );
        let short = Image {
            pixels: &[0u8; 10],
            ..image
        };
        assert!(enc.encode(short, params, &mut jpeg).is_err());
        assert!(Colorspace::from_name("YUV").is_none());
        assert_eq!(Colorspace::from_name("bgra").unwrap().name(), "BGRA");
    }

    /// Encoder settings our `Encoder` does not expose, as other senders may use them.
    #[derive(Debug, Clone, Copy)]
    struct Variant {
        subsamp: raw::TJSAMP,
        progressive: bool,
        arithmetic: bool,
        optimize: bool,
    }

    fn encode_variant(
        pixels: &[u8],
        width: usize,
        height: usize,
        quality: i32,
        v: Variant,
    ) -> Vec<u8> {
        let gray = v.subsamp == raw::TJSAMP_TJSAMP_GRAY;
        let format = if gray {
            raw::TJPF_TJPF_GRAY
        } else {
            raw::TJPF_TJPF_BGR
        };
        let mut handle = Handle::new(raw::TJINIT_TJINIT_COMPRESS).unwrap();
        handle.set(raw::TJPARAM_TJPARAM_QUALITY, quality).unwrap();
        handle.set(raw::TJPARAM_TJPARAM_SUBSAMP, v.subsamp).unwrap();
        handle
            .set(raw::TJPARAM_TJPARAM_PROGRESSIVE, v.progressive.into())
            .unwrap();
        handle
            .set(raw::TJPARAM_TJPARAM_ARITHMETIC, v.arithmetic.into())
            .unwrap();
        handle
            .set(raw::TJPARAM_TJPARAM_OPTIMIZE, v.optimize.into())
            .unwrap();
        handle.compress_allocating(pixels, (width, 0, height), format)
    }

    /// A real 16x16 JPEG with its frame header patched to claim 9000x9000.
    fn bomb(progressive: bool) -> Vec<u8> {
        let v = Variant {
            subsamp: raw::TJSAMP_TJSAMP_422,
            progressive,
            arithmetic: false,
            optimize: false,
        };
        let mut jpeg = encode_variant(&smooth(16, 16, 3), 16, 16, 90, v);
        let sof = if progressive { 0xC2 } else { 0xC0 };
        let at = jpeg.windows(2).position(|w| w == [0xFF, sof]).unwrap();
        jpeg[at + 5..at + 7].copy_from_slice(&9000u16.to_be_bytes());
        jpeg[at + 7..at + 9].copy_from_slice(&9000u16.to_be_bytes());
        jpeg
    }

    #[test]
    fn links_libjpeg_turbo_3_with_its_limits() {
        // tj3* and TJPARAM_SCANLIMIT exist from libjpeg-turbo 3.0 on.
        let dec = Decoder::new().unwrap();
        assert_eq!(dec.handle.get(raw::TJPARAM_TJPARAM_SCANLIMIT), MAX_SCANS);
    }

    #[test]
    fn bomb_is_refused_from_its_header_before_any_decoding() {
        let mut dec = Decoder::new().unwrap();
        let colorspace = Colorspace::from_name("BGR").unwrap();
        for progressive in [false, true] {
            let jpeg = bomb(progressive);
            let err = dec.info(&jpeg).unwrap_err();
            assert_eq!(
                err,
                JpegError::Implausible {
                    bytes: jpeg.len(),
                    width: 9000,
                    height: 9000
                }
            );
            assert_eq!(
                err.to_string(),
                format!("a {}-byte JPEG cannot hold 9000x9000", jpeg.len())
            );
            // decode refuses it before looking at the (far too small) output buffer.
            let info = JpegInfo {
                width: 9000,
                height: 9000,
            };
            let params = DecodeParams::default();
            let mut out = [0u8; 16];
            let err = dec.decode(&jpeg, info, colorspace, 27000, params, &mut out);
            assert!(matches!(err, Err(JpegError::Implausible { .. })), "{err:?}");
        }
    }

    #[test]
    fn decode_refuses_the_size_of_another_jpeg() {
        let mut dec = Decoder::new().unwrap();
        let v = Variant {
            subsamp: raw::TJSAMP_TJSAMP_GRAY,
            progressive: false,
            arithmetic: false,
            optimize: false,
        };
        let jpeg = encode_variant(&smooth(64, 16, 1), 64, 16, 90, v);
        let gray = Colorspace::from_name("GRAY").unwrap();
        let (info, mut out) = (
            JpegInfo {
                width: 16,
                height: 64,
            },
            vec![0u8; 16 * 64],
        );
        let err = dec.decode(&jpeg, info, gray, 16, DecodeParams::default(), &mut out);
        assert!(matches!(err, Err(JpegError::NotThisJpeg { .. })), "{err:?}");
    }

    /// Every encoder setting, quality and content at one size and subsampling decodes
    /// its header without being called implausible.
    fn assert_plausible_in_every_variant(
        dec: &mut Decoder,
        width: usize,
        height: usize,
        subsamp: raw::TJSAMP,
    ) {
        let channels = if subsamp == raw::TJSAMP_TJSAMP_GRAY {
            1
        } else {
            3
        };
        // Flat pictures compress best: the hardest case for the floor.
        let flat = vec![128u8; width * height * channels];
        let smooth = smooth(width, height, channels);
        for (progressive, arithmetic, optimize) in [
            (false, false, false),
            (false, false, true),
            (true, false, true),
            (false, true, false),
            (true, true, false),
        ] {
            let v = Variant {
                subsamp,
                progressive,
                arithmetic,
                optimize,
            };
            for quality in [10, 30, 50, 75, 90, 100] {
                for pixels in [&flat, &smooth] {
                    let jpeg = encode_variant(pixels, width, height, quality, v);
                    let info = dec.info(&jpeg);
                    let expected = Ok(JpegInfo { width, height });
                    assert_eq!(info, expected, "{width}x{height} q{quality} {v:?}");
                }
            }
        }
    }

    #[test]
    fn real_jpegs_of_every_kind_are_plausible() {
        let sizes = [
            (16, 16),
            (17, 9),
            (8, 8),
            (1, 1),
            (33, 250),
            (320, 240),
            (641, 479),
            (1000, 7),
            (1280, 720),
            (1920, 1080),
        ];
        let mut dec = Decoder::new().unwrap();
        for (width, height) in sizes {
            for subsamp in [
                raw::TJSAMP_TJSAMP_GRAY,
                raw::TJSAMP_TJSAMP_444,
                raw::TJSAMP_TJSAMP_422,
                raw::TJSAMP_TJSAMP_420,
            ] {
                assert_plausible_in_every_variant(&mut dec, width, height, subsamp);
            }
        }
    }

    #[test]
    fn prefixes_and_flipped_bytes_never_panic() {
        let mut dec = Decoder::new().unwrap();
        let v = Variant {
            subsamp: raw::TJSAMP_TJSAMP_420,
            progressive: true,
            arithmetic: false,
            optimize: true,
        };
        let jpeg = encode_variant(&smooth(40, 24, 3), 40, 24, 75, v);
        for end in 0..jpeg.len() {
            let _ = dec.info(&jpeg[..end]);
        }
        for at in 0..jpeg.len().min(700) {
            let mut bad = jpeg.clone();
            bad[at] ^= 0xA5;
            if let Ok(info) = dec.info(&bad) {
                let mut out = vec![0u8; info.width * info.height * 3];
                let bgr = Colorspace::from_name("BGR").unwrap();
                let _ = dec.decode(
                    &bad,
                    info,
                    bgr,
                    info.width * 3,
                    DecodeParams::default(),
                    &mut out,
                );
            }
        }
    }
}
