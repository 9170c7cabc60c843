// SPDX-License-Identifier: MPL-2.0
//! SSE2 (part of every x86-64 CPU) for the row loops the Y'CbCr encoder spends its time in:
//! splitting packed and semi-planar rows into planes, and the map to JFIF's colours. Each
//! does a row's whole vectors and returns how many samples it did; the portable loop does
//! the rest with the same 16-bit arithmetic, so both give equal results. Elsewhere the
//! portable loops do everything (the compiler vectorises them for NEON itself).

use super::to_jfif::{Coefficient, Siting};

#[cfg(target_arch = "x86_64")]
pub(super) use sse2::*;

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use super::{Coefficient, Siting};
    use std::arch::x86_64::*;

    const LANES: usize = 16;

    /// A coefficient in every lane, and the rounding its fraction needs.
    #[derive(Clone, Copy)]
    struct Splat {
        whole: __m128i,
        fraction: __m128i,
    }

    impl Splat {
        fn new(c: Coefficient) -> Splat {
            // SAFETY: SSE2 is part of x86-64.
            unsafe {
                Splat {
                    whole: _mm_set1_epi16(c.whole),
                    fraction: _mm_set1_epi16(c.fraction),
                }
            }
        }

        /// `Coefficient::times` on eight samples.
        #[inline(always)]
        fn times(self, x: __m128i) -> __m128i {
            // SAFETY: SSE2 is part of x86-64; register operations only.
            unsafe {
                let fraction = _mm_mullo_epi16(x, self.fraction);
                let fraction = _mm_srai_epi16(_mm_add_epi16(fraction, _mm_set1_epi16(128)), 8);
                _mm_add_epi16(_mm_mullo_epi16(x, self.whole), fraction)
            }
        }
    }

    /// Sixteen bytes as two halves of eight 16-bit lanes, `zero` subtracted.
    #[inline(always)]
    fn widen(bytes: &[u8; LANES], zero: i16) -> [__m128i; 2] {
        // SAFETY: SSE2 is part of x86-64; the load reads the sixteen bytes of `bytes`.
        unsafe {
            let v = _mm_loadu_si128(bytes.as_ptr().cast());
            let (zeros, offset) = (_mm_setzero_si128(), _mm_set1_epi16(zero));
            [
                _mm_sub_epi16(_mm_unpacklo_epi8(v, zeros), offset),
                _mm_sub_epi16(_mm_unpackhi_epi8(v, zeros), offset),
            ]
        }
    }

    /// Two halves of eight lanes clamped to 0..=255 into sixteen bytes.
    #[inline(always)]
    fn narrow([lo, hi]: [__m128i; 2], out: &mut [u8; LANES]) {
        // SAFETY: SSE2 is part of x86-64; the store writes the sixteen bytes of `out`.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_packus_epi16(lo, hi)) }
    }

    fn lanes<const N: usize>(chunk: &[u8]) -> &[u8; N] {
        // chunks_exact hands out slices of exactly N bytes.
        chunk.try_into().expect("a whole chunk")
    }

    fn lanes_mut<const N: usize>(chunk: &mut [u8]) -> &mut [u8; N] {
        chunk.try_into().expect("a whole chunk")
    }

    /// Byte `shift / 8` of each 2-byte word of `row` into `out`.
    pub(in crate::jpeg) fn gather_u16(row: &[u8], shift: u32, out: &mut [u8]) -> usize {
        let mut done = 0;
        for (o, w) in out.chunks_exact_mut(LANES).zip(row.chunks_exact(2 * LANES)) {
            let w: &[u8; 2 * LANES] = lanes(w);
            // SAFETY: SSE2 is part of x86-64; the loads read the 32 bytes of `w`.
            let halves = unsafe {
                let (mask, count) = (_mm_set1_epi16(0xFF), _mm_cvtsi32_si128(shift as i32));
                let word = |at: usize| _mm_loadu_si128(w.as_ptr().add(at).cast());
                [
                    _mm_and_si128(_mm_srl_epi16(word(0), count), mask),
                    _mm_and_si128(_mm_srl_epi16(word(16), count), mask),
                ]
            };
            narrow(halves, lanes_mut(o));
            done += LANES;
        }
        done
    }

    /// Byte `shift / 8` of each 4-byte word of `row` into `out`.
    pub(in crate::jpeg) fn gather_u32(row: &[u8], shift: u32, out: &mut [u8]) -> usize {
        let mut done = 0;
        for (o, w) in out.chunks_exact_mut(LANES).zip(row.chunks_exact(4 * LANES)) {
            let w: &[u8; 4 * LANES] = lanes(w);
            // SAFETY: SSE2 is part of x86-64; the loads read the 64 bytes of `w`.
            let halves = unsafe {
                let (mask, count) = (_mm_set1_epi32(0xFF), _mm_cvtsi32_si128(shift as i32));
                let word = |at: usize| {
                    _mm_and_si128(
                        _mm_srl_epi32(_mm_loadu_si128(w.as_ptr().add(at).cast()), count),
                        mask,
                    )
                };
                [
                    _mm_packs_epi32(word(0), word(16)),
                    _mm_packs_epi32(word(32), word(48)),
                ]
            };
            narrow(halves, lanes_mut(o));
            done += LANES;
        }
        done
    }

    /// `ToJfif::luma_row` on the row's whole vectors.
    pub(in crate::jpeg) fn luma_row(
        gray: i16,
        scale: Coefficient,
        luma: &[u8],
        bias: &[i16],
        out: &mut [u8],
    ) -> usize {
        let (scale, mut done) = (Splat::new(scale), 0);
        let rows = out.chunks_exact_mut(LANES).zip(luma.chunks_exact(LANES));
        for ((o, y), b) in rows.zip(bias.chunks_exact(LANES)) {
            let [lo, hi] = widen(lanes(y), 128);
            // SAFETY: SSE2 is part of x86-64; the loads read the sixteen values of `b`.
            let halves = unsafe {
                let (b, gray) = (b.as_ptr(), _mm_set1_epi16(gray));
                let bias = [_mm_loadu_si128(b.cast()), _mm_loadu_si128(b.add(8).cast())];
                [
                    _mm_add_epi16(_mm_add_epi16(scale.times(lo), bias[0]), gray),
                    _mm_add_epi16(_mm_add_epi16(scale.times(hi), bias[1]), gray),
                ]
            };
            narrow(halves, lanes_mut(o));
            done += LANES;
        }
        done
    }

    /// `ToJfif::chroma_row` on the row's whole vectors.
    pub(in crate::jpeg) fn chroma_row(
        chroma: [[Coefficient; 2]; 2],
        gray: [i16; 2],
        cb: &[u8],
        cr: &[u8],
        cb_out: &mut [u8],
        cr_out: &mut [u8],
    ) -> usize {
        let [[bb, br], [rb, rr]] = chroma.map(|row| row.map(Splat::new));
        let mut done = 0;
        let outs = cb_out
            .chunks_exact_mut(LANES)
            .zip(cr_out.chunks_exact_mut(LANES));
        let ins = cb.chunks_exact(LANES).zip(cr.chunks_exact(LANES));
        for ((b_out, r_out), (b, r)) in outs.zip(ins) {
            let (b, r) = (widen(lanes(b), 128), widen(lanes(r), 128));
            // SAFETY: SSE2 is part of x86-64; registers only.
            let mix = |x: Splat, y: Splat, gray: i16, half: usize| unsafe {
                let sum = _mm_add_epi16(x.times(b[half]), y.times(r[half]));
                _mm_add_epi16(sum, _mm_set1_epi16(gray))
            };
            let (b_gray, r_gray) = (gray[0], gray[1]);
            narrow(
                [mix(bb, br, b_gray, 0), mix(bb, br, b_gray, 1)],
                lanes_mut(b_out),
            );
            narrow(
                [mix(rb, rr, r_gray, 0), mix(rb, rr, r_gray, 1)],
                lanes_mut(r_out),
            );
            done += LANES;
        }
        done
    }

    /// `ToJfif::luma_gain` on the row's whole vectors.
    pub(in crate::jpeg) fn luma_gain(
        from: [Coefficient; 2],
        cb: &[u8],
        cr: &[u8],
        gain: &mut [i16],
    ) -> usize {
        let [from_b, from_r] = from.map(Splat::new);
        let mut done = 0;
        let ins = cb.chunks_exact(LANES).zip(cr.chunks_exact(LANES));
        for (out, (b, r)) in gain.chunks_exact_mut(LANES).zip(ins) {
            let (b, r) = (widen(lanes(b), 128), widen(lanes(r), 128));
            // SAFETY: SSE2 is part of x86-64; the stores write the sixteen values of `out`.
            unsafe {
                for h in 0..2 {
                    let g = _mm_add_epi16(from_b.times(b[h]), from_r.times(r[h]));
                    _mm_storeu_si128(out.as_mut_ptr().add(8 * h).cast(), g);
                }
            }
            done += LANES;
        }
        done
    }

    /// `spread` of chroma samples 1, 2, … while eight and the one after them are there:
    /// returns the chroma samples done (sample 0, which has none before it, is left).
    pub(in crate::jpeg) fn spread(gain: &[i16], siting: Siting, bias: &mut [i16]) -> usize {
        let ([even_before, even_here], [odd_here, odd_after]) = siting.weights();
        let mut i = 1;
        while i + 9 <= gain.len() && 2 * (i + 8) <= bias.len() {
            // SAFETY: SSE2 is part of x86-64; the loads read gain[i - 1..i + 9] and the
            // stores write bias[2i..2i + 16], both checked above.
            unsafe {
                let load = |at: usize| _mm_loadu_si128(gain.as_ptr().add(at).cast());
                let (before, here, after) = (load(i - 1), load(i), load(i + 1));
                let mix = |a: __m128i, wa: i16, b: __m128i, wb: i16| {
                    let sum = _mm_add_epi16(
                        _mm_mullo_epi16(a, _mm_set1_epi16(wa)),
                        _mm_mullo_epi16(b, _mm_set1_epi16(wb)),
                    );
                    _mm_srai_epi16(_mm_add_epi16(sum, _mm_set1_epi16(2)), 2)
                };
                let even = mix(before, even_before, here, even_here);
                let odd = mix(here, odd_here, after, odd_after);
                let out = bias.as_mut_ptr().add(2 * i);
                _mm_storeu_si128(out.cast(), _mm_unpacklo_epi16(even, odd));
                _mm_storeu_si128(out.add(8).cast(), _mm_unpackhi_epi16(even, odd));
            }
            i += 8;
        }
        // Sample 0 is left to the portable loop either way: it takes up from there.
        match i {
            1 => 0,
            _ => i,
        }
    }
}

