// SPDX-License-Identifier: MPL-2.0
//! Frame contents: the test frames (the same formulas as tests/python/netgear_peer.py),
//! GStreamer's row layout, JPEG made by the plugin's encoder, and raw frame headers.

use super::{init, Frame};
use netgear_protocol::jpeg::{Colorspace, EncodeParams, Encoder, Image};
use netgear_protocol::{encode_frame_header, Dtype, JsonText, PayloadKind, RawLayout};

/// The test frame, packed as numpy would hold it: `value = idx*7 + y*3 + x*5 + c*11`.
pub fn test_frame(
    idx: usize,
    width: usize,
    height: usize,
    channels: usize,
    u16_samples: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height * channels * if u16_samples { 2 } else { 1 });
    for y in 0..height {
        for x in 0..width {
            for c in 0..channels {
                let v = idx * 7 + y * 3 + x * 5 + c * 11;
                if u16_samples {
                    out.extend_from_slice(&((v % 65536) as u16).to_le_bytes());
                } else {
                    out.push((v % 256) as u8);
                }
            }
        }
    }
    out
}

/// Continuous content for JPEG tests (netgear_peer.py's smooth_frame).
pub fn smooth_frame(idx: usize, width: usize, height: usize, channels: usize) -> Vec<u8> {
    let tri = |t: usize| {
        let t = t % 256;
        if t < 128 {
            t * 2
        } else {
            (255 - t) * 2
        }
    };
    let mut out = Vec::with_capacity(width * height * channels);
    for y in 0..height {
        for x in 0..width {
            for c in 0..channels {
                out.push(((tri(x * 2 + idx * 7) + tri(y * 3 + c * 40)) / 2) as u8);
            }
        }
    }
    out
}

/// Peak signal-to-noise ratio of two equally long 8-bit images, in dB.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "images differ in size");
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

/// The index of a uint8 test frame, from its first byte.
pub fn frame_index(packed: &[u8]) -> usize {
    (usize::from(packed[0]) * 183) % 256
}

/// The index of a uint8 or (`u16_samples`) uint16 test frame, from its first sample.
fn sample_frame_index(packed: &[u8], u16_samples: bool) -> usize {
    if u16_samples {
        usize::from(u16::from_le_bytes([packed[0], packed[1]])) / 7
    } else {
        frame_index(packed)
    }
}

/// The indices of `frames`, each checked to be the whole test frame of its index in this
/// shape, and to come after the frame before it; `what` names the stream in failures.
pub fn test_frame_indices(
    frames: &[Frame],
    (width, height, channels): (usize, usize, usize),
    u16_samples: bool,
    what: &str,
) -> Vec<usize> {
    let mut indices: Vec<usize> = Vec::with_capacity(frames.len());
    for frame in frames {
        let packed = frame.packed();
        let idx = sample_frame_index(&packed, u16_samples);
        assert!(
            indices.last().is_none_or(|l| idx > *l),
            "{what}: frames out of order"
        );
        assert!(
            packed == test_frame(idx, width, height, channels, u16_samples),
            "{what}: frame {idx} differs"
        );
        indices.push(idx);
    }
    indices
}

/// Lays packed rows out as GStreamer stores them (rows padded to the format's stride).
pub fn to_gst_layout(packed: &[u8], info: &gst_video::VideoInfo) -> Vec<u8> {
    let row = packed.len() / info.height() as usize;
    let stride = info.stride()[0] as usize;
    let mut out = vec![0u8; info.size()];
    for (src, dst) in packed.chunks(row).zip(out.chunks_mut(stride)) {
        dst[..row].copy_from_slice(src);
    }
    out
}

/// Packs a GStreamer buffer's rows tight again.
pub fn from_gst_layout(data: &[u8], info: &gst_video::VideoInfo) -> Vec<u8> {
    let finfo = info.format_info();
    let row = info.width() as usize * finfo.pixel_stride()[0] as usize;
    let stride = info.stride()[0] as usize;
    data.chunks(stride)
        .take(info.height() as usize)
        .flat_map(|r| r[..row].to_vec())
        .collect()
}

pub fn video_info(format: gst_video::VideoFormat, width: u32, height: u32) -> gst_video::VideoInfo {
    init();
    gst_video::VideoInfo::builder(format, width, height)
        .fps(gst::Fraction::new(30, 1))
        .build()
        .expect("video info")
}

/// Frame `idx` of a 30 fps stream as a buffer: `data` as it is, stamped idx × 33 ms.
pub fn frame_buffer(data: Vec<u8>, idx: u64) -> gst::Buffer {
    let mut buffer = gst::Buffer::from_mut_slice(data);
    buffer
        .get_mut()
        .expect("writable")
        .set_pts(gst::ClockTime::from_mseconds(idx * 33));
    buffer
}

/// Packed BGR rows as JPEG, the way the sink encodes by default (quality 90, fast DCT).
pub fn encode_jpeg(pixels: &[u8], width: usize, height: usize) -> Vec<u8> {
    let image = Image {
        pixels,
        width,
        height,
        pitch: width * 3,
        colorspace: Colorspace::from_name("BGR").expect("BGR"),
    };
    let params = EncodeParams {
        quality: 90,
        fast_dct: true,
    };
    let mut jpeg = Vec::new();
    Encoder::new()
        .expect("encoder")
        .encode(image, params, &mut jpeg)
        .expect("encode");
    jpeg
}

/// Makes a baseline JPEG's frame header claim another size: a JPEG bomb.
pub fn claim_jpeg_size(jpeg: &mut [u8], width: u16, height: u16) {
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF0");
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
}

/// The header of a raw uint8 frame, without a message (one channel goes 2-D).
pub fn raw_header(height: usize, width: usize, channels: usize, pattern: u8) -> Vec<u8> {
    encode_frame_header(
        None,
        &PayloadKind::Raw(RawLayout::new(Dtype::U8, height, width, channels)),
        &JsonText::null(),
        pattern,
    )
}
