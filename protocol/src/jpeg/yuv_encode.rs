// SPDX-License-Identifier: MPL-2.0
//! JPEG straight from Y'CbCr planes (libjpeg-turbo's YUV-plane compression): no colour
//! conversion, and the chroma subsampling the input has. A plane libjpeg-turbo can read as
//! it is (a plane of its own, whole MCUs, already JFIF's colours) is handed over in place;
//! packed (YUY2) and semi-planar (NV12) chroma is split, and other colorimetries are mapped
//! to JFIF's ([`ToJfif`]), into scratch planes kept across frames.

use super::planar::{holds, tj_plane_size};
use super::row_simd as simd;
use super::to_jfif::spread;
use super::{to_int, EncodeParams, Encoder, JpegError, JpegInfo, Siting, Subsampling, ToJfif};
use std::ffi::c_int;
use std::sync::Arc;
use turbojpeg_sys as raw;

/// Where one component's samples lie: in plane `plane`, the first at byte `offset` of each
/// row, then one every `step` bytes (1: a plane of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    pub plane: usize,
    pub offset: usize,
    pub step: usize,
}

/// How a Y'CbCr picture lays out Y, Cb and Cr, its chroma subsampling, and where its
/// chroma samples sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YuvLayout {
    pub components: [Component; 3],
    pub subsampling: Subsampling,
    pub siting: Siting,
}

/// One Y'CbCr picture: up to three planes (unused ones empty), rows `strides` apart.
#[derive(Debug, Clone, Copy)]
pub struct YuvImage<'a> {
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
    pub width: usize,
    pub height: usize,
    pub layout: YuvLayout,
    pub to_jfif: ToJfif,
}

/// A Y'CbCr picture lent to an encoder thread (a mapped GStreamer frame).
pub trait YuvSource: Send + Sync {
    fn image(&self) -> YuvImage<'_>;
}

pub type SharedYuv = Arc<dyn YuvSource>;

/// A component's size, and the size of libjpeg-turbo's plane for it (whole MCUs).
#[derive(Debug, Clone, Copy)]
struct Extent {
    width: usize,
    height: usize,
    tj_width: usize,
    tj_height: usize,
}

/// Planes of our own and the rows they are made from, kept across frames.
#[derive(Default)]
pub struct YuvScratch {
    planes: [Vec<u8>; 3],
    rows: [Vec<u8>; 3],
    /// Co-sited chroma rows re-sited for JPEG.
    centred: [Vec<u8>; 2],
    /// What a chroma row adds to luma, per chroma sample and spread over the luma row.
    gain: Vec<i16>,
    bias: Vec<i16>,
}

/// Horizontal and vertical luma samples per chroma sample.
fn factors(subsampling: Subsampling) -> (usize, usize) {
    match subsampling {
        Subsampling::S420 => (2, 2),
        Subsampling::S422 => (2, 1),
        Subsampling::S444 => (1, 1),
    }
}

/// Byte `shift / 8` of each `word`-byte group of `row` into `out`: the whole vectors by
/// `row_simd`, the rest here (byte by byte: the row may end inside its last word).
fn gather_words(row: &[u8], word: usize, shift: u32, out: &mut [u8]) {
    let done = match word {
        2 => simd::gather_u16(row, shift, out),
        _ => simd::gather_u32(row, shift, out),
    };
    let offset = (shift / 8) as usize;
    for (i, o) in out.iter_mut().enumerate().skip(done) {
        *o = row.get(i * word + offset).copied().unwrap_or(0);
    }
}

/// Component samples `offset` bytes into each `step`-byte group of `row`, into `out`.
fn gather(row: &[u8], comp: Component, out: &mut [u8]) {
    match (comp.step, comp.offset) {
        (1, 0) => out.iter_mut().zip(row).for_each(|(o, s)| *o = *s),
        (2 | 4, offset) if offset < comp.step => {
            gather_words(row, comp.step, 8 * offset as u32, out)
        }
        (step, offset) => {
            let samples = row.iter().skip(offset).step_by(step.max(1));
            out.iter_mut().zip(samples).for_each(|(o, s)| *o = *s);
        }
    }
}