/// Elsewhere the portable loops do every sample.
#[cfg(not(target_arch = "x86_64"))]
mod portable {
    use super::{Coefficient, Siting};

    pub(in crate::jpeg) fn gather_u16(_: &[u8], _: u32, _: &mut [u8]) -> usize {
        0
    }

    pub(in crate::jpeg) fn gather_u32(_: &[u8], _: u32, _: &mut [u8]) -> usize {
        0
    }

    pub(in crate::jpeg) fn luma_row(
        _: i16,
        _: Coefficient,
        _: &[u8],
        _: &[i16],
        _: &mut [u8],
    ) -> usize {
        0
    }

    pub(in crate::jpeg) fn chroma_row(
        _: [[Coefficient; 2]; 2],
        _: [i16; 2],
        _: &[u8],
        _: &[u8],
        _: &mut [u8],
        _: &mut [u8],
    ) -> usize {
        0
    }

    pub(in crate::jpeg) fn luma_gain(
        _: [Coefficient; 2],
        _: &[u8],
        _: &[u8],
        _: &mut [i16],
    ) -> usize {
        0
    }

    pub(in crate::jpeg) fn spread(_: &[i16], _: Siting, _: &mut [i16]) -> usize {
        0
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) use portable::*;

#[cfg(test)]
mod tests {
    use super::super::to_jfif::tests::{standard, BT601, BT709, FULL, LIMITED};
    use super::super::to_jfif::{spread, Siting, ToJfif};

