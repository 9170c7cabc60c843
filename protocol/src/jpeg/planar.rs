// SPDX-License-Identifier: MPL-2.0
//! JPEG straight into planar YUV (GStreamer's I420, Y42B and Y444): libjpeg-turbo leaves out
//! the colour conversion, so this costs less than a packed decode. A JPEG whose own chroma
//! subsampling differs from the one asked for (vidgear sends 4:2:2) is decoded into its own
//! planes first and its chroma resampled with a box filter.

use super::{to_int, to_size, DecodeParams, Decoder, JpegError, JpegInfo};
use crate::pixels::copy_rows;
use std::ffi::c_int;
use turbojpeg_sys as raw;

/// The chroma subsampling of a planar picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsampling {
    /// One chroma sample per 2x2 pixels (I420).
    S420,
    /// One chroma sample per 2x1 pixels (Y42B).
    S422,
    /// Full-resolution chroma (Y444).
    S444,
}

impl Subsampling {
    pub(super) fn tj(self) -> c_int {
        (match self {
            Subsampling::S420 => raw::TJSAMP_TJSAMP_420,
            Subsampling::S422 => raw::TJSAMP_TJSAMP_422,
            Subsampling::S444 => raw::TJSAMP_TJSAMP_444,
        }) as c_int
    }

    /// The size of each chroma plane, rounded up as GStreamer and libjpeg-turbo do.
    pub fn chroma_size(self, width: usize, height: usize) -> (usize, usize) {
        match self {
            Subsampling::S420 => (width.div_ceil(2), height.div_ceil(2)),
            Subsampling::S422 => (width.div_ceil(2), height),
            Subsampling::S444 => (width, height),
        }
    }
}

/// One plane to fill: `bytes` from its first row to the end of the buffer, rows `stride`
/// bytes apart.
pub struct PlaneMut<'a> {
    pub bytes: &'a mut [u8],
    pub stride: usize,
}

/// One decoded plane in memory of our own (kept across frames by the decoder).
#[derive(Default)]
pub(super) struct Plane {
    bytes: Vec<u8>,
    width: usize,
    height: usize,
}

/// Whether `len` bytes hold `height` rows of `width` bytes, `stride` apart.
pub(super) fn holds(len: usize, width: usize, height: usize, stride: usize) -> bool {
    let needed = stride
        .checked_mul(height.saturating_sub(1))
        .and_then(|n| n.checked_add(width));
    stride >= width && needed.is_some_and(|n| n <= len)
}

/// libjpeg-turbo's size of plane `component` for `subsamp` (padded to whole MCUs).
pub(super) fn tj_plane_size(
    component: c_int,
    info: JpegInfo,
    subsamp: c_int,
) -> Option<(usize, usize)> {
    let (w, h) = (
        c_int::try_from(info.width).ok()?,
        c_int::try_from(info.height).ok()?,
    );
    // SAFETY: pure functions of their arguments; 0 means out of bounds.
    let (pw, ph) = unsafe {
        (
            raw::tj3YUVPlaneWidth(component, w, subsamp),
            raw::tj3YUVPlaneHeight(component, h, subsamp),
        )
    };
    match (usize::try_from(pw), usize::try_from(ph)) {
        (Ok(pw), Ok(ph)) if pw > 0 && ph > 0 => Some((pw, ph)),
        _ => None,
    }
}

