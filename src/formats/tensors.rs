// SPDX-License-Identifier: MPL-2.0
//! Arrays that no video format carries (float32 depth maps, int16 thermal images,
//! two-channel flow fields, …) travel as one tensor in NNStreamer's `other/tensors` caps:
//!
//! ```text
//! other/tensors, format=(string)static, num_tensors=(int)1, types=(string)float32,
//!     dimensions=(string)2:640:480, framerate=(fraction)0/1
//! ```
//!
//! NNStreamer's conventions (its "Data Type, Caps, and Flow Design" notes,
//! <https://github.com/nnstreamer/nnstreamer/wiki/AD:-Data-Type,-Caps,-and-Flow-Design>):
//! `dimensions` lists the sizes innermost first, separated by `:`, so numpy's `[h, w, c]`
//! is `c:w:h`; `types` uses the names `uint8 int8 uint16 int16 uint32 int32 uint64 int64
//! float16 float32 float64`, which are numpy's dtype names too. A buffer is the packed
//! array, C-contiguous and little-endian: exactly the NetGear payload.
//!
//! The rank is the number of entries in `dimensions`: `w:h` is numpy's 2-D `[h, w]`, and
//! `1:w:h` its 3-D `[h, w, 1]`, so both come back as the shape that was sent. NNStreamer
//! pads shapes with trailing 1s (`3:640:480:1`): entries past the third must be 1 and are
//! ignored.

use gst::prelude::*;
use netgear_protocol::{Dtype, RawLayout};

/// The caps media type.
pub const MEDIA_TYPE: &str = "other/tensors";

