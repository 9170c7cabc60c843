// SPDX-License-Identifier: MPL-2.0
//! Y'CbCr of any matrix and range into JFIF's full-range BT.601, without going through RGB.
//! The input's Y'CbCr → R'G'B' (as GStreamer's converter does it: an [`RgbMap`]) followed
//! by JFIF's R'G'B' → Y'CbCr is one affine map in which luma is its own value rescaled plus
//! a little of the chroma, and chroma mixes only chroma. It runs on 16-bit lanes (SSE2 on
//! x86-64, see `row_simd`) to within two code values of the exact map.

use super::row_simd as simd;

/// An affine map from 8-bit Y'CbCr to 8-bit R'G'B': for R, G and B in turn,
/// `[per Y − 128, per Cb − 128, per Cr − 128, at mid gray]`.
pub type RgbMap = [[f64; 4]; 3];

/// JFIF's R'G'B' → Y'CbCr (BT.601, full range), without the chroma's 128.
const JFIF: [[f64; 3]; 3] = [
    [0.299, 0.587, 0.114],
    [-0.168_736, -0.331_264, 0.5],
    [0.5, -0.418_688, -0.081_312],
];

/// A coefficient as a whole number and a fraction in 256ths below one half, so that every
/// product with a centred 8-bit sample fits 16 bits: `c·x = whole·x + (fraction·x + 128) >> 8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Coefficient {
    pub(super) whole: i16,
    pub(super) fraction: i16,
}

impl Coefficient {
    const ZERO: Coefficient = Coefficient {
        whole: 0,
        fraction: 0,
    };
    const ONE: Coefficient = Coefficient {
        whole: 1,
        fraction: 0,
    };

    /// `None` beyond ±8, far from any standard matrix's coefficients.
    fn new(value: f64) -> Option<Coefficient> {
        let whole = value.round();
        let fraction = ((value - whole) * 256.0).round().clamp(-128.0, 128.0);
        (whole.abs() <= 8.0).then_some(Coefficient {
            whole: whole as i16,
            fraction: fraction as i16,
        })
    }

    #[inline(always)]
    fn times(self, sample: i16) -> i16 {
        self.whole * sample + ((sample * self.fraction + 128) >> 8)
    }
}

/// The map from one Y'CbCr encoding to JFIF's, on samples centred on 128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToJfif {
    pub(super) luma: Coefficient,
    /// What Cb − 128 and Cr − 128 add to luma (matrices other than BT.601).
    pub(super) luma_from_chroma: [Coefficient; 2],
    /// Cb' and Cr' from Cb − 128 and Cr − 128.
    pub(super) chroma: [[Coefficient; 2]; 2],
    /// Y', Cb' and Cr' of mid gray.
    gray: [i16; 3],
}

#[inline(always)]
fn to_u8(value: i16) -> u8 {
    value.clamp(0, 255) as u8
}

#[inline(always)]
fn centred(sample: u8) -> i16 {
    i16::from(sample) - 128
}

impl ToJfif {
    /// Already JFIF's: nothing to do.
    pub const IDENTITY: ToJfif = ToJfif {
        luma: Coefficient::ONE,
        luma_from_chroma: [Coefficient::ZERO; 2],
        chroma: [
            [Coefficient::ONE, Coefficient::ZERO],
            [Coefficient::ZERO, Coefficient::ONE],
        ],
        gray: [128; 3],
    };

