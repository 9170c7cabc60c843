// SPDX-License-Identifier: MPL-2.0
//! Camera formats (YUY2, NV12, I420, …) into payloads: JPEG straight from their Y'CbCr
//! planes, the colorimetry of the caps mapped to JFIF's on the way; raw frames converted to
//! the BGR array vidgear expects by GStreamer's own `VideoConverter`, as `videoconvert`
//! would convert them.

use super::colorimetry;
use super::wire_to_buffer::new_pool;
use super::FrameError;
use gst::prelude::*;
use gst_video::prelude::*;
use gst_video::{VideoChromaSite, VideoFormat};
use netgear_protocol::jpeg::{
    Component, EncodeParams, Encoder, SharedYuv, Siting, Subsampling, ToJfif, YuvImage, YuvLayout,
    YuvScratch, YuvSource,
};
use netgear_protocol::{Dtype, RawLayout};
use std::sync::Arc;

/// What the caps say about each camera-format buffer.
#[derive(Debug, Clone)]
pub struct YuvInput {
    info: gst_video::VideoInfo,
    layout: YuvLayout,
    to_jfif: ToJfif,
    /// The (h, w, 3) BGR array raw frames are sent as.
    bgr: RawLayout,
    jpeg: bool,
}

impl YuvInput {
    pub fn new(info: gst_video::VideoInfo, jpeg_compression: bool) -> Result<YuvInput, FrameError> {
        let unsupported = || FrameError::Unsupported(info.format().to_str().to_string());
        let layout = yuv_layout(&info).ok_or_else(unsupported)?;
        let to_jfif = colorimetry::to_jfif(&info, &layout).ok_or_else(|| {
            FrameError::Unsupported(format!("colorimetry {}", info.colorimetry()))
        })?;
        let bgr = RawLayout::new(Dtype::U8, info.height() as usize, info.width() as usize, 3);
        Ok(YuvInput {
            info,
            layout,
            to_jfif,
            bgr,
            jpeg: jpeg_compression,
        })
    }

    /// JPEG-encoded (else converted to BGR and sent raw).
    pub fn jpeg(&self) -> bool {
        self.jpeg
    }

    /// The array raw frames are sent as.
    pub fn bgr_layout(&self) -> RawLayout {
        self.bgr
    }
}

/// Where the caps' Y, Cb and Cr samples lie, how chroma is subsampled and where it sits,
/// from GStreamer's description of the format (and its default siting where the caps say
/// nothing: co-sited for HD, centred for SD).
fn yuv_layout(info: &gst_video::VideoInfo) -> Option<YuvLayout> {
    let format = info.format_info();
    if !format.is_yuv() || format.n_components() != 3 || format.bits() != 8 {
        return None;
    }
    let subsampling = match (format.w_sub()[1], format.h_sub()[1]) {
        (1, 1) => Subsampling::S420,
        (1, 0) => Subsampling::S422,
        (0, 0) => Subsampling::S444,
        _ => return None,
    };
    let component = |c: usize| {
        Some(Component {
            plane: usize::try_from(format.plane()[c]).ok()?,
            offset: usize::try_from(format.poffset()[c]).ok()?,
            step: usize::try_from(format.pixel_stride()[c]).ok()?,
        })
    };
    Some(YuvLayout {
        components: [component(0)?, component(1)?, component(2)?],
        subsampling,
        siting: match info.chroma_site().contains(VideoChromaSite::H_COSITED) {
            true => Siting::Cosited,
            false => Siting::Centred,
        },
    })
}

/// A mapped camera frame; lent to an encoder thread as it is.
struct MappedYuv {
    frame: gst_video::VideoFrame<gst_video::video_frame::Readable>,
    layout: YuvLayout,
    to_jfif: ToJfif,
}

impl YuvSource for MappedYuv {
    fn image(&self) -> YuvImage<'_> {
        let [y, u, v, _] = self.frame.planes_data();
        // A negative stride cannot hold a row: the encoder refuses the picture.
        let stride = |plane: usize| {
            let stride = self.frame.plane_stride().get(plane).copied().unwrap_or(0);
            usize::try_from(stride).unwrap_or(0)
        };
        YuvImage {
            planes: [y, u, v],
            strides: [stride(0), stride(1), stride(2)],
            width: self.frame.width() as usize,
            height: self.frame.height() as usize,
            layout: self.layout,
            to_jfif: self.to_jfif,
        }
    }
}

fn map(buffer: &gst::Buffer, input: &YuvInput) -> Result<MappedYuv, FrameError> {
    let frame = gst_video::VideoFrame::from_buffer_readable(buffer.clone(), &input.info)
        .map_err(|_| FrameError::Buffer)?;
    Ok(MappedYuv {
        frame,
        layout: input.layout,
        to_jfif: input.to_jfif,
    })
}

/// For a parallel encoder: the buffer's planes, mapped (no copy).
pub fn lend_planes(buffer: &gst::Buffer, input: &YuvInput) -> Result<SharedYuv, FrameError> {
    Ok(Arc::new(map(buffer, input)?))
}

/// Converts camera frames to tight BGR rows in buffers of its own pool, with as many
/// threads as there are cores.
struct ToBgr {
    from: gst_video::VideoInfo,
    to: gst_video::VideoInfo,
    converter: gst_video::VideoConverter,
    pool: gst::BufferPool,
}

