//! Inline JPEG with the system libjpeg-turbo (the library vidgear's simplejpeg wraps).
//! The TurboJPEG handle API is used directly because the safe wrapper has no fast-DCT or
//! fast-upsampling flags. Encoder and decoder are created once per stream and reused.

use std::ffi::{c_int, c_ulong};
use std::fmt;
use turbojpeg::raw;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegError(pub String);

impl fmt::Display for JpegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JpegError {}

/// Owns a TurboJPEG handle.
struct Handle(raw::tjhandle);

// SAFETY: a TurboJPEG handle may be used from any thread, one at a time (&mut self).
unsafe impl Send for Handle {}

impl Handle {
    fn new(handle: raw::tjhandle) -> Result<Handle, JpegError> {
        if handle.is_null() {
            Err(JpegError("libjpeg-turbo could not create a handle".into()))
        } else {
            Ok(Handle(handle))
        }
    }

    fn error(&self) -> JpegError {
        // SAFETY: the handle is valid; tjGetErrorStr2 returns a static or per-handle C string.
        let text = unsafe { std::ffi::CStr::from_ptr(raw::tjGetErrorStr2(self.0)) };
        JpegError(text.to_string_lossy().into_owned())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle is valid and dropped once.
        unsafe { raw::tjDestroy(self.0) };
    }
}

fn to_int(v: usize, what: &str) -> Result<c_int, JpegError> {
    c_int::try_from(v).map_err(|_| JpegError(format!("{what} {v} is too large")))
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
        // SAFETY: plain constructor.
        Ok(Encoder {
            handle: Handle::new(unsafe { raw::tjInitCompress() })?,
        })
    }

    /// Encodes `height` rows of `pitch` bytes into `out` (resized as needed, its capacity
    /// reused across frames): 4:2:2 for colour, as vidgear does.
    pub fn encode(
        &mut self,
        image: Image<'_>,
        params: EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<(), JpegError> {
        let Image {
            pixels,
            width,
            height,
            pitch,
            colorspace,
        } = image;
        let row = width * colorspace.bytes_per_pixel;
        if width == 0 || height == 0 || pitch < row || pixels.len() < pitch * (height - 1) + row {
            return Err(JpegError(format!(
                "{} bytes do not hold {width}x{height} {} pixels",
                pixels.len(),
                colorspace.name
            )));
        }
        let subsamp = if colorspace.is_gray() {
            raw::TJSAMP_TJSAMP_GRAY
        } else {
            raw::TJSAMP_TJSAMP_422
        };
        let (w, h, p) = (
            to_int(width, "width")?,
            to_int(height, "height")?,
            to_int(pitch, "pitch")?,
        );
        // SAFETY: pure size computation.
        let bound = unsafe { raw::tjBufSize(w, h, subsamp as c_int) } as usize;
        out.resize(bound, 0);
        let mut ptr = out.as_mut_ptr();
        let mut size = bound as c_ulong;
        let mut flags = raw::TJFLAG_NOREALLOC as c_int;
        if params.fast_dct {
            flags |= raw::TJFLAG_FASTDCT as c_int;
        }
        // SAFETY: `pixels` holds `height` rows of `pitch` bytes (checked above); `out` has
        // tjBufSize bytes and NOREALLOC keeps libjpeg-turbo inside them.
        let rc = unsafe {
            raw::tjCompress2(
                self.handle.0,
                pixels.as_ptr(),
                w,
                p,
                h,
                colorspace.format as c_int,
                &mut ptr,
                &mut size,
                subsamp as c_int,
                params.quality.clamp(1, 100) as c_int,
                flags,
            )
        };
        if rc != 0 {
            out.clear();
            return Err(self.handle.error());
        }
        out.truncate(size as usize);
        Ok(())
    }
}

/// What a JPEG's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo {
    pub width: usize,
    pub height: usize,
}

pub struct Decoder {
    handle: Handle,
}

impl Decoder {
    pub fn new() -> Result<Decoder, JpegError> {
        // SAFETY: plain constructor.
        Ok(Decoder {
            handle: Handle::new(unsafe { raw::tjInitDecompress() })?,
        })
    }

    /// Reads the size from a JPEG's header without decoding it.
    pub fn info(&mut self, jpeg: &[u8]) -> Result<JpegInfo, JpegError> {
        let (mut w, mut h, mut subsamp, mut cs) = (0, 0, 0, 0);
        let len = c_ulong::try_from(jpeg.len()).map_err(|_| JpegError("JPEG too large".into()))?;
        // SAFETY: reads `len` bytes of `jpeg`; writes four ints we own.
        let rc = unsafe {
            raw::tjDecompressHeader3(
                self.handle.0,
                jpeg.as_ptr(),
                len,
                &mut w,
                &mut h,
                &mut subsamp,
                &mut cs,
            )
        };
        if rc != 0 || w <= 0 || h <= 0 {
            return Err(self.handle.error());
        }
        Ok(JpegInfo {
            width: w as usize,
            height: h as usize,
        })
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
        let row = info.width * colorspace.bytes_per_pixel;
        if pitch < row || out.len() < pitch * (info.height - 1) + row {
            return Err(JpegError("output buffer too small".into()));
        }
        let len = c_ulong::try_from(jpeg.len()).map_err(|_| JpegError("JPEG too large".into()))?;
        let mut flags = 0;
        if params.fast_dct {
            flags |= raw::TJFLAG_FASTDCT as c_int;
        }
        if params.fast_upsample {
            flags |= raw::TJFLAG_FASTUPSAMPLE as c_int;
        }
        // SAFETY: `out` holds `height` rows of `pitch` bytes (checked above).
        let rc = unsafe {
            raw::tjDecompress2(
                self.handle.0,
                jpeg.as_ptr(),
                len,
                out.as_mut_ptr(),
                to_int(info.width, "width")?,
                to_int(pitch, "pitch")?,
                to_int(info.height, "height")?,
                colorspace.format as c_int,
                flags,
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

    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        let sum: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum();
        let mse = sum / a.len() as f64;
        10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
    }

    #[test]
    fn round_trips_colour_and_gray_with_padded_rows() {
        let mut enc = Encoder::new().unwrap();
        let mut dec = Decoder::new().unwrap();
        for (name, channels) in [("BGR", 3), ("GRAY", 1), ("RGBX", 4)] {
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
            // The X bytes of padded layouts are not image content.
            let (a, b): (Vec<u8>, Vec<u8>) = packed
                .iter()
                .zip(&out)
                .enumerate()
                .filter(|(i, _)| channels != 4 || i % 4 != 3)
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
}