/// Component `c`'s `width` samples of row `row`: the plane's own bytes, or gathered into
/// `into`.
fn gathered<'a>(
    image: &'a YuvImage,
    c: usize,
    row: usize,
    width: usize,
    into: &'a mut Vec<u8>,
) -> &'a [u8] {
    let comp = image.layout.components[c];
    let bytes = image.row(c, row);
    if comp.step == 1 {
        let samples = bytes.get(comp.offset..).unwrap_or(&[]);
        return samples.get(..width).unwrap_or(samples);
    }
    into.resize(width, 0);
    gather(bytes, comp, into);
    into
}

/// Repeats a row's last sample over libjpeg-turbo's padding.
fn pad_row(row: &mut [u8], width: usize) {
    if let Some(&last) = row.get(..width).and_then(<[u8]>::last) {
        row[width..].fill(last);
    }
}

impl YuvImage<'_> {
    fn extents(&self) -> Result<[Extent; 3], JpegError> {
        let info = JpegInfo {
            width: self.width,
            height: self.height,
        };
        let subsamp = self.layout.subsampling.tj();
        let (cw, ch) = self.layout.subsampling.chroma_size(self.width, self.height);
        let too_large = JpegError::TooLarge {
            what: "image",
            value: self.width.saturating_mul(self.height),
        };
        let extent = |component: usize, (width, height): (usize, usize)| {
            let (tj_width, tj_height) = tj_plane_size(component as c_int, info, subsamp)?;
            Some(Extent {
                width,
                height,
                tj_width,
                tj_height,
            })
        };
        let sizes = [(self.width, self.height), (cw, ch), (cw, ch)];
        let [y, cb, cr] = [0, 1, 2].map(|c| extent(c, sizes[c]));
        Ok([
            y.ok_or(too_large.clone())?,
            cb.ok_or(too_large.clone())?,
            cr.ok_or(too_large)?,
        ])
    }

    /// Whether component `c`'s plane holds all its samples: checked before any is read.
    fn holds_component(&self, c: usize, extent: Extent) -> bool {
        let comp = self.layout.components[c];
        let (Some(plane), Some(&stride)) =
            (self.planes.get(comp.plane), self.strides.get(comp.plane))
        else {
            return false;
        };
        let span = (extent.width - 1)
            .checked_mul(comp.step)
            .and_then(|n| n.checked_add(comp.offset + 1));
        comp.step > 0 && span.is_some_and(|span| holds(plane.len(), span, extent.height, stride))
    }

    fn short(&self, c: usize) -> JpegError {
        let plane = self.layout.components[c].plane;
        JpegError::ShortImage {
            bytes: self.planes.get(plane).map_or(0, |p| p.len()),
            width: self.width,
            height: self.height,
            colorspace: "Y'CbCr",
        }
    }

    /// Row `row` of component `c`'s plane, from its first byte.
    fn row(&self, c: usize, row: usize) -> &[u8] {
        let plane = self.layout.components[c].plane;
        self.planes[plane]
            .get(row * self.strides[plane]..)
            .unwrap_or(&[])
    }

    /// Co-sited chroma between luma pairs: JPEG decoders take it to sit between them.
    fn resites_chroma(&self) -> bool {
        self.layout.siting == Siting::Cosited && factors(self.layout.subsampling).0 == 2
    }

    /// Whether libjpeg-turbo can read component `c` where it is.
    fn in_place(&self, c: usize, extent: Extent) -> bool {
        let comp = self.layout.components[c];
        self.to_jfif.is_identity()
            && (c == 0 || !self.resites_chroma())
            && (comp.step, comp.offset) == (1, 0)
            && (extent.width, extent.height) == (extent.tj_width, extent.tj_height)
            && c_int::try_from(self.strides[comp.plane]).is_ok()
    }
}

