// SPDX-License-Identifier: MPL-2.0
//! The caps' colorimetry as JFIF's full-range BT.601 needs it, read off GStreamer's own
//! converter, so JPEG straight from the planes has the colours `videoconvert` gives the
//! same frames (its conversions differ from the standards', and from format to format, by
//! a code value or three): ramps of Y, Cb and Cr, the rest at mid gray, in the caps' own
//! format are converted to BGR once per caps, and each ramp's slope is fitted over the
//! samples the conversion did not clip.

use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoInfo};
use netgear_protocol::jpeg::{RgbMap, ToJfif, YuvLayout};

/// Luma samples per ramp: every code value.
const RAMP: usize = 256;
/// Rows per ramp, read in the middle: chroma resampled across rows stays within the ramp.
const RAMP_ROWS: usize = 8;

/// Conversions this close to either end may be clipped.
const UNCLIPPED: std::ops::RangeInclusive<u8> = 2..=253;
/// Samples this close to a ramp's ends may be resampled with the edge.
const EDGE: usize = 4;

/// The map from `info`'s Y'CbCr (GStreamer's defaults where the caps say nothing: BT.601
/// for SD, BT.709 for HD, limited range), laid out as `layout`, to JFIF's.
pub fn to_jfif(info: &VideoInfo, layout: &YuvLayout) -> Option<ToJfif> {
    let bgr = probe(info, layout)?;
    let per_chroma = 1 << info.format_info().w_sub()[1];
    let mut map: RgbMap = [[0.0; 4]; 3];
    for (rgb, row) in map.iter_mut().enumerate() {
        let channel = 2 - rgb;
        for ramp in 0..3 {
            // The code value the sample serving luma sample x was given.
            let step = if ramp == 0 { 1 } else { per_chroma };
            let points = (EDGE..RAMP - EDGE)
                .map(|x| (x / step * step, bgr[(ramp * RAMP + x) * 3 + channel]));
            let (slope, mid) = fit(points)?;
            row[ramp] = slope;
            if ramp == 0 {
                row[3] = mid;
            }
        }
    }
    ToJfif::from_rgb_map(&map)
}

/// The least-squares slope of a ramp's unclipped values, and its value at mid gray.
fn fit(ramp: impl Iterator<Item = (usize, u8)>) -> Option<(f64, f64)> {
    let points: Vec<(f64, f64)> = ramp
        .filter(|(_, v)| UNCLIPPED.contains(v))
        .map(|(x, v)| (x as f64, f64::from(v)))
        .collect();
    if points.len() < 16 {
        return None;
    }
    let n = points.len() as f64;
    let (mean_x, mean_v) = points
        .iter()
        .fold((0.0, 0.0), |(x, v), p| (x + p.0 / n, v + p.1 / n));
    let (covariance, variance) = points.iter().fold((0.0, 0.0), |(c, var), (x, v)| {
        (
            c + (x - mean_x) * (v - mean_v),
            var + (x - mean_x) * (x - mean_x),
        )
    });
    let slope = covariance / variance;
    Some((slope, mean_v + slope * (128.0 - mean_x)))
}

/// Three ramps in the caps' format and colorimetry converted to packed BGR by GStreamer,
/// without dithering: the middle row of each.
fn probe(info: &VideoInfo, layout: &YuvLayout) -> Option<Vec<u8>> {
    let (width, height) = (RAMP as u32, (3 * RAMP_ROWS) as u32);
    let ramps = VideoInfo::builder(info.format(), width, height)
        .colorimetry(&info.colorimetry())
        .chroma_site(info.chroma_site())
        .build()
        .ok()?;
    let bgr = VideoInfo::builder(VideoFormat::Bgr, width, height)
        .build()
        .ok()?;
    let mut config = gst_video::VideoConverterConfig::new();
    config.set_dither_method(gst_video::VideoDitherMethod::None);
    let converter = gst_video::VideoConverter::new(&ramps, &bgr, Some(config)).ok()?;
    let buffer = gst::Buffer::with_size(ramps.size()).ok()?;
    let mut input = gst_video::VideoFrame::from_buffer_writable(buffer, &ramps).ok()?;
    fill(&mut input, layout)?;
    let input = gst_video::VideoFrame::from_buffer_readable(input.into_buffer(), &ramps).ok()?;
    let buffer = gst::Buffer::with_size(bgr.size()).ok()?;
    let mut output = gst_video::VideoFrame::from_buffer_writable(buffer, &bgr).ok()?;
    converter.frame(&input, &mut output);
    let stride = usize::try_from(output.plane_stride()[0]).ok()?;
    let data = output.plane_data(0).ok()?;
    let rows = data
        .chunks(stride)
        .skip(RAMP_ROWS / 2)
        .step_by(RAMP_ROWS)
        .take(3);
    Some(rows.flat_map(|row| row[..RAMP * 3].to_vec()).collect())
}

/// Ramp k runs over component k (0 … 255 across the row), every other component at 128.
fn fill(
    frame: &mut gst_video::VideoFrame<gst_video::video_frame::Writable>,
    layout: &YuvLayout,
) -> Option<()> {
    let finfo = frame.format_info();
    for (c, comp) in layout.components.iter().enumerate() {
        let (w_sub, h_sub) = match c {
            0 => (0, 0),
            _ => (finfo.w_sub()[c], finfo.h_sub()[c]),
        };
        let (samples, rows_per_ramp) = (RAMP >> w_sub, RAMP_ROWS >> h_sub);
        let stride = usize::try_from(frame.plane_stride()[comp.plane]).ok()?;
        let data = frame.plane_data_mut(comp.plane as u32).ok()?;
        for (row, bytes) in data.chunks_mut(stride).take(3 * rows_per_ramp).enumerate() {
            for i in 0..samples {
                let value = match row / rows_per_ramp == c {
                    true => (i << w_sub) as u8,
                    false => 128,
                };
                *bytes.get_mut(comp.offset + i * comp.step)? = value;
            }
        }
    }
    Some(())
}