impl ToBgr {
    fn new(from: &gst_video::VideoInfo) -> Result<ToBgr, FrameError> {
        let row = from.width() as usize * 3;
        let size = row * from.height() as usize;
        let stride = [i32::try_from(row).map_err(|_| FrameError::Buffer)?];
        let to = gst_video::VideoInfo::builder(VideoFormat::Bgr, from.width(), from.height())
            .fps(from.fps())
            .par(from.par())
            .interlace_mode(from.interlace_mode())
            .stride(&stride)
            .offset(&[0])
            .size(size)
            .build()
            .map_err(|_| FrameError::Buffer)?;
        let mut config = gst_video::VideoConverterConfig::new();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        config.set_threads(u32::try_from(cores).unwrap_or(1));
        let converter = gst_video::VideoConverter::new(from, &to, Some(config))
            .map_err(|_| FrameError::Unsupported(from.format().to_str().to_string()))?;
        let caps = to.to_caps().map_err(|_| FrameError::Buffer)?;
        Ok(ToBgr {
            from: from.clone(),
            pool: new_pool(&caps, size)?,
            to,
            converter,
        })
    }

    fn convert(&self, buffer: &gst::Buffer) -> Result<gst::Buffer, FrameError> {
        let src = gst_video::VideoFrame::from_buffer_readable(buffer.clone(), &self.from)
            .map_err(|_| FrameError::Buffer)?;
        let out = self
            .pool
            .acquire_buffer(None)
            .map_err(|_| FrameError::Buffer)?;
        let mut dest = gst_video::VideoFrame::from_buffer_writable(out, &self.to)
            .map_err(|_| FrameError::Buffer)?;
        self.converter.frame(&src, &mut dest);
        Ok(dest.into_buffer())
    }
}

impl Drop for ToBgr {
    fn drop(&mut self) {
        // Buffers still on the wire go back to a pool that frees them.
        let _ = self.pool.set_active(false);
    }
}

/// Camera frames prepared in series: the encoder's scratch planes and the BGR converter,
/// kept across frames.
#[derive(Default)]
pub struct YuvWriter {
    planes: YuvScratch,
    to_bgr: Option<ToBgr>,
}

impl YuvWriter {
    /// Encodes a frame to JPEG into `out`.
    pub fn encode(
        &mut self,
        buffer: &gst::Buffer,
        input: &YuvInput,
        encoder: &mut Encoder,
        params: EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<(), FrameError> {
        let mapped = map(buffer, input)?;
        encoder
            .encode_yuv(&mapped.image(), params, &mut self.planes, out)
            .map_err(FrameError::Encode)
    }

    /// Converts a frame to the tight BGR rows vidgear expects, in a buffer of our pool.
    pub fn convert_to_bgr(
        &mut self,
        buffer: &gst::Buffer,
        input: &YuvInput,
    ) -> Result<gst::Buffer, FrameError> {
        let to_bgr = match &mut self.to_bgr {
            Some(c) if c.from == input.info => c,
            slot => slot.insert(ToBgr::new(&input.info)?),
        };
        to_bgr.convert(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn input(caps: &str) -> YuvInput {
        gst::init().unwrap();
        let caps = gst::Caps::from_str(caps).unwrap();
        YuvInput::new(gst_video::VideoInfo::from_caps(&caps).unwrap(), true).unwrap()
    }

    #[test]
    fn full_range_bt601_needs_no_transform_and_other_colorimetries_do() {
        for format in ["I420", "NV12", "YUY2", "Y444"] {
            let caps = |extra: &str| {
                format!("video/x-raw,format={format},width=640,height=480,framerate=30/1{extra}")
            };
            let jfif = input(&caps(",colorimetry=1:4:0:0")).to_jfif;
            assert!(jfif.is_identity(), "{format}: {jfif:?}");
            let sd = input(&caps("")).to_jfif;
            assert!(
                !sd.is_identity() && !sd.luma_needs_chroma(),
                "{format}: {sd:?}"
            );
            let bt709 = input(&caps(",colorimetry=bt709")).to_jfif;
            assert!(bt709.luma_needs_chroma(), "{format}: {bt709:?}");
        }
    }

    #[test]
    fn layouts_and_sitings_come_from_the_caps() {
        let yuy2 = input("video/x-raw,format=YUY2,width=1280,height=720,framerate=30/1");
        let comp = |plane, offset, step| Component {
            plane,
            offset,
            step,
        };
        let expected = [comp(0, 0, 2), comp(0, 1, 4), comp(0, 3, 4)];
        assert_eq!(yuy2.layout.components, expected);
        assert_eq!(yuy2.layout.subsampling, Subsampling::S422);
        assert_eq!(yuy2.layout.siting, Siting::Cosited, "HD's default");
        assert!(yuy2.to_jfif.luma_needs_chroma(), "HD's default is BT.709");
        let nv21 = input("video/x-raw,format=NV21,width=640,height=480,framerate=30/1");
        let expected = [comp(0, 0, 1), comp(1, 1, 2), comp(1, 0, 2)];
        assert_eq!(nv21.layout.components, expected);
        assert_eq!(nv21.layout.subsampling, Subsampling::S420);
        assert_eq!(nv21.layout.siting, Siting::Centred, "SD's default");
        assert_eq!(nv21.bgr_layout().frame_bytes(), 640 * 480 * 3);
    }
}
