// SPDX-License-Identifier: MPL-2.0
//! Which GStreamer video formats travel as which NetGear frames: the table of raw formats
//! the sink sends (and how their pixels map to OpenCV's order), the formats the source
//! produces, and the caps of our pads. Arrays no video format carries are tensors
//! ([`tensors`]).

pub mod tensors;

use gst_video::VideoFormat;
use netgear_protocol::jpeg::{Colorspace, Subsampling};
use netgear_protocol::pixels::PixelMap;
use netgear_protocol::{Dtype, RawLayout};

/// A raw format we accept, how its pixels map to OpenCV's BGR / BGRA / gray, the numpy
/// layout it is sent as, and the colorspace JPEG encodes it from (None: no JPEG).
#[derive(Debug, Clone, Copy)]
pub struct SendFormat {
    pub video: VideoFormat,
    pub pixels: PixelMap,
    pub dtype: Dtype,
    pub channels: usize,
    pub jpeg_colorspace: Option<&'static str>,
}

const fn u8_format(
    video: VideoFormat,
    in_bytes: usize,
    picks: &'static [usize],
    jpeg_colorspace: &'static str,
) -> SendFormat {
    SendFormat {
        video,
        pixels: PixelMap { in_bytes, picks },
        dtype: Dtype::U8,
        channels: picks.len(),
        jpeg_colorspace: Some(jpeg_colorspace),
    }
}

/// Every raw format `netgearsink` takes. x-formats drop their padding byte: numpy sees BGR.
pub const SEND_FORMATS: &[SendFormat] = &[
    u8_format(VideoFormat::Bgr, 3, &[0, 1, 2], "BGR"),
    u8_format(VideoFormat::Rgb, 3, &[2, 1, 0], "RGB"),
    u8_format(VideoFormat::Bgrx, 4, &[0, 1, 2], "BGRX"),
    u8_format(VideoFormat::Rgbx, 4, &[2, 1, 0], "RGBX"),
    u8_format(VideoFormat::Xbgr, 4, &[1, 2, 3], "XBGR"),
    u8_format(VideoFormat::Xrgb, 4, &[3, 2, 1], "XRGB"),
    u8_format(VideoFormat::Bgra, 4, &[0, 1, 2, 3], "BGRA"),
    u8_format(VideoFormat::Rgba, 4, &[2, 1, 0, 3], "RGBA"),
    u8_format(VideoFormat::Abgr, 4, &[1, 2, 3, 0], "ABGR"),
    u8_format(VideoFormat::Argb, 4, &[3, 2, 1, 0], "ARGB"),
    u8_format(VideoFormat::Gray8, 1, &[0], "GRAY"),
    SendFormat {
        video: VideoFormat::Gray16Le,
        pixels: PixelMap {
            in_bytes: 2,
            picks: &[0, 1],
        },
        dtype: Dtype::U16,
        channels: 1,
        jpeg_colorspace: None,
    },
];

/// Camera formats `netgearsink` JPEG-encodes straight from their Y'CbCr planes (in their
/// own chroma subsampling) and sends raw as BGR.
pub const CAMERA_FORMATS: &[VideoFormat] = &[
    VideoFormat::Yuy2,
    VideoFormat::Uyvy,
    VideoFormat::Yvyu,
    VideoFormat::Nv12,
    VideoFormat::Nv21,
    VideoFormat::I420,
    VideoFormat::Yv12,
    VideoFormat::Nv16,
    VideoFormat::Nv61,
    VideoFormat::Y42b,
    VideoFormat::Nv24,
    VideoFormat::Y444,
];

/// The table's entry for `format`.
pub fn send_format(format: VideoFormat) -> Option<&'static SendFormat> {
    SEND_FORMATS.iter().find(|f| f.video == format)
}