    /// JFIF's Y'CbCr of what `map` makes R'G'B' of; `None` for coefficients no matrix has.
    /// Chroma taking anything from luma (no converter's map does) is left out, and a map
    /// that moves no sample by a code value is taken as none.
    pub fn from_rgb_map(map: &RgbMap) -> Option<ToJfif> {
        // JFIF's output `o` per input term `t` (Y, Cb, Cr, mid gray).
        let term = |o: usize, t: usize| (0..3).map(|c| JFIF[o][c] * map[c][t]).sum::<f64>();
        let level = |o: usize| term(o, 3) + if o == 0 { 0.0 } else { 128.0 };
        // How far output `o` can move from the sample it came from, in code values.
        let reach = |o: usize| {
            let coefficients = (0..3).map(|t| (term(o, t) - f64::from(u8::from(o == t))).abs());
            coefficients.sum::<f64>() * 128.0 + (level(o) - 128.0).abs()
        };
        if (0..3).all(|o| reach(o) < 1.0) {
            return Some(ToJfif::IDENTITY);
        }
        let coefficient = |o: usize, t: usize| Coefficient::new(term(o, t));
        let gray = |o: usize| {
            let level = level(o);
            (-1024.0..=1024.0)
                .contains(&level)
                .then_some(level.round() as i16)
        };
        Some(ToJfif {
            luma: coefficient(0, 0)?,
            luma_from_chroma: [coefficient(0, 1)?, coefficient(0, 2)?],
            chroma: [
                [coefficient(1, 1)?, coefficient(1, 2)?],
                [coefficient(2, 1)?, coefficient(2, 2)?],
            ],
            gray: [gray(0)?, gray(1)?, gray(2)?],
        })
    }

    pub fn is_identity(&self) -> bool {
        *self == ToJfif::IDENTITY
    }

    /// Whether luma takes anything from chroma (not for BT.601 input).
    pub fn luma_needs_chroma(&self) -> bool {
        self.luma_from_chroma != [Coefficient::ZERO; 2]
    }

    /// Cb' and Cr' of one row of Cb and Cr samples.
    pub fn chroma_row(&self, cb: &[u8], cr: &[u8], cb_out: &mut [u8], cr_out: &mut [u8]) {
        let gray = [self.gray[1], self.gray[2]];
        let done = simd::chroma_row(self.chroma, gray, cb, cr, cb_out, cr_out);
        let [[bb, br], [rb, rr]] = self.chroma;
        let samples = cb.iter().zip(cr).skip(done);
        let outs = cb_out.iter_mut().zip(cr_out.iter_mut()).skip(done);
        for ((b_out, r_out), (&b, &r)) in outs.zip(samples) {
            let (b, r) = (centred(b), centred(r));
            *b_out = to_u8(gray[0] + bb.times(b) + br.times(r));
            *r_out = to_u8(gray[1] + rb.times(b) + rr.times(r));
        }
    }

    /// Cb' and Cr' of a row of co-sited chroma re-sited by [`centre`] (through `centred`,
    /// rows of the chroma's width), and with `gain` the luma gains of the samples as they
    /// are: [`centre`], [`ToJfif::chroma_row`] and [`ToJfif::luma_gain`] in one pass over
    /// the row where the CPU has the vectors for it, one after the other for the rest.
    pub fn resited_chroma_row(
        &self,
        [cb, cr]: [&[u8]; 2],
        [cb_centred, cr_centred]: [&mut [u8]; 2],
        [cb_out, cr_out]: [&mut [u8]; 2],
        mut gain: Option<&mut [i16]>,
    ) {
        let gray = [self.gray[1], self.gray[2]];
        let (chroma, from) = (self.chroma, self.luma_from_chroma);
        let gains = gain.as_deref_mut();
        let done = simd::resited_chroma_row(chroma, gray, from, cb, cr, cb_out, cr_out, gains);
        let (cb_rest, cr_rest) = (&cb[done..], &cr[done..]);
        centre(cb_rest, &mut cb_centred[done..]);
        centre(cr_rest, &mut cr_centred[done..]);
        let (cb_centred, cr_centred) = (&cb_centred[done..], &cr_centred[done..]);
        self.chroma_row(
            cb_centred,
            cr_centred,
            &mut cb_out[done..],
            &mut cr_out[done..],
        );
        if let Some(gain) = gain {
            self.luma_gain(cb_rest, cr_rest, &mut gain[done..]);
        }
    }

