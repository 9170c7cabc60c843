// SPDX-License-Identifier: MPL-2.0
//! Vector loops for the rows the Y'CbCr encoder spends its time in: splitting packed and
//! semi-planar rows into planes, re-siting chroma, and the map to JFIF's colours. On
//! x86-64 they run on AVX2 where the CPU has it (twice the lanes: half the instructions)
//! and on SSE2 (part of every x86-64 CPU) otherwise. Each does a row's whole vectors and
//! returns how many samples it did; the portable loop does the rest with the same 16-bit
//! arithmetic, so every path gives equal results. Elsewhere the portable loops do
//! everything (the compiler vectorises them for NEON itself).

use super::to_jfif::{Coefficient, Siting};

/// Declares each loop once: on x86-64 a dispatch to AVX2 when the CPU has it (std caches
/// the answer), else to SSE2 (`avx2_only`: else 0); elsewhere 0 samples, so the portable
/// loop does them all.
macro_rules! row_loops {
    (@sse2 $name:ident($($arg:ident),*)) => {
        sse2::$name($($arg),*)
    };
    (@sse2 $name:ident($($arg:ident),*) avx2_only) => {{
        $(let _ = $arg;)*
        0
    }};
    ($($(#[$attr:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $($only:ident)?;)*) => {
        #[cfg(target_arch = "x86_64")]
        mod dispatch {
            use super::{avx2, sse2, Coefficient, Siting};

            fn has_avx2() -> bool {
                std::arch::is_x86_feature_detected!("avx2")
            }

            $(
                $(#[$attr])*
                pub(in crate::jpeg) fn $name($($arg: $ty),*) -> usize {
                    if has_avx2() {
                        // SAFETY: the CPU has AVX2.
                        unsafe { avx2::$name($($arg),*) }
                    } else {
                        row_loops!(@sse2 $name($($arg),*) $($only)?)
                    }
                }
            )*
        }

        #[cfg(target_arch = "x86_64")]
        pub(super) use dispatch::*;

        #[cfg(not(target_arch = "x86_64"))]
        mod portable {
            use super::{Coefficient, Siting};

            $(
                $(#[$attr])*
                pub(in crate::jpeg) fn $name($(_: $ty),*) -> usize {
                    0
                }
            )*
        }

        #[cfg(not(target_arch = "x86_64"))]
        pub(super) use portable::*;
    };
}

row_loops! {
    fn gather_u16(row: &[u8], shift: u32, out: &mut [u8]);
    fn gather_u32(row: &[u8], shift: u32, out: &mut [u8]);
    fn centre(row: &[u8], out: &mut [u8]);
    fn luma_row(gray: i16, scale: Coefficient, luma: &[u8], bias: &[i16], out: &mut [u8]);
    fn chroma_row(
        chroma: [[Coefficient; 2]; 2],
        gray: [i16; 2],
        cb: &[u8],
        cr: &[u8],
        cb_out: &mut [u8],
        cr_out: &mut [u8],
    );
    fn luma_gain(from: [Coefficient; 2], cb: &[u8], cr: &[u8], gain: &mut [i16]);
    /// `centre`, `chroma_row` and `luma_gain` of one chroma row in one pass: on AVX2 only
    /// (elsewhere 0, and the three run one after the other).
    #[allow(clippy::too_many_arguments)]
    fn resited_chroma_row(
        chroma: [[Coefficient; 2]; 2],
        gray: [i16; 2],
        from: [Coefficient; 2],
        cb: &[u8],
        cr: &[u8],
        cb_out: &mut [u8],
        cr_out: &mut [u8],
        gain: Option<&mut [i16]>,
    ) avx2_only;
    fn spread(gain: &[i16], siting: Siting, bias: &mut [i16]);
}

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

    /// `to_jfif::centre` while sixteen samples and the one after them are there.
    pub(in crate::jpeg) fn centre(row: &[u8], out: &mut [u8]) -> usize {
        let mut i = 0;
        while i + LANES < row.len() && i + LANES <= out.len() {
            let (here, next) = (&row[i..i + LANES], &row[i + 1..i + 1 + LANES]);
            let ([h0, h1], [n0, n1]) = (widen(lanes(here), 0), widen(lanes(next), 0));
            // SAFETY: SSE2 is part of x86-64; registers only.
            let mix = |h: __m128i, n: __m128i| unsafe {
                let sum = _mm_add_epi16(_mm_add_epi16(h, _mm_add_epi16(h, h)), n);
                _mm_srli_epi16(_mm_add_epi16(sum, _mm_set1_epi16(2)), 2)
            };
            narrow(
                [mix(h0, n0), mix(h1, n1)],
                lanes_mut(&mut out[i..i + LANES]),
            );
            i += LANES;
        }
        i
    }
}

/// The same loops on 256-bit vectors: sixteen 16-bit lanes in one register, so each step
/// of the arithmetic is one instruction where SSE2 takes two.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Coefficient, Siting};
    use std::arch::x86_64::*;

    const LANES: usize = 16;

    #[derive(Clone, Copy)]
    struct Splat {
        whole: __m256i,
        fraction: __m256i,
    }

    impl Splat {
        #[target_feature(enable = "avx2")]
        fn new(c: Coefficient) -> Splat {
            Splat {
                whole: _mm256_set1_epi16(c.whole),
                fraction: _mm256_set1_epi16(c.fraction),
            }
        }

        /// `Coefficient::times` on sixteen samples.
        #[target_feature(enable = "avx2")]
        #[inline]
        fn times(self, x: __m256i) -> __m256i {
            let fraction = _mm256_mullo_epi16(x, self.fraction);
            let fraction = _mm256_srai_epi16(_mm256_add_epi16(fraction, _mm256_set1_epi16(128)), 8);
            _mm256_add_epi16(_mm256_mullo_epi16(x, self.whole), fraction)
        }
    }

    /// Sixteen bytes in sixteen 16-bit lanes, `zero` subtracted.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn widen(bytes: &[u8; LANES], zero: i16) -> __m256i {
        // SAFETY: the load reads the sixteen bytes of `bytes`.
        let v = unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) };
        _mm256_sub_epi16(_mm256_cvtepu8_epi16(v), _mm256_set1_epi16(zero))
    }

    /// Sixteen lanes clamped to 0..=255 into sixteen bytes.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn narrow(v: __m256i, out: &mut [u8; LANES]) {
        let bytes = _mm_packus_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        // SAFETY: the store writes the sixteen bytes of `out`.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), bytes) }
    }

    /// Sixteen 16-bit values of `values`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn load_i16(values: &[i16]) -> __m256i {
        assert!(values.len() >= LANES);
        // SAFETY: the load reads sixteen values, checked above.
        unsafe { _mm256_loadu_si256(values.as_ptr().cast()) }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn store_i16(v: __m256i, out: &mut [i16]) {
        assert!(out.len() >= LANES);
        // SAFETY: the store writes sixteen values, checked above.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), v) }
    }

    fn lanes<const N: usize>(chunk: &[u8]) -> &[u8; N] {
        // chunks_exact hands out slices of exactly N bytes.
        chunk.try_into().expect("a whole chunk")
    }

    fn lanes_mut<const N: usize>(chunk: &mut [u8]) -> &mut [u8; N] {
        chunk.try_into().expect("a whole chunk")
    }

    /// 32 bytes of `bytes` from `at`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn load_at(bytes: &[u8], at: usize) -> __m256i {
        assert!(at + 32 <= bytes.len());
        // SAFETY: the load reads bytes[at..at + 32], checked above.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().add(at).cast()) }
    }

    /// Byte `shift / 8` of each 2-byte word of `row` into `out`, 32 at a time.
    #[target_feature(enable = "avx2")]
    pub(in crate::jpeg) fn gather_u16(row: &[u8], shift: u32, out: &mut [u8]) -> usize {
        let (mask, count) = (_mm256_set1_epi16(0xFF), _mm_cvtsi32_si128(shift as i32));
        let mut done = 0;
        for (o, w) in out.chunks_exact_mut(32).zip(row.chunks_exact(64)) {
            let word = |at: usize| _mm256_and_si256(_mm256_srl_epi16(load_at(w, at), count), mask);
            // packus works within 128-bit lanes: put its quarters back in order.
            let packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(word(0), word(32)), 0xD8);
            // SAFETY: the store writes the 32 bytes of `o`.
            unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), packed) };
            done += 32;
        }
        done
    }

    /// Byte `shift / 8` of each 4-byte word of `row` into `out`, 32 at a time.
    #[target_feature(enable = "avx2")]
    pub(in crate::jpeg) fn gather_u32(row: &[u8], shift: u32, out: &mut [u8]) -> usize {
        let (mask, count) = (_mm256_set1_epi32(0xFF), _mm_cvtsi32_si128(shift as i32));
        // The packs interleave 128-bit lanes: dword i of the result holds samples
        // 4·ORDER[i]..; this puts them back in order.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let mut done = 0;
        for (o, w) in out.chunks_exact_mut(32).zip(row.chunks_exact(128)) {
            let word = |at: usize| _mm256_and_si256(_mm256_srl_epi32(load_at(w, at), count), mask);
            let low = _mm256_packs_epi32(word(0), word(32));
            let high = _mm256_packs_epi32(word(64), word(96));
            let packed = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(low, high), order);
            // SAFETY: the store writes the 32 bytes of `o`.
            unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), packed) };
            done += 32;
        }
        done
    }

    /// Runs `step` at `first`, `first + 16`, … below `last`, then at `last` itself: a row's
    /// tail is done by one vector that overlaps the one before (each output depends only
    /// on the inputs, so writing it twice writes the same).
    #[inline(always)]
    fn overlapping(first: usize, last: usize, mut step: impl FnMut(usize)) {
        let mut i = first;
        loop {
            step(i);
            if i >= last {
                break;
            }
            i = (i + LANES).min(last);
        }
    }

    /// `to_jfif::centre` of sixteen samples from the seventeen of `row`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn centre_step(row: &[u8; LANES + 1], out: &mut [u8; LANES]) {
        let here = widen(lanes(&row[..LANES]), 0);
        let next = widen(lanes(&row[1..]), 0);
        let sum = _mm256_add_epi16(_mm256_add_epi16(here, _mm256_add_epi16(here, here)), next);
        narrow(
            _mm256_srli_epi16(_mm256_add_epi16(sum, _mm256_set1_epi16(2)), 2),
            out,
        );
    }

    /// `to_jfif::centre` of every sample that has one after it.
    #[target_feature(enable = "avx2")]
    pub(in crate::jpeg) fn centre(row: &[u8], out: &mut [u8]) -> usize {
        let samples = row.len().min(out.len());
        let Some(last) = samples.checked_sub(LANES + 1) else {
            return 0;
        };
        overlapping(0, last, |i| {
            let input = row[i..i + LANES + 1].try_into().expect("17 samples");
            centre_step(input, lanes_mut(&mut out[i..i + LANES]))
        });
        last + LANES
    }

    /// `ToJfif::luma_row` on the row's whole vectors.
    #[target_feature(enable = "avx2")]
    pub(in crate::jpeg) fn luma_row(
        gray: i16,
        scale: Coefficient,
        luma: &[u8],
        bias: &[i16],
        out: &mut [u8],
    ) -> usize {
        let (scale, gray, mut done) = (Splat::new(scale), _mm256_set1_epi16(gray), 0);
        let rows = out.chunks_exact_mut(LANES).zip(luma.chunks_exact(LANES));
        for ((o, y), b) in rows.zip(bias.chunks_exact(LANES)) {
            let y = scale.times(widen(lanes(y), 128));
            let v = _mm256_add_epi16(_mm256_add_epi16(y, load_i16(b)), gray);
            narrow(v, lanes_mut(o));
            done += LANES;
        }
        done
    }

    /// `ToJfif::chroma_row` on the row's whole vectors.
    #[target_feature(enable = "avx2")]
    pub(in crate::jpeg) fn chroma_row(
        chroma: [[Coefficient; 2]; 2],
        gray: [i16; 2],
        cb: &[u8],
        cr: &[u8],
        cb_out: &mut [u8],
        cr_out: &mut [u8],
    ) -> usize {
        let [[bb, br], [rb, rr]] = chroma;
        let (bb, br, rb, rr) = (
            Splat::new(bb),
            Splat::new(br),
            Splat::new(rb),
            Splat::new(rr),
        );
        let (b_gray, r_gray) = (_mm256_set1_epi16(gray[0]), _mm256_set1_epi16(gray[1]));
        let mut done = 0;
        let outs = cb_out
            .chunks_exact_mut(LANES)
            .zip(cr_out.chunks_exact_mut(LANES));
        let ins = cb.chunks_exact(LANES).zip(cr.chunks_exact(LANES));
        for ((b_out, r_out), (b, r)) in outs.zip(ins) {
            let (b, r) = (widen(lanes(b), 128), widen(lanes(r), 128));
            let b_mix = _mm256_add_epi16(_mm256_add_epi16(bb.times(b), br.times(r)), b_gray);
            let r_mix = _mm256_add_epi16(_mm256_add_epi16(rb.times(b), rr.times(r)), r_gray);
            narrow(b_mix, lanes_mut(b_out));
            narrow(r_mix, lanes_mut(r_out));
            done += LANES;
        }
        done
    }

    /// The sixteen samples of `row` re-sited by `to_jfif::centre`, centred on 0, and the
    /// sixteen as they are, centred on 0.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn resited(row: &[u8; LANES + 1]) -> (__m256i, __m256i) {
        let (here, next) = (widen(lanes(&row[..LANES]), 0), widen(lanes(&row[1..]), 0));
        let sum = _mm256_add_epi16(_mm256_add_epi16(here, _mm256_add_epi16(here, here)), next);
        // (3·here + next + 2) >> 2 is within 0..=255: no clamp is lost by not narrowing.
        let centred = _mm256_srli_epi16(_mm256_add_epi16(sum, _mm256_set1_epi16(2)), 2);
        let mid = _mm256_set1_epi16(128);
        (_mm256_sub_epi16(centred, mid), _mm256_sub_epi16(here, mid))
    }

    /// `centre`, then `ToJfif::chroma_row`, and `ToJfif::luma_gain` of the samples as they
    /// are, in one pass: every sample that has one after it.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(in crate::jpeg) fn resited_chroma_row(
        chroma: [[Coefficient; 2]; 2],
        gray: [i16; 2],
        from: [Coefficient; 2],
        cb: &[u8],
        cr: &[u8],
        cb_out: &mut [u8],
        cr_out: &mut [u8],
        mut gain: Option<&mut [i16]>,
    ) -> usize {
        let samples = cb.len().min(cr.len()).min(cb_out.len()).min(cr_out.len());
        let samples = gain.as_ref().map_or(samples, |g| samples.min(g.len()));
        let Some(last) = samples.checked_sub(LANES + 1) else {
            return 0;
        };
        let [[bb, br], [rb, rr]] = chroma;
        let (bb, br, rb, rr) = (
            Splat::new(bb),
            Splat::new(br),
            Splat::new(rb),
            Splat::new(rr),
        );
        let (from_b, from_r) = (Splat::new(from[0]), Splat::new(from[1]));
        let (b_gray, r_gray) = (_mm256_set1_epi16(gray[0]), _mm256_set1_epi16(gray[1]));
        overlapping(0, last, |i| {
            let (b, b_here) = resited(cb[i..i + LANES + 1].try_into().expect("17 samples"));
            let (r, r_here) = resited(cr[i..i + LANES + 1].try_into().expect("17 samples"));
            let b_mix = _mm256_add_epi16(_mm256_add_epi16(bb.times(b), br.times(r)), b_gray);
            let r_mix = _mm256_add_epi16(_mm256_add_epi16(rb.times(b), rr.times(r)), r_gray);
            narrow(b_mix, lanes_mut(&mut cb_out[i..i + LANES]));
            narrow(r_mix, lanes_mut(&mut cr_out[i..i + LANES]));
            if let Some(gain) = gain.as_deref_mut() {
                let g = _mm256_add_epi16(from_b.times(b_here), from_r.times(r_here));
                store_i16(g, &mut gain[i..i + LANES]);
            }
        });
        last + LANES
    }

    /// `ToJfif::luma_gain` on the row's whole vectors.
    #[target_feature(enable = "avx2")]
    pub(in crate::jpeg) fn luma_gain(
        from: [Coefficient; 2],
        cb: &[u8],
        cr: &[u8],
        gain: &mut [i16],
    ) -> usize {
        let (from_b, from_r) = (Splat::new(from[0]), Splat::new(from[1]));
        let mut done = 0;
        let ins = cb.chunks_exact(LANES).zip(cr.chunks_exact(LANES));
        for (out, (b, r)) in gain.chunks_exact_mut(LANES).zip(ins) {
            let (b, r) = (widen(lanes(b), 128), widen(lanes(r), 128));
            store_i16(_mm256_add_epi16(from_b.times(b), from_r.times(r)), out);
            done += LANES;
        }
        done
    }

    /// `(wa·a + wb·b + 2) >> 2` in every lane.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn mix(a: __m256i, wa: i16, b: __m256i, wb: i16) -> __m256i {
        let sum = _mm256_add_epi16(
            _mm256_mullo_epi16(a, _mm256_set1_epi16(wa)),
            _mm256_mullo_epi16(b, _mm256_set1_epi16(wb)),
        );
        _mm256_srai_epi16(_mm256_add_epi16(sum, _mm256_set1_epi16(2)), 2)
    }

    /// `Siting::Cosited`'s weights, as `spread_step` takes them.
    const COSITED: [i16; 4] = [0, 4, 2, 2];

    /// `spread` of the sixteen gains after the first of `gain` into 32 outputs.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn spread_step(gain: &[i16; LANES + 2], weights: [i16; 4], out: &mut [i16; 2 * LANES]) {
        let [even_before, even_here, odd_here, odd_after] = weights;
        let (before, here, after) = (
            load_i16(&gain[..]),
            load_i16(&gain[1..]),
            load_i16(&gain[2..]),
        );
        let (even, odd) = match weights == COSITED {
            // (4·here + 2) >> 2 is here, and (2·here + 2·after + 2) >> 2 is
            // (here + after + 1) >> 1: the same values without the multiplies.
            true => {
                let sum = _mm256_add_epi16(_mm256_add_epi16(here, after), _mm256_set1_epi16(1));
                (here, _mm256_srai_epi16(sum, 1))
            }
            false => (
                mix(before, even_before, here, even_here),
                mix(here, odd_here, after, odd_after),
            ),
        };
        // The unpacks work within 128-bit lanes: their halves go back in order.
        let (low, high) = (
            _mm256_unpacklo_epi16(even, odd),
            _mm256_unpackhi_epi16(even, odd),
        );
        store_i16(
            _mm256_permute2x128_si256(low, high, 0x20),
            &mut out[..LANES],
        );
        store_i16(
            _mm256_permute2x128_si256(low, high, 0x31),
            &mut out[LANES..],
        );
    }

    /// `spread` of chroma samples 1, 2, … while sixteen and the one after them are there:
    /// returns the chroma samples done (sample 0, which has none before it, is left).
    #[target_feature(enable = "avx2")]
    pub(in crate::jpeg) fn spread(gain: &[i16], siting: Siting, bias: &mut [i16]) -> usize {
        let ([even_before, even_here], [odd_here, odd_after]) = siting.weights();
        // The last start has the sample after its sixteen and room for their 32 outputs.
        let last = gain.len().checked_sub(LANES + 1);
        let last = last
            .zip((bias.len() / 2).checked_sub(LANES))
            .map(|(a, b)| a.min(b));
        let Some(last) = last.filter(|&last| last >= 1) else {
            return 0;
        };
        let weights = [even_before, even_here, odd_here, odd_after];
        overlapping(1, last, |i| {
            let input = gain[i - 1..i + LANES + 1].try_into().expect("18 gains");
            let out = (&mut bias[2 * i..2 * (i + LANES)])
                .try_into()
                .expect("32 outputs");
            spread_step(input, weights, out)
        });
        // Sample 0 is left to the portable loop: it takes up from there.
        last + LANES
    }
}

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

    /// Both x86-64 paths give the same samples, whichever the CPU would pick.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_rows_equal_sse2_rows() {
        use super::{avx2, sse2};
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let map = standard(BT709, LIMITED);
        let (chroma, from, scale) = (map.chroma, map.luma_from_chroma, map.luma);
        for len in [17, 64, 100, 250] {
            let (cb, cr, y) = (noise(len, 1), noise(len, 2), noise(4 * len, 3));
            let gain: Vec<i16> = cb.iter().map(|&g| i16::from(g) * 3 - 380).collect();
            let ([mut b1, mut r1, mut b2, mut r2], mut done) = ([(); 4].map(|_| vec![0u8; len]), 0);
            // SAFETY: the CPU has AVX2 (checked above).
            let avx2_done =
                unsafe { avx2::chroma_row(chroma, [128, 128], &cb, &cr, &mut b1, &mut r1) };
            done += sse2::chroma_row(chroma, [128, 128], &cb, &cr, &mut b2, &mut r2);
            let n = avx2_done.min(done);
            assert_eq!(
                (&b1[..n], &r1[..n]),
                (&b2[..n], &r2[..n]),
                "chroma of {len}"
            );
            let (mut g1, mut g2) = (vec![0i16; len], vec![0i16; len]);
            // SAFETY: as above.
            let n = unsafe { avx2::luma_gain(from, &cb, &cr, &mut g1) }
                .min(sse2::luma_gain(from, &cb, &cr, &mut g2));
            assert_eq!(&g1[..n], &g2[..n], "gain of {len}");
            let (mut l1, mut l2) = (vec![0u8; len], vec![0u8; len]);
            // SAFETY: as above.
            let n = unsafe { avx2::luma_row(7, scale, &y, &gain, &mut l1) }
                .min(sse2::luma_row(7, scale, &y, &gain, &mut l2));
            assert_eq!(&l1[..n], &l2[..n], "luma of {len}");
            let (mut c1, mut c2) = (vec![0u8; len], vec![0u8; len]);
            // SAFETY: as above.
            let n = unsafe { avx2::centre(&cb, &mut c1) }.min(sse2::centre(&cb, &mut c2));
            assert!(n >= 16 || len < 32, "{n} of {len}");
            assert_eq!(&c1[..n], &c2[..n], "centre of {len}");
            for siting in [Siting::Cosited, Siting::Centred] {
                let (mut s1, mut s2) = (vec![0i16; 2 * len], vec![0i16; 2 * len]);
                // SAFETY: as above.
                let n = unsafe { avx2::spread(&gain, siting, &mut s1) }
                    .min(sse2::spread(&gain, siting, &mut s2))
                    .max(1);
                assert_eq!(&s1[2..2 * n], &s2[2..2 * n], "{siting:?} spread of {len}");
            }
            for (word, shift) in [(2, 0), (2, 8), (4, 8), (4, 24)] {
                let (mut o1, mut o2) = (vec![0u8; len], vec![0u8; len]);
                let row = &y[..(word * len).min(y.len())];
                // SAFETY: as above.
                let n = match word {
                    2 => unsafe { avx2::gather_u16(row, shift, &mut o1) }
                        .min(sse2::gather_u16(row, shift, &mut o2)),
                    _ => unsafe { avx2::gather_u32(row, shift, &mut o1) }
                        .min(sse2::gather_u32(row, shift, &mut o2)),
                };
                assert_eq!(&o1[..n], &o2[..n], "gather {word} {shift} of {len}");
            }
        }
    }

    #[test]
    fn vector_centre_equals_the_portable_loop() {
        for len in [1, 2, 16, 17, 18, 40, 101] {
            let row = noise(len, 6);
            let mut out = vec![0u8; len];
            super::super::to_jfif::centre(&row, &mut out);
            for i in 0..len {
                let next = row.get(i + 1).copied().unwrap_or(row[i]);
                let expected = (3 * u16::from(row[i]) + u16::from(next) + 2) >> 2;
                let expected = if i + 1 == len { row[i] } else { expected as u8 };
                assert_eq!(out[i], expected, "{i} of {len}");
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