/// Why tensor caps do not describe an array we can send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorCapsError {
    #[error("{MEDIA_TYPE} caps lack '{0}'")]
    Missing(&'static str),
    #[error("{MEDIA_TYPE} caps have {field}={value}: {expected}")]
    Unsupported {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// `dimensions` of a layout: `c:w:h`, or `w:h` for a 2-D array.
pub fn dimensions(layout: &RawLayout) -> String {
    match layout.two_d {
        true => format!("{}:{}", layout.width, layout.height),
        false => format!("{}:{}:{}", layout.channels, layout.width, layout.height),
    }
}

/// numpy's shape (outermost first) of a `dimensions` string, or `None` if it is not a
/// 2-D or 3-D shape.
pub fn parse_dimensions(text: &str) -> Option<Vec<usize>> {
    let mut dims: Vec<usize> = text
        .split(':')
        .map(|d| d.trim().parse().ok())
        .collect::<Option<_>>()?;
    while dims.len() > 3 && dims.last() == Some(&1) {
        dims.pop();
    }
    dims.reverse();
    matches!(dims.len(), 2 | 3).then_some(dims)
}

/// The caps of frames of `layout`, variable framerate.
pub fn caps(layout: &RawLayout) -> gst::Caps {
    gst::Caps::builder(MEDIA_TYPE)
        .field("format", "static")
        .field("num_tensors", 1i32)
        .field("types", layout.dtype.name())
        .field("dimensions", dimensions(layout))
        .field("framerate", gst::Fraction::new(0, 1))
        .build()
}

/// Every tensor we take or make: one static tensor of any dtype, any dimensions.
pub fn template_caps() -> gst::Caps {
    let types = gst::List::new(Dtype::ALL.iter().map(|d| d.name()));
    gst::Caps::builder(MEDIA_TYPE)
        .field("format", "static")
        .field("num_tensors", 1i32)
        .field("types", types)
        .build()
}

/// The array layout that tensor caps describe.
pub fn layout_from_caps(s: &gst::StructureRef) -> Result<RawLayout, TensorCapsError> {
    let unsupported = |field, value: String, expected| TensorCapsError::Unsupported {
        field,
        value,
        expected,
    };
    // NNStreamer's default format is static; flexible and sparse tensors carry their
    // own headers in each buffer, which NetGear has no use for.
    if let Ok(format) = s.get::<&str>("format") {
        if format != "static" {
            return Err(unsupported("format", format.into(), "only static"));
        }
    }
    if let Ok(n) = s.get::<i32>("num_tensors") {
        if n != 1 {
            return Err(unsupported("num_tensors", n.to_string(), "only 1"));
        }
    }
    let types = s
        .get::<&str>("types")
        .map_err(|_| TensorCapsError::Missing("types"))?;
    let dtype = Dtype::from_name(types.trim()).ok_or_else(|| {
        let expected =
            "one of uint8 int8 uint16 int16 uint32 int32 uint64 int64 float16 float32 float64";
        unsupported("types", types.into(), expected)
    })?;
    let text = match s.value("dimensions") {
        Err(_) => return Err(TensorCapsError::Missing("dimensions")),
        Ok(value) => value.get::<&str>().map_err(|_| {
            // Unquoted, GStreamer reads "640:480" as a flag set (and loses it).
            let value = value.serialize().map(|v| v.to_string()).unwrap_or_default();
            unsupported(
                "dimensions",
                value,
                "a string: write dimensions=(string)w:h",
            )
        })?,
    };
    let expected = "w:h or c:w:h, each 1..=32768";
    parse_dimensions(text)
        .and_then(|dims| RawLayout::from_dims(dtype, &dims))
        .ok_or_else(|| unsupported("dimensions", text.into(), expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_of(caps: &str) -> Result<RawLayout, TensorCapsError> {
        gst::init().unwrap();
        let caps: gst::Caps = caps.parse().unwrap();
        layout_from_caps(caps.structure(0).unwrap())
    }

    #[test]
    fn dimensions_are_innermost_first_and_keep_the_rank() {
        let three = RawLayout::from_dims(Dtype::F32, &[480, 640, 2]).unwrap();
        assert_eq!(dimensions(&three), "2:640:480");
        let two = RawLayout::from_dims(Dtype::F32, &[480, 640]).unwrap();
        assert_eq!(dimensions(&two), "640:480");
        let one_channel = RawLayout::from_dims(Dtype::I16, &[480, 640, 1]).unwrap();
        assert_eq!(dimensions(&one_channel), "1:640:480");
        assert_eq!(parse_dimensions("640:480"), Some(vec![480, 640]));
        assert_eq!(parse_dimensions("1:640:480"), Some(vec![480, 640, 1]));
        assert_eq!(parse_dimensions("3:640:480:1"), Some(vec![480, 640, 3]));
        assert_eq!(parse_dimensions("3:640:480:2"), None);
        assert_eq!(parse_dimensions("640"), None);
        assert_eq!(parse_dimensions("a:b"), None);
        assert_eq!(parse_dimensions("-1:4"), None);
    }

    #[test]
    fn caps_round_trip_to_the_same_layout() {
        gst::init().unwrap();
        for dims in [&[3usize, 5][..], &[3, 5, 1], &[3, 5, 2], &[3, 5, 7]] {
            for dtype in Dtype::ALL {
                let layout = RawLayout::from_dims(dtype, dims).unwrap();
                let caps = caps(&layout);
                assert_eq!(layout_from_caps(caps.structure(0).unwrap()), Ok(layout));
                assert!(caps.can_intersect(&template_caps()), "{caps}");
            }
        }
    }

    #[test]
    fn caps_nnstreamer_writes_are_read() {
        let layout =
            layout_of("other/tensors,num_tensors=1,dimensions=3:640:480:1,types=uint16,format=static,framerate=30/1")
                .unwrap();
        assert_eq!(layout.shape(), vec![480, 640, 3]);
        assert_eq!(layout.dtype, Dtype::U16);
    }

    #[test]
    fn unusable_caps_are_refused_with_the_reason() {
        let refused = [
            (
                "other/tensors,format=flexible,types=uint8,dimensions=2:2",
                "format",
            ),
            (
                "other/tensors,num_tensors=2,types=uint8,dimensions=2:2",
                "num_tensors",
            ),
            ("other/tensors,types=bool,dimensions=2:2", "types"),
            ("other/tensors,types=uint8.uint8,dimensions=2:2", "types"),
            (
                "other/tensors,types=float32,dimensions=(string)0:2",
                "dimensions",
            ),
            (
                "other/tensors,types=float32,dimensions=(string)2:2:2:2",
                "dimensions",
            ),
            (
                "other/tensors,types=float32,dimensions=(string)40000:2",
                "dimensions",
            ),
            (
                "other/tensors,types=float32,dimensions=640:480",
                "dimensions",
            ),
        ];
        for (caps, field) in refused {
            match layout_of(caps) {
                Err(TensorCapsError::Unsupported { field: f, .. }) => {
                    assert_eq!(f, field, "{caps}")
                }
                other => panic!("{caps}: {other:?}"),
            }
        }
        assert_eq!(
            layout_of("other/tensors,types=float32"),
            Err(TensorCapsError::Missing("dimensions"))
        );
    }
}