    /// What each chroma sample of a row adds to the luma samples it serves.
    pub fn luma_gain(&self, cb: &[u8], cr: &[u8], gain: &mut [i16]) {
        let done = simd::luma_gain(self.luma_from_chroma, cb, cr, gain);
        let [from_b, from_r] = self.luma_from_chroma;
        let samples = cb.iter().zip(cr).skip(done);
        for (g, (&b, &r)) in gain.iter_mut().skip(done).zip(samples) {
            *g = from_b.times(centred(b)) + from_r.times(centred(r));
        }
    }

    /// Y' of one row of luma samples, with the bias each gains from chroma (the gains of
    /// [`ToJfif::luma_gain`], spread over the row by [`spread`] where chroma is subsampled).
    pub fn luma_row(&self, luma: &[u8], bias: &[i16], out: &mut [u8]) {
        let (gray, scale) = (self.gray[0], self.luma);
        let done = simd::luma_row(gray, scale, luma, bias, out);
        let samples = luma.iter().zip(bias).skip(done);
        for (o, (&y, &b)) in out.iter_mut().skip(done).zip(samples) {
            *o = to_u8(gray + scale.times(centred(y)) + b);
        }
    }
}

/// Where chroma samples sit horizontally: on the even luma samples (MPEG-2, GStreamer's
/// default for HD) or between two (JPEG, GStreamer's default for SD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Siting {
    Cosited,
    Centred,
}

impl Siting {
    /// Quarters of (the chroma sample before, this one) for an even luma sample, and of
    /// (this one, the one after) for an odd one: GStreamer's linear chroma upsampling.
    pub(super) fn weights(self) -> ([i16; 2], [i16; 2]) {
        match self {
            Siting::Cosited => ([0, 4], [2, 2]),
            Siting::Centred => ([1, 3], [3, 1]),
        }
    }
}

/// Spreads a row of chroma gains over twice as many luma samples, interpolated as
/// `videoconvert` interpolates chroma, so that the luma of colour edges comes out as it
/// does there; the row's ends repeat their last sample.
pub fn spread(gain: &[i16], siting: Siting, bias: &mut [i16]) {
    let ([even_before, even_here], [odd_here, odd_after]) = siting.weights();
    // The vector loop leaves sample 0 and the row's tail.
    let done = simd::spread(gain, siting, bias).max(1);
    let at = |i: usize| gain.get(i).or(gain.last()).copied().unwrap_or(0);
    let (len, pairs) = (bias.len(), bias.len().div_ceil(2));
    for i in std::iter::once(0).chain(done..pairs).filter(|&i| i < pairs) {
        let pair = &mut bias[2 * i..(2 * i + 2).min(len)];
        let (before, here, after) = (at(i.saturating_sub(1)), at(i), at(i + 1));
        pair[0] = (even_before * before + even_here * here + 2) >> 2;
        if let Some(odd) = pair.get_mut(1) {
            *odd = (odd_here * here + odd_after * after + 2) >> 2;
        }
    }
}