impl YuvScratch {
    /// Copies (and splits) the components libjpeg-turbo cannot read in place; the colours
    /// are already JFIF's.
    fn copy(&mut self, image: &YuvImage, extents: &[Extent; 3], in_place: [bool; 3]) {
        for (c, extent) in extents.iter().enumerate() {
            if in_place[c] {
                continue;
            }
            let comp = image.layout.components[c];
            let plane = &mut self.planes[c];
            plane.resize(extent.tj_width * extent.tj_height, 0);
            for (y, out) in plane.chunks_exact_mut(extent.tj_width).enumerate() {
                let row = image.row(c, y.min(extent.height - 1));
                gather(row, comp, &mut out[..extent.width]);
                pad_row(out, extent.width);
            }
        }
    }

    /// Maps every component to JFIF's colours and sites: chroma row by chroma row, then the
    /// luma rows that chroma row serves (their bias comes from it) unless luma is read in
    /// place.
    fn map(&mut self, image: &YuvImage, extents: &[Extent; 3], luma_in_place: bool) {
        let [luma, chroma, _] = *extents;
        let (per_chroma, rows_per_chroma) = factors(image.layout.subsampling);
        let planes = self
            .planes
            .iter_mut()
            .zip(extents)
            .skip(usize::from(luma_in_place));
        for (plane, extent) in planes {
            plane.resize(extent.tj_width * extent.tj_height, 0);
        }
        let map = image.to_jfif;
        self.gain.clear();
        self.gain.resize(chroma.width, 0);
        self.bias.clear();
        self.bias.resize(luma.width, 0);
        let [y_plane, cb_plane, cr_plane] = &mut self.planes;
        let [y_row, cb_row, cr_row] = &mut self.rows;
        let [cb_centred, cr_centred] = &mut self.centred;
        let resite = image.resites_chroma();
        for row in [&mut *cb_centred, &mut *cr_centred] {
            row.resize(chroma.width, 0);
        }
        for cy in 0..chroma.tj_height {
            let source = cy.min(chroma.height - 1);
            let cb = gathered(image, 1, source, chroma.width, cb_row);
            let cr = gathered(image, 2, source, chroma.width, cr_row);
            let at = cy * chroma.tj_width..(cy + 1) * chroma.tj_width;
            let (cb_out, cr_out) = (&mut cb_plane[at.clone()], &mut cr_plane[at]);
            // Luma takes chroma as videoconvert sites it, from the samples as they are.
            let gain = (!luma_in_place && map.luma_needs_chroma()).then_some(&mut self.gain[..]);
            match resite {
                true => {
                    let centred = [&mut cb_centred[..], &mut cr_centred[..]];
                    map.resited_chroma_row([cb, cr], centred, [cb_out, cr_out], gain);
                }
                false => {
                    map.chroma_row(cb, cr, cb_out, cr_out);
                    if let Some(gain) = gain {
                        map.luma_gain(cb, cr, gain);
                    }
                }
            }
            pad_row(cb_out, chroma.width);
            pad_row(cr_out, chroma.width);
            if luma_in_place {
                continue;
            }
            if map.luma_needs_chroma() && per_chroma == 2 {
                spread(&self.gain, image.layout.siting, &mut self.bias);
            }
            let bias = match per_chroma {
                2 => &self.bias,
                _ => &self.gain,
            };
            let rows = cy * rows_per_chroma..((cy + 1) * rows_per_chroma).min(luma.tj_height);
            for ly in rows {
                let y = gathered(image, 0, ly.min(luma.height - 1), luma.width, y_row);
                let out = &mut y_plane[ly * luma.tj_width..(ly + 1) * luma.tj_width];
                map.luma_row(y, bias, out);
                pad_row(out, luma.width);
            }
        }
    }
}

