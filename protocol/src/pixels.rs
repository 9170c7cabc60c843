// SPDX-License-Identifier: MPL-2.0
//! Pixel rows between GStreamer's padded layout and the wire's packed one: row copies
//! between strides and channel reordering in the same pass. The raw payload and the JPEG
//! planes both go through here; every length is checked, nothing panics.

/// Copies `rows` rows of `row_bytes` each between buffers with different row strides:
/// packs GStreamer's padded rows for the wire, or re-pads wire rows for GStreamer.
/// Returns `None` if either buffer is too short for the layout (never panics).
pub fn copy_rows(
    src: &[u8],
    src_stride: usize,
    dst: &mut [u8],
    dst_stride: usize,
    row_bytes: usize,
    rows: usize,
) -> Option<()> {
    if rows == 0 {
        return Some(());
    }
    if row_bytes == 0 || row_bytes > src_stride || row_bytes > dst_stride {
        return None;
    }
    let src_need = src_stride.checked_mul(rows - 1)?.checked_add(row_bytes)?;
    let dst_need = dst_stride.checked_mul(rows - 1)?.checked_add(row_bytes)?;
    if src.len() < src_need || dst.len() < dst_need {
        return None;
    }
    if src_stride == row_bytes && dst_stride == row_bytes {
        dst[..src_need].copy_from_slice(&src[..src_need]);
        return Some(());
    }
    for (s, d) in src
        .chunks(src_stride)
        .zip(dst.chunks_mut(dst_stride))
        .take(rows)
    {
        d[..row_bytes].copy_from_slice(&s[..row_bytes]);
    }
    Some(())
}

/// How one input pixel becomes one wire pixel: the input's bytes per pixel and, for
/// each wire byte, the input byte it is taken from (e.g. RGBx → BGR is `[2, 1, 0]` of 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelMap {
    pub in_bytes: usize,
    pub picks: &'static [usize],
}

impl PixelMap {
    pub fn out_bytes(&self) -> usize {
        self.picks.len()
    }

    /// The wire bytes are the input bytes: rows can be copied (or sent) as they are.
    pub fn is_identity(&self) -> bool {
        self.in_bytes == self.picks.len() && self.picks.iter().enumerate().all(|(i, p)| i == *p)
    }
}

/// Packs `height` rows of `width` pixels from a strided input into tight wire rows,
/// reordering channels in the same pass. `None` if a buffer is too short.
pub fn pack_pixels(
    src: &[u8],
    src_stride: usize,
    width: usize,
    height: usize,
    map: PixelMap,
    dst: &mut [u8],
) -> Option<()> {
    if map.in_bytes == 0 || width == 0 {
        return (height == 0).then_some(());
    }
    let out_row = width.checked_mul(map.out_bytes())?;
    if map.is_identity() {
        return copy_rows(src, src_stride, dst, out_row, out_row, height);
    }
    let in_row = width.checked_mul(map.in_bytes)?;
    if map.picks.iter().any(|p| *p >= map.in_bytes) || in_row > src_stride || height == 0 {
        return (height == 0).then_some(());
    }
    if src.len() < src_stride * (height - 1) + in_row || dst.len() < out_row * height {
        return None;
    }
    for (s, d) in src
        .chunks(src_stride)
        .zip(dst.chunks_exact_mut(out_row))
        .take(height)
    {
        for (pin, pout) in s[..in_row]
            .chunks_exact(map.in_bytes)
            .zip(d.chunks_exact_mut(map.out_bytes()))
        {
            for (o, p) in pout.iter_mut().zip(map.picks) {
                *o = pin[*p];
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_rows_between_strides() {
        // 641-pixel BGR rows: 1923 bytes packed, 1924 in GStreamer.
        let (row, padded, rows) = (1923usize, 1924usize, 3usize);
        let src: Vec<u8> = (0..padded * rows).map(|i| (i % 251) as u8).collect();
        let mut packed = vec![0u8; row * rows];
        copy_rows(&src, padded, &mut packed, row, row, rows).unwrap();
        for r in 0..rows {
            assert_eq!(
                &packed[r * row..(r + 1) * row],
                &src[r * padded..r * padded + row]
            );
        }
        let mut repadded = vec![0u8; padded * rows];
        copy_rows(&packed, row, &mut repadded, padded, row, rows).unwrap();
        for r in 0..rows {
            assert_eq!(
                &repadded[r * padded..r * padded + row],
                &src[r * padded..r * padded + row]
            );
        }
        // Short buffers are refused, not indexed out of bounds.
        assert!(copy_rows(&src[..100], padded, &mut packed, row, row, rows).is_none());
        assert!(copy_rows(&src, padded, &mut packed[..10], row, row, rows).is_none());
    }

    #[test]
    fn packs_and_reorders_pixels() {
        // Two RGBx pixels per row, rows padded to 12 bytes.
        let src = [
            1, 2, 3, 0, 4, 5, 6, 0, 9, 9, 9, 9, 7, 8, 9, 0, 10, 11, 12, 0, 9, 9, 9, 9,
        ];
        let rgbx_to_bgr = PixelMap {
            in_bytes: 4,
            picks: &[2, 1, 0],
        };
        let mut out = [0u8; 12];
        pack_pixels(&src, 12, 2, 2, rgbx_to_bgr, &mut out).unwrap();
        assert_eq!(out, [3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10]);
        let identity = PixelMap {
            in_bytes: 4,
            picks: &[0, 1, 2, 3],
        };
        assert!(identity.is_identity());
        let mut out = [0u8; 16];
        pack_pixels(&src, 12, 2, 2, identity, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 10, 11, 12, 0]);
        assert!(pack_pixels(&src[..13], 12, 2, 2, rgbx_to_bgr, &mut [0u8; 12]).is_none());
    }
}