/// Co-sited chroma re-sited between its luma pairs, where JPEG decoders take it to be:
/// each sample becomes the linear interpolation at its pair's centre (three quarters of
/// itself, one of the next).
pub fn centre(row: &[u8], out: &mut [u8]) {
    let Some(&last) = row.last() else {
        return;
    };
    let done = simd::centre(row, out);
    let pairs = out.iter_mut().zip(row).zip(&row[1..]).skip(done);
    for ((o, &here), &next) in pairs {
        *o = ((3 * u16::from(here) + u16::from(next) + 2) >> 2) as u8;
    }
    if let Some(o) = out.get_mut(row.len() - 1) {
        *o = last;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An 8-bit Y'CbCr signal's black level and spans: limited range is 16 / 219 / 224,
    /// full range 0 / 255 / 255.
    #[derive(Debug, Clone, Copy)]
    pub(in crate::jpeg) struct SignalRange(pub f64, pub f64, pub f64);

    pub(in crate::jpeg) const LIMITED: SignalRange = SignalRange(16.0, 219.0, 224.0);
    pub(in crate::jpeg) const FULL: SignalRange = SignalRange(0.0, 255.0, 255.0);
    pub(in crate::jpeg) const BT601: (f64, f64) = (0.299, 0.114);
    pub(in crate::jpeg) const BT709: (f64, f64) = (0.2126, 0.0722);

    /// (Y', Pb, Pr) → R'G'B' of a matrix with luma weights `kr`, `kb`.
    fn ypbpr_to_rgb((kr, kb): (f64, f64), [y, pb, pr]: [f64; 3]) -> [f64; 3] {
        let r = y + 2.0 * (1.0 - kr) * pr;
        let b = y + 2.0 * (1.0 - kb) * pb;
        let g = (y - kr * r - kb * b) / (1.0 - kr - kb);
        [r, g, b]
    }

    /// The standard's exact R'G'B' (0..255) of an 8-bit sample.
    fn to_rgb(matrix: (f64, f64), range: SignalRange, [y, cb, cr]: [f64; 3]) -> [f64; 3] {
        let SignalRange(black, luma_span, chroma_span) = range;
        let ypbpr = [
            (y - black) / luma_span,
            (cb - 128.0) / chroma_span,
            (cr - 128.0) / chroma_span,
        ];
        ypbpr_to_rgb(matrix, ypbpr).map(|v| 255.0 * v)
    }

    /// The standard's exact map, as GStreamer's converter would ideally make it.
    pub(in crate::jpeg) fn standard(matrix: (f64, f64), range: SignalRange) -> ToJfif {
        let gray = to_rgb(matrix, range, [128.0; 3]);
        let step = |i: usize| {
            let mut sample = [128.0; 3];
            sample[i] += 1.0;
            to_rgb(matrix, range, sample)
        };
        let (dy, db, dr) = (step(0), step(1), step(2));
        let map: RgbMap =
            [0, 1, 2].map(|c| [dy[c] - gray[c], db[c] - gray[c], dr[c] - gray[c], gray[c]]);
        ToJfif::from_rgb_map(&map).unwrap()
    }

    /// The same map in floating point, through R'G'B' as videoconvert computes it.
    fn through_rgb(matrix: (f64, f64), range: SignalRange, sample: [u8; 3]) -> [f64; 3] {
        let rgb = to_rgb(matrix, range, sample.map(f64::from));
        let [y, cb, cr] = JFIF.map(|row| row.iter().zip(rgb).map(|(w, v)| w * v).sum::<f64>());
        [y, cb + 128.0, cr + 128.0]
    }

    fn apply(map: &ToJfif, [y, cb, cr]: [u8; 3]) -> [u8; 3] {
        let (mut b, mut r, mut bias, mut out) = ([0u8], [0u8], [0i16], [0u8]);
        map.chroma_row(&[cb], &[cr], &mut b, &mut r);
        map.luma_gain(&[cb], &[cr], &mut bias);
        map.luma_row(&[y], &bias, &mut out);
        [out[0], b[0], r[0]]
    }

    /// Every in-gamut sample of a grid lands within two code values of the exact map.
    fn assert_matches_rgb_round_trip(matrix: (f64, f64), range: SignalRange) {
        let map = standard(matrix, range);
        for y in (16..=235).step_by(7) {
            for cb in (16..=240).step_by(8) {
                for cr in (16..=240).step_by(8) {
                    let sample = [y as u8, cb as u8, cr as u8];
                    let exact = through_rgb(matrix, range, sample);
                    if exact.iter().any(|v| !(0.0..=255.0).contains(v)) {
                        continue;
                    }
                    let got = apply(&map, sample);
                    for (g, e) in got.iter().zip(exact) {
                        assert!(
                            (f64::from(*g) - e).abs() <= 2.0,
                            "{sample:?}: got {got:?}, exact {exact:?} ({matrix:?}, {range:?})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn limited_and_full_range_of_bt601_and_bt709_match_the_rgb_round_trip() {
        assert_matches_rgb_round_trip(BT601, LIMITED);
        assert_matches_rgb_round_trip(BT709, LIMITED);
        assert_matches_rgb_round_trip(BT709, FULL);
    }

    #[test]
    fn full_range_bt601_is_the_identity_and_limited_range_is_stretched() {
        assert!(standard(BT601, FULL).is_identity());
        let limited = standard(BT601, LIMITED);
        assert!(!limited.is_identity());
        assert_eq!(apply(&limited, [16, 128, 128]), [0, 128, 128]);
        assert_eq!(apply(&limited, [235, 128, 128]), [255, 128, 128]);
        assert_eq!(apply(&limited, [0, 0, 255]), [0, 0, 255], "clamped");
        assert_eq!(apply(&ToJfif::IDENTITY, [7, 99, 201]), [7, 99, 201]);
    }

    /// The one-pass re-sited row gives what centre, chroma_row and luma_gain give.
    #[test]
    fn resited_rows_equal_centre_then_map() {
        let noise = |len: usize, seed: usize| -> Vec<u8> {
            (0..len)
                .map(|i| ((i * 7919 + seed * 104_729) % 256) as u8)
                .collect()
        };
        for map in [standard(BT709, LIMITED), standard(BT601, LIMITED)] {
            for len in [1, 16, 17, 18, 40, 960, 961] {
                let (cb, cr) = (noise(len, 1), noise(len, 2));
                let (mut cbc, mut crc) = (vec![0u8; len], vec![0u8; len]);
                centre(&cb, &mut cbc);
                centre(&cr, &mut crc);
                let (mut b, mut r, mut g) =
                    (vec![0u8; len + 3], vec![0u8; len + 3], vec![0i16; len]);
                map.chroma_row(&cbc, &crc, &mut b, &mut r);
                map.luma_gain(&cb, &cr, &mut g);
                for with_gain in [true, false] {
                    let (mut b1, mut r1, mut g1) =
                        (vec![0u8; len + 3], vec![0u8; len + 3], vec![0i16; len]);
                    let (mut s1, mut s2) = (vec![0u8; len], vec![0u8; len]);
                    let gain = with_gain.then_some(&mut g1[..]);
                    map.resited_chroma_row(
                        [&cb, &cr],
                        [&mut s1, &mut s2],
                        [&mut b1, &mut r1],
                        gain,
                    );
                    assert_eq!((&b1, &r1), (&b, &r), "chroma of {len}");
                    if with_gain {
                        assert_eq!(g1, g, "gain of {len}");
                    }
                }
            }
        }
    }

    #[test]
    fn chroma_gains_spread_over_luma_as_videoconvert_interpolates_chroma() {
        let map = standard(BT709, LIMITED);
        let mut gain = [0i16; 3];
        map.luma_gain(&[200, 128, 60], &[60, 128, 200], &mut gain);
        assert_eq!(gain[1], 0, "neutral chroma adds nothing");
        assert!(gain[0] < 0 && gain[2] > 0, "{gain:?}");
        let mut bias = [0i16; 5];
        spread(&[40, 0, 80], Siting::Cosited, &mut bias);
        assert_eq!(
            bias,
            [40, 20, 0, 40, 80],
            "on the even samples, halfway between"
        );
        spread(&[40, 0, 80], Siting::Centred, &mut bias);
        assert_eq!(bias, [40, 30, 10, 20, 60], "a quarter and three quarters");
        let mut centred = [0u8; 3];
        centre(&[40, 0, 80], &mut centred);
        assert_eq!(centred, [30, 20, 80], "JPEG's siting, the last repeated");
        let mut even = [0i16; 6];
        spread(&[40, 0, 80], Siting::Cosited, &mut even);
        assert_eq!(even[5], 80, "the row's end repeats its last sample");
        assert!(!standard(BT601, LIMITED).luma_needs_chroma());
        assert!(map.luma_needs_chroma());
    }
}