    /// Bytes that cover every value and their neighbours' differences.
    fn noise(len: usize, seed: usize) -> Vec<u8> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104729) % 251 + (i % 5)) as u8)
            .collect()
    }

    fn maps() -> [ToJfif; 3] {
        [
            standard(BT709, LIMITED),
            standard((0.2627, 0.0593), FULL),
            standard(BT601, LIMITED),
        ]
    }

    /// The vector loops give what the portable loop gives sample by sample (a one-sample
    /// row never reaches the vector loops), for rows with and without a tail.
    #[test]
    fn vector_rows_equal_the_portable_loop() {
        for len in [16, 37, 64, 100] {
            let (cb, cr, y) = (noise(len, 1), noise(len, 2), noise(len, 3));
            for map in maps() {
                let (mut b, mut r) = (vec![0u8; len], vec![0u8; len]);
                map.chroma_row(&cb, &cr, &mut b, &mut r);
                let mut gain = vec![0i16; len];
                map.luma_gain(&cb, &cr, &mut gain);
                let mut luma = vec![0u8; len];
                map.luma_row(&y, &gain, &mut luma);
                for i in 0..len {
                    let (mut b1, mut r1, mut g, mut y1) = ([0u8], [0u8], [0i16], [0u8]);
                    map.chroma_row(&cb[i..=i], &cr[i..=i], &mut b1, &mut r1);
                    map.luma_gain(&cb[i..=i], &cr[i..=i], &mut g);
                    map.luma_row(&y[i..=i], &gain[i..=i], &mut y1);
                    assert_eq!((b[i], r[i]), (b1[0], r1[0]), "chroma {i} of {len}");
                    assert_eq!((gain[i], luma[i]), (g[0], y1[0]), "luma {i} of {len}");
                }
            }
        }
    }

    /// The vector spread gives what the portable one gives on rows too short for it.
    #[test]
    fn vector_spread_equals_the_portable_loop() {
        for len in [9, 17, 40, 101] {
            let gain: Vec<i16> = noise(len, 5)
                .iter()
                .map(|&g| i16::from(g) * 3 - 380)
                .collect();
            for siting in [Siting::Cosited, Siting::Centred] {
                for luma in [2 * len - 1, 2 * len] {
                    let mut bias = vec![0i16; luma];
                    spread(&gain, siting, &mut bias);
                    for i in 0..len {
                        // gain[i - 1..=i + 1] alone is too short for the vectors.
                        let from = i.saturating_sub(1);
                        let near = &gain[from..(i + 2).min(len)];
                        let mut pair = vec![0i16; 2 * near.len()];
                        spread(near, siting, &mut pair);
                        let at = 2 * (i - from);
                        let expected = &pair[at..(at + 2).min(pair.len())];
                        let got = &bias[2 * i..(2 * i + 2).min(luma)];
                        assert_eq!(got, &expected[..got.len()], "{siting:?} {i} of {len}");
                    }
                }
            }
        }
    }

    #[test]
    fn vector_gathers_equal_byte_picking() {
        let row = noise(4 * 100 + 3, 4);
        for (word, shift) in [(2, 0), (2, 8), (4, 0), (4, 8), (4, 16), (4, 24)] {
            let count = (row.len() - (shift / 8) as usize).div_ceil(word);
            let mut out = vec![0u8; count];
            let done = match word {
                2 => super::gather_u16(&row, shift, &mut out),
                _ => super::gather_u32(&row, shift, &mut out),
            };
            let expected: Vec<u8> = row
                .iter()
                .skip((shift / 8) as usize)
                .step_by(word)
                .copied()
                .collect();
            assert_eq!(
                &out[..done],
                &expected[..done],
                "word {word}, shift {shift}"
            );
        }
    }
}