impl Encoder {
    /// Encodes a Y'CbCr picture into `out` (its capacity reused across frames) in the
    /// picture's own chroma subsampling, its colours mapped to JFIF's on the way.
    pub fn encode_yuv(
        &mut self,
        image: &YuvImage<'_>,
        params: EncodeParams,
        scratch: &mut YuvScratch,
        out: &mut Vec<u8>,
    ) -> Result<(), JpegError> {
        if image.width == 0 || image.height == 0 {
            return Err(image.short(0));
        }
        let extents = image.extents()?;
        for (c, extent) in extents.iter().enumerate() {
            if !image.holds_component(c, *extent) {
                return Err(image.short(c));
            }
        }
        let in_place = [0, 1, 2].map(|c| image.in_place(c, extents[c]));
        match image.to_jfif.is_identity() && !image.resites_chroma() {
            true => scratch.copy(image, &extents, in_place),
            false => scratch.map(image, &extents, in_place[0]),
        }
        let mut pointers = [std::ptr::null::<u8>(); 3];
        let mut strides = [0 as c_int; 3];
        for (c, extent) in extents.iter().enumerate() {
            let stride = match in_place[c] {
                true => image.strides[image.layout.components[c].plane],
                false => extent.tj_width,
            };
            pointers[c] = match in_place[c] {
                true => image.row(c, 0).as_ptr(),
                false => scratch.planes[c].as_ptr(),
            };
            strides[c] = to_int(stride, "stride")?;
        }
        let (w, h) = (
            to_int(image.width, "width")?,
            to_int(image.height, "height")?,
        );
        let subsamp = image.layout.subsampling.tj();
        self.configure(subsamp, params)?;
        self.compress_into(w, h, subsamp, out, |handle, jpeg, size| {
            // SAFETY: each pointer leads to libjpeg-turbo's whole-MCU plane at its stride:
            // a plane read in place was checked to be that size and to hold it, a scratch
            // plane was made that size.
            unsafe {
                raw::tj3CompressFromYUVPlanes8(
                    handle,
                    pointers.as_ptr(),
                    w,
                    strides.as_ptr(),
                    h,
                    jpeg,
                    size,
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::to_jfif::tests::{standard, BT709, LIMITED};
    use super::super::{Decoder, PlaneMut};
    use super::*;
    use crate::jpeg::tests::psnr;

    const PARAMS: EncodeParams = EncodeParams {
        quality: 95,
        fast_dct: false,
    };

    /// A test picture: its size, subsampling and smooth Y, Cb and Cr planes (tight rows).
    struct Picture {
        width: usize,
        height: usize,
        subsampling: Subsampling,
        planes: [Vec<u8>; 3],
    }

    impl Picture {
        fn new(width: usize, height: usize, subsampling: Subsampling) -> Picture {
            let (cw, ch) = subsampling.chroma_size(width, height);
            let plane = |w: usize, h: usize, f: fn(usize, usize) -> usize| -> Vec<u8> {
                (0..h)
                    .flat_map(|y| (0..w).map(move |x| (f(x, y) % 200 + 28) as u8))
                    .collect()
            };
            Picture {
                width,
                height,
                subsampling,
                planes: [
                    plane(width, height, |x, y| x * 2 + y),
                    plane(cw, ch, |x, y| x + y * 3 + 40),
                    plane(cw, ch, |x, y| x * 3 + y + 90),
                ],
            }
        }

        fn chroma_width(&self) -> usize {
            self.subsampling.chroma_size(self.width, self.height).0
        }

        /// Rows of `width` samples each padded to a multiple of 4 bytes, as GStreamer pads.
        fn padded(rows: impl Iterator<Item = Vec<u8>>) -> (Vec<u8>, usize) {
            let rows: Vec<Vec<u8>> = rows.collect();
            let stride = rows.first().map_or(0, |r| r.len().div_ceil(4) * 4);
            let bytes = rows.into_iter().flat_map(|mut r| {
                r.resize(stride, 0);
                r
            });
            (bytes.collect(), stride)
        }

        /// Each chroma row's samples interleaved: `order[i]` gives the plane of sample i of a
        /// group, `None` a luma sample (packed formats).
        fn interleaved(&self, group: &[Option<usize>], luma_per_group: usize) -> (Vec<u8>, usize) {
            let cw = self.chroma_width();
            let rows = (0..self.height.min(self.planes[1].len() / cw)).map(|row| {
                let mut out = Vec::new();
                for i in 0..cw {
                    let mut luma = 0;
                    for slot in group {
                        out.push(match slot {
                            Some(c) => self.planes[*c][row * cw + i],
                            None => {
                                let x = (i * luma_per_group + luma).min(self.width - 1);
                                luma += 1;
                                self.planes[0][row * self.width + x]
                            }
                        });
                    }
                }
                out
            });
            Picture::padded(rows)
        }

        fn plane(&self, c: usize) -> (Vec<u8>, usize) {
            let width = if c == 0 {
                self.width
            } else {
                self.chroma_width()
            };
            Picture::padded(self.planes[c].chunks(width).map(<[u8]>::to_vec))
        }

        /// The picture laid out as GStreamer's `format` lays it out: planes, strides and
        /// where each component is.
        fn laid_out(&self, format: &str) -> (Vec<(Vec<u8>, usize)>, [Component; 3]) {
            let comp = |plane, offset, step| Component {
                plane,
                offset,
                step,
            };
            let (y, u, v) = (None, Some(1), Some(2));
            match format {
                "YUY2" => (
                    vec![self.interleaved(&[y, u, y, v], 2)],
                    [comp(0, 0, 2), comp(0, 1, 4), comp(0, 3, 4)],
                ),
                "UYVY" => (
                    vec![self.interleaved(&[u, y, v, y], 2)],
                    [comp(0, 1, 2), comp(0, 0, 4), comp(0, 2, 4)],
                ),
                "NV12" | "NV16" => (
                    vec![self.plane(0), self.interleaved(&[u, v], 0)],
                    [comp(0, 0, 1), comp(1, 0, 2), comp(1, 1, 2)],
                ),
                "NV21" => (
                    vec![self.plane(0), self.interleaved(&[v, u], 0)],
                    [comp(0, 0, 1), comp(1, 1, 2), comp(1, 0, 2)],
                ),
                _ => (
                    vec![self.plane(0), self.plane(1), self.plane(2)],
                    [comp(0, 0, 1), comp(1, 0, 1), comp(2, 0, 1)],
                ),
            }
        }

        fn image<'a>(
            &self,
            planes: &'a [(Vec<u8>, usize)],
            components: [Component; 3],
        ) -> YuvImage<'a> {
            let plane = |i: usize| planes.get(i).map_or(&[][..], |p| p.0.as_slice());
            let stride = |i: usize| planes.get(i).map_or(0, |p| p.1);
            YuvImage {
                planes: [plane(0), plane(1), plane(2)],
                strides: [stride(0), stride(1), stride(2)],
                width: self.width,
                height: self.height,
                layout: YuvLayout {
                    components,
                    subsampling: self.subsampling,
                    // JPEG's own: the planes go in as they are.
                    siting: Siting::Centred,
                },
                to_jfif: ToJfif::IDENTITY,
            }
        }

        /// Decodes into tight planes of the picture's own subsampling.
        fn decode(&self, jpeg: &[u8]) -> [Vec<u8>; 3] {
            let mut decoder = Decoder::new().unwrap();
            let info = decoder.info(jpeg).unwrap();
            assert_eq!((info.width, info.height), (self.width, self.height));
            let out = self.planes.clone().map(|p| vec![0u8; p.len()]);
            let [mut y, mut u, mut v] = out;
            let cw = self.chroma_width();
            let planes = [
                PlaneMut {
                    bytes: &mut y,
                    stride: self.width,
                },
                PlaneMut {
                    bytes: &mut u,
                    stride: cw,
                },
                PlaneMut {
                    bytes: &mut v,
                    stride: cw,
                },
            ];
            let params = Default::default();
            decoder
                .decode_planar(jpeg, info, self.subsampling, params, planes)
                .unwrap();
            [y, u, v]
        }
    }

    /// The JPEG and the scratch planes a fresh encoder used for it.
    fn encoded(image: &YuvImage) -> (YuvScratch, Vec<u8>) {
        let (mut scratch, mut jpeg) = (YuvScratch::default(), Vec::new());
        Encoder::new()
            .unwrap()
            .encode_yuv(image, PARAMS, &mut scratch, &mut jpeg)
            .unwrap();
        (scratch, jpeg)
    }

    fn subsampling(format: &str) -> Subsampling {
        match format {
            "NV12" | "NV21" | "I420" => Subsampling::S420,
            "Y444" => Subsampling::S444,
            _ => Subsampling::S422,
        }
    }

    #[test]
    fn every_layout_encodes_what_its_planes_hold() {
        for (width, height) in [(64, 32), (33, 17)] {
            for format in [
                "YUY2", "UYVY", "NV12", "NV21", "NV16", "I420", "Y42B", "Y444",
            ] {
                let picture = Picture::new(width, height, subsampling(format));
                let (planes, components) = picture.laid_out(format);
                let image = picture.image(&planes, components);
                let (_, jpeg) = encoded(&image);
                let decoded = picture.decode(&jpeg);
                for (c, (got, expected)) in decoded.iter().zip(&picture.planes).enumerate() {
                    let quality = psnr(got, expected);
                    let what = format!("{format} {width}x{height} component {c}");
                    assert!(quality > 38.0, "{what}: {quality:.1} dB");
                }
            }
        }
    }

    #[test]
    fn jfif_planes_are_read_in_place_and_split_or_cosited_chroma_is_copied() {
        let cases = [
            ("I420", Siting::Centred, [false; 3]),
            ("NV12", Siting::Centred, [false, true, true]),
            ("I420", Siting::Cosited, [false, true, true]),
        ];
        for (format, siting, copied) in cases {
            let picture = Picture::new(64, 32, subsampling(format));
            let (planes, components) = picture.laid_out(format);
            let mut image = picture.image(&planes, components);
            image.layout.siting = siting;
            let (scratch, _) = encoded(&image);
            let used = scratch.planes.each_ref().map(|p| !p.is_empty());
            assert_eq!(used, copied, "{format} {siting:?}");
        }
    }

    #[test]
    fn other_colorimetries_are_mapped_before_encoding() {
        let picture = Picture::new(48, 16, Subsampling::S422);
        let (planes, components) = picture.laid_out("YUY2");
        let map = standard(BT709, LIMITED);
        let image = YuvImage {
            to_jfif: map,
            ..picture.image(&planes, components)
        };
        let (_, jpeg) = encoded(&image);
        let decoded = picture.decode(&jpeg);
        // What the map makes of the planes, sample by sample.
        let [y, u, v] = &picture.planes;
        let (mut cb, mut cr) = (vec![0u8; u.len()], vec![0u8; v.len()]);
        map.chroma_row(u, v, &mut cb, &mut cr);
        let mut luma = vec![0u8; y.len()];
        for (row, out) in luma.chunks_mut(48).enumerate() {
            let (mut gain, mut bias) = (vec![0i16; 24], vec![0i16; 48]);
            let chroma = row * 24..(row + 1) * 24;
            map.luma_gain(&u[chroma.clone()], &v[chroma], &mut gain);
            spread(&gain, Siting::Centred, &mut bias);
            map.luma_row(&y[row * 48..(row + 1) * 48], &bias, out);
        }
        for (c, (got, expected)) in decoded.iter().zip([luma, cb, cr]).enumerate() {
            let quality = psnr(got, &expected);
            assert!(quality > 38.0, "component {c}: {quality:.1} dB");
        }
    }

    #[test]
    fn short_planes_and_empty_pictures_are_refused_before_any_read() {
        let picture = Picture::new(64, 32, Subsampling::S420);
        let (mut planes, components) = picture.laid_out("NV12");
        let short_len = planes[1].0.len() - 1;
        planes[1].0.truncate(short_len);
        let mut encoder = Encoder::new().unwrap();
        let (mut scratch, mut jpeg) = (YuvScratch::default(), Vec::new());
        let short = picture.image(&planes, components);
        let err = encoder.encode_yuv(&short, PARAMS, &mut scratch, &mut jpeg);
        assert!(matches!(err, Err(JpegError::ShortImage { .. })), "{err:?}");
        let empty = YuvImage { width: 0, ..short };
        let err = encoder.encode_yuv(&empty, PARAMS, &mut scratch, &mut jpeg);
        assert!(matches!(err, Err(JpegError::ShortImage { .. })), "{err:?}");
        let whole = picture.laid_out("NV12").0;
        let no_stride = YuvImage {
            strides: [0, 0, 0],
            ..picture.image(&whole, components)
        };
        let err = encoder.encode_yuv(&no_stride, PARAMS, &mut scratch, &mut jpeg);
        assert!(matches!(err, Err(JpegError::ShortImage { .. })), "{err:?}");
    }
}