/// Formats the source pad can carry.
pub const SRC_FORMATS: &[VideoFormat] = &[
    VideoFormat::Bgr,
    VideoFormat::Bgra,
    VideoFormat::Gray8,
    VideoFormat::Gray16Le,
    VideoFormat::Rgb,
    VideoFormat::Bgrx,
    VideoFormat::Rgbx,
    VideoFormat::Xbgr,
    VideoFormat::Xrgb,
    VideoFormat::Rgba,
    VideoFormat::Abgr,
    VideoFormat::Argb,
    // JPEG only: decoded without colour conversion.
    VideoFormat::I420,
    VideoFormat::Y42b,
    VideoFormat::Y444,
];

/// Planar formats a JPEG decodes into, in order of preference (I420 is what encoders take).
pub const PLANAR_FORMATS: &[(VideoFormat, Subsampling)] = &[
    (VideoFormat::I420, Subsampling::S420),
    (VideoFormat::Y42b, Subsampling::S422),
    (VideoFormat::Y444, Subsampling::S444),
];

/// The planar format of a subsampling.
pub fn planar_format(subsampling: Subsampling) -> VideoFormat {
    PLANAR_FORMATS
        .iter()
        .find(|(_, s)| *s == subsampling)
        .map_or(VideoFormat::I420, |(f, _)| *f)
}

/// Packed formats a raw frame of `channels` 8-bit channels can be rewritten into.
pub fn reorderable(channels: usize) -> impl Iterator<Item = &'static SendFormat> {
    SEND_FORMATS
        .iter()
        .filter(move |f| (3..=4).contains(&channels) && f.dtype == Dtype::U8 && f.channels >= 3)
}

/// The GStreamer video format of a raw NetGear layout (OpenCV's BGR, BGRA and gray), or
/// `None` for arrays that travel as tensors.
pub fn raw_format(layout: &RawLayout) -> Option<VideoFormat> {
    match (layout.dtype, layout.channels) {
        _ if !layout.is_video() => None,
        (Dtype::U16, _) => Some(VideoFormat::Gray16Le),
        (Dtype::U8, 3) => Some(VideoFormat::Bgr),
        (Dtype::U8, 4) => Some(VideoFormat::Bgra),
        _ => Some(VideoFormat::Gray8),
    }
}

/// The raw format a JPEG decodes to for a header's colorspace (CMYK and unknown: BGR).
pub fn decoded_format(colorspace: &str) -> (Colorspace, VideoFormat) {
    let known = SEND_FORMATS.iter().find_map(|f| {
        let name = f.jpeg_colorspace?;
        if !name.eq_ignore_ascii_case(colorspace) {
            return None;
        }
        Colorspace::from_name(name).map(|cs| (cs, f.video))
    });
    known.unwrap_or_else(|| {
        // A constant of the table above, not network input.
        let bgr = Colorspace::from_name("BGR").expect("BGR is a known colorspace");
        (bgr, VideoFormat::Bgr)
    })
}

/// `video/x-raw` in `formats`, or `image/jpeg`: the caps of every pad of ours.
pub fn raw_or_jpeg_caps(formats: impl IntoIterator<Item = VideoFormat>) -> gst::Caps {
    let mut caps = gst_video::VideoCapsBuilder::new()
        .format_list(formats)
        .build();
    caps.merge(gst::Caps::builder("image/jpeg").build());
    caps
}

/// The caps of everything `netgearsink` sends (and `netgearsrc` returns): video, JPEG
/// and tensors.
pub fn send_caps() -> gst::Caps {
    let formats = SEND_FORMATS.iter().map(|f| f.video);
    let mut caps = raw_or_jpeg_caps(formats.chain(CAMERA_FORMATS.iter().copied()));
    caps.merge(tensors::template_caps());
    caps
}

/// The caps of everything `netgearsrc` produces: video, JPEG and tensors.
pub fn src_caps() -> gst::Caps {
    let mut caps = raw_or_jpeg_caps(SRC_FORMATS.iter().copied());
    caps.merge(tensors::template_caps());
    caps
}