impl Decoder {
    /// Decodes into Y, U and V planes with `wanted` subsampling; the size must be what
    /// `info` said. Each plane is checked to hold the picture before anything is written.
    pub fn decode_planar(
        &mut self,
        jpeg: &[u8],
        info: JpegInfo,
        wanted: Subsampling,
        params: DecodeParams,
        mut planes: [PlaneMut<'_>; 3],
    ) -> Result<(), JpegError> {
        let header = self.info(jpeg)?;
        if header != info {
            return Err(JpegError::NotThisJpeg { info, header });
        }
        let (cw, ch) = wanted.chroma_size(info.width, info.height);
        let sizes = [(info.width, info.height), (cw, ch), (cw, ch)];
        for (plane, (w, h)) in planes.iter().zip(sizes) {
            if !holds(plane.bytes.len(), w, h, plane.stride) {
                return Err(JpegError::ShortOutput {
                    bytes: plane.bytes.len(),
                    needed: plane.stride.saturating_mul(h),
                });
            }
        }
        let pixels = to_int(info.width.saturating_mul(info.height), "picture")?;
        self.handle.set(raw::TJPARAM_TJPARAM_MAXPIXELS, pixels)?;
        self.handle
            .set(raw::TJPARAM_TJPARAM_FASTDCT, c_int::from(params.fast_dct))?;
        let colorspace = self.handle.get(raw::TJPARAM_TJPARAM_COLORSPACE);
        if colorspace != raw::TJCS_TJCS_YCbCr as c_int && colorspace != raw::TJCS_TJCS_GRAY as c_int
        {
            // RGB, CMYK or YCCK data: its planes are not Y, U and V.
            return Err(JpegError::Malformed(
                "not a YCbCr JPEG: cannot decode into planar YUV",
            ));
        }
        let native = self.handle.get(raw::TJPARAM_TJPARAM_SUBSAMP);
        if native == wanted.tj() && self.fits_directly(&planes, info, native) {
            return self.decode_into(jpeg, &mut planes);
        }
        let y_direct = self.decode_own(jpeg, info, native, &mut planes[0])?;
        let short = || JpegError::Malformed("plane smaller than the picture");
        if !y_direct {
            let y = self.scratch.first().ok_or_else(short)?;
            let to = &mut planes[0];
            copy_rows(
                &y.bytes,
                y.width,
                to.bytes,
                to.stride,
                info.width,
                info.height,
            )
            .ok_or_else(short)?;
        }
        let gray = native == raw::TJSAMP_TJSAMP_GRAY as c_int;
        for (index, plane) in planes.iter_mut().enumerate().skip(1) {
            match gray {
                // Gray JPEG: neutral chroma.
                true => fill_rows(plane, cw, ch, 128),
                false => resample(self.scratch.get(index).ok_or_else(short)?, plane, cw, ch)?,
            }
        }
        Ok(())
    }

    /// Whether libjpeg-turbo's padded planes fit the caller's.
    fn fits_directly(&self, planes: &[PlaneMut<'_>; 3], info: JpegInfo, native: c_int) -> bool {
        planes.iter().enumerate().all(|(component, plane)| {
            tj_plane_size(component as c_int, info, native)
                .is_some_and(|(w, h)| holds(plane.bytes.len(), w, h, plane.stride))
        })
    }

    fn decode_into(
        &mut self,
        jpeg: &[u8],
        planes: &mut [PlaneMut<'_>; 3],
    ) -> Result<(), JpegError> {
        let mut pointers = [
            planes[0].bytes.as_mut_ptr(),
            planes[1].bytes.as_mut_ptr(),
            planes[2].bytes.as_mut_ptr(),
        ];
        let mut strides = [
            to_int(planes[0].stride, "stride")?,
            to_int(planes[1].stride, "stride")?,
            to_int(planes[2].stride, "stride")?,
        ];
        // SAFETY: each plane holds libjpeg-turbo's padded plane at its stride (checked by
        // `fits_directly`); MAXPIXELS and the header check keep the picture that size.
        unsafe { self.decompress_planes(jpeg, &mut pointers, &mut strides) }
    }

    /// # Safety
    /// Each non-null pointer must lead to libjpeg-turbo's plane for this JPEG at its stride.
    unsafe fn decompress_planes(
        &mut self,
        jpeg: &[u8],
        pointers: &mut [*mut u8; 3],
        strides: &mut [c_int; 3],
    ) -> Result<(), JpegError> {
        let len = to_size(jpeg.len())?;
        // SAFETY: as the caller promised.
        let rc = unsafe {
            raw::tj3DecompressToYUVPlanes8(
                self.handle.0,
                jpeg.as_ptr(),
                len,
                pointers.as_mut_ptr(),
                strides.as_mut_ptr(),
            )
        };
        match rc {
            0 => Ok(()),
            _ => Err(self.handle.error()),
        }
    }

    /// Decodes in the JPEG's own subsampling (only Y for gray): Y straight into the
    /// caller's plane when libjpeg-turbo's padded plane fits there (returns true), the rest
    /// into scratch planes reused across frames.
    fn decode_own(
        &mut self,
        jpeg: &[u8],
        info: JpegInfo,
        native: c_int,
        y: &mut PlaneMut<'_>,
    ) -> Result<bool, JpegError> {
        let count = match native == raw::TJSAMP_TJSAMP_GRAY as c_int {
            true => 1,
            false => 3,
        };
        let y_direct = tj_plane_size(0, info, native)
            .is_some_and(|(w, h)| holds(y.bytes.len(), w, h, y.stride));
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize_with(3, Plane::default);
        let mut pointers = [std::ptr::null_mut(); 3];
        let mut strides = [0 as c_int; 3];
        for (component, plane) in scratch.iter_mut().enumerate().take(count) {
            let (width, height) = tj_plane_size(component as c_int, info, native)
                .ok_or(JpegError::Malformed("unsupported chroma subsampling"))?;
            if component == 0 && y_direct {
                pointers[0] = y.bytes.as_mut_ptr();
                strides[0] = to_int(y.stride, "stride")?;
                continue;
            }
            plane.bytes.clear();
            plane.bytes.resize(width.saturating_mul(height), 0);
            (plane.width, plane.height) = (width, height);
            pointers[component] = plane.bytes.as_mut_ptr();
            strides[component] = to_int(width, "stride")?;
        }
        // SAFETY: each plane holds libjpeg-turbo's own plane size at its stride (the
        // caller's Y checked by `holds`, the others allocated so); a gray JPEG has only Y
        // (the other pointers stay null, as libjpeg-turbo wants). Moving `scratch` back
        // below does not move the planes' heap memory.
        let decoded = unsafe { self.decompress_planes(jpeg, &mut pointers, &mut strides) };
        self.scratch = scratch;
        decoded.map(|()| y_direct)
    }
}

fn fill_rows(to: &mut PlaneMut<'_>, width: usize, height: usize, value: u8) {
    for y in 0..height {
        if let Some(row) = to.bytes.get_mut(y * to.stride..y * to.stride + width) {
            row.fill(value);
        }
    }
}

/// Box-filters a chroma plane to `width` x `height` (each output sample averages the
/// source samples it covers; upsampling repeats them).
fn resample(
    from: &Plane,
    to: &mut PlaneMut<'_>,
    width: usize,
    height: usize,
) -> Result<(), JpegError> {
    let short = JpegError::Malformed("plane smaller than the picture");
    // Whole factors (2:1, 1:2, 4:1, …), so samples stay sited as libjpeg-turbo and
    // GStreamer site them; the last span is clamped at the edge.
    let span = |i: usize, to_len: usize, from_len: usize| {
        if from_len >= to_len {
            let factor = ((from_len + to_len / 2) / to_len).max(1);
            let start = (i * factor).min(from_len - 1);
            (start, (start + factor).min(from_len))
        } else {
            let factor = ((to_len + from_len / 2) / from_len).max(1);
            let start = (i / factor).min(from_len - 1);
            (start, start + 1)
        }
    };
    for y in 0..height {
        let (y0, y1) = span(y, height, from.height);
        let dst = to
            .bytes
            .get_mut(y * to.stride..y * to.stride + width)
            .ok_or(short.clone())?;
        for (x, out) in dst.iter_mut().enumerate() {
            let (x0, x1) = span(x, width, from.width);
            let mut sum = 0u32;
            for row in y0..y1 {
                let samples = from
                    .bytes
                    .get(row * from.width + x0..row * from.width + x1)
                    .ok_or(short.clone())?;
                sum += samples.iter().map(|&s| u32::from(s)).sum::<u32>();
            }
            let count = ((y1 - y0) * (x1 - x0)) as u32;
            *out = ((sum + count / 2) / count.max(1)) as u8;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Colorspace, EncodeParams, Encoder, Image};
    use super::*;

    fn picture(width: usize, height: usize) -> Vec<u8> {
        (0..height)
            .flat_map(|y| {
                (0..width).flat_map(move |x| [(x * 3) as u8, (y * 2) as u8, ((x + y) * 2) as u8])
            })
            .collect()
    }

    fn jpeg(width: usize, height: usize) -> Vec<u8> {
        let pixels = picture(width, height);
        let mut encoder = Encoder::new().unwrap();
        let image = Image {
            pixels: &pixels,
            width,
            height,
            pitch: width * 3,
            colorspace: Colorspace::from_name("BGR").unwrap(),
        };
        let params = EncodeParams {
            quality: 95,
            fast_dct: false,
        };
        let mut out = Vec::new();
        encoder.encode(image, params, &mut out).unwrap();
        out
    }

    /// Decodes into one buffer laid out like GStreamer's (strides rounded to 4).
    fn decode(jpeg: &[u8], wanted: Subsampling, width: usize, height: usize) -> Vec<Vec<u8>> {
        let (cw, ch) = wanted.chroma_size(width, height);
        let (ys, cs) = (width.next_multiple_of(4), cw.next_multiple_of(4));
        let mut y = vec![0u8; ys * height];
        let mut u = vec![0u8; cs * ch];
        let mut v = vec![0u8; cs * ch];
        let mut decoder = Decoder::new().unwrap();
        let info = decoder.info(jpeg).unwrap();
        let planes = [
            PlaneMut {
                bytes: &mut y,
                stride: ys,
            },
            PlaneMut {
                bytes: &mut u,
                stride: cs,
            },
            PlaneMut {
                bytes: &mut v,
                stride: cs,
            },
        ];
        decoder
            .decode_planar(jpeg, info, wanted, DecodeParams::default(), planes)
            .unwrap();
        vec![y, u, v]
    }

    #[test]
    fn every_subsampling_agrees_with_the_native_planes() {
        // Our encoder writes 4:2:2, like vidgear: Y42B is direct, the others resampled.
        let (w, h) = (37, 21);
        let data = jpeg(w, h);
        let native = decode(&data, Subsampling::S422, w, h);
        for wanted in [Subsampling::S420, Subsampling::S444] {
            let planes = decode(&data, wanted, w, h);
            let (ys, cs) = (
                w.next_multiple_of(4),
                wanted.chroma_size(w, h).0.next_multiple_of(4),
            );
            for row in 0..h {
                assert_eq!(
                    planes[0][row * ys..row * ys + w],
                    native[0][row * ys..row * ys + w]
                );
            }
            let (nw, ns) = (w.div_ceil(2), w.div_ceil(2).next_multiple_of(4));
            // A chroma sample at the top-left matches the native one it came from.
            let expect = match wanted {
                Subsampling::S420 => {
                    (u32::from(native[1][0]) + u32::from(native[1][ns])).div_ceil(2)
                }
                _ => u32::from(native[1][0]),
            };
            assert_eq!(u32::from(planes[1][0]), expect, "{wanted:?}");
            assert!(cs >= 1 && nw >= 1);
        }
    }

    #[test]
    fn short_planes_are_refused_before_decoding() {
        let data = jpeg(16, 16);
        let mut decoder = Decoder::new().unwrap();
        let info = decoder.info(&data).unwrap();
        let (mut y, mut u, mut v) = (vec![0u8; 16 * 15], vec![0u8; 64], vec![0u8; 64]);
        let planes = [
            PlaneMut {
                bytes: &mut y,
                stride: 16,
            },
            PlaneMut {
                bytes: &mut u,
                stride: 8,
            },
            PlaneMut {
                bytes: &mut v,
                stride: 8,
            },
        ];
        let result = decoder.decode_planar(
            &data,
            info,
            Subsampling::S420,
            DecodeParams::default(),
            planes,
        );
        assert!(
            matches!(result, Err(JpegError::ShortOutput { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn a_gray_jpeg_gets_its_luma_and_neutral_chroma() {
        let (w, h) = (21, 13);
        let pixels: Vec<u8> = (0..w * h).map(|i| (i * 7 % 251) as u8).collect();
        let gray = Colorspace::from_name("GRAY").unwrap();
        let image = Image {
            pixels: &pixels,
            width: w,
            height: h,
            pitch: w,
            colorspace: gray,
        };
        let params = EncodeParams {
            quality: 95,
            fast_dct: false,
        };
        let mut data = Vec::new();
        Encoder::new()
            .unwrap()
            .encode(image, params, &mut data)
            .unwrap();
        let mut decoder = Decoder::new().unwrap();
        let info = decoder.info(&data).unwrap();
        let mut packed = vec![0u8; w * h];
        decoder
            .decode(&data, info, gray, w, DecodeParams::default(), &mut packed)
            .unwrap();
        let planes = decode(&data, Subsampling::S420, w, h);
        let ys = w.next_multiple_of(4);
        for row in 0..h {
            assert_eq!(
                planes[0][row * ys..row * ys + w],
                packed[row * w..(row + 1) * w]
            );
        }
        let (cw, ch) = Subsampling::S420.chroma_size(w, h);
        let cs = cw.next_multiple_of(4);
        for plane in &planes[1..] {
            assert!((0..ch).all(|r| plane[r * cs..r * cs + cw].iter().all(|&v| v == 128)));
        }
    }

    #[test]
    fn box_filter_averages_and_repeats() {
        let from = Plane {
            bytes: vec![10, 20, 30, 40],
            width: 2,
            height: 2,
        };
        let mut out = [0u8; 1];
        resample(
            &from,
            &mut PlaneMut {
                bytes: &mut out,
                stride: 1,
            },
            1,
            1,
        )
        .unwrap();
        assert_eq!(out, [25]);
        let mut up = [0u8; 16];
        resample(
            &from,
            &mut PlaneMut {
                bytes: &mut up,
                stride: 4,
            },
            4,
            4,
        )
        .unwrap();
        assert_eq!(&up[..4], &[10, 10, 20, 20]);
        assert_eq!(&up[12..], &[30, 30, 40, 40]);
    }
}
