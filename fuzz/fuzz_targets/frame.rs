// SPDX-License-Identifier: MPL-2.0
//! A whole frame message as netgearsrc handles it: header, size checks, then the raw rows
//! copied into GStreamer's padded layout or the JPEG decoded, with a 16 MB frame limit.
//! The input is split at its first NUL byte into header and payload.
#![no_main]
use netgear_protocol::jpeg::{Colorspace, DecodeParams, Decoder};
use netgear_protocol::pixels::copy_rows;
use netgear_protocol::{check_raw_payload, parse_header, Incoming, PayloadKind};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (header, payload) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let Ok(Incoming::Frame(frame)) = parse_header(header) else { return };
    match frame.payload {
        PayloadKind::Raw(layout) => {
            if check_raw_payload(&layout, payload.len()).is_err() {
                return;
            }
            // Allocation follows the payload actually received, never the header's claim.
            let stride = layout.row_bytes().div_ceil(4) * 4;
            let mut out = vec![0u8; stride * layout.height];
            assert!(copy_rows(payload, layout.row_bytes(), &mut out, stride, layout.row_bytes(), layout.height).is_some());
        }
        PayloadKind::Jpeg(c) => {
            let Ok(mut decoder) = Decoder::new() else { return };
            let Ok(info) = decoder.info(payload) else { return };
            let cs = Colorspace::from_name(&c.colorspace).or_else(|| Colorspace::from_name("BGR")).unwrap();
            let pitch = info.width * cs.bytes_per_pixel();
            if pitch.saturating_mul(info.height) > LIMIT {
                return;
            }
            let mut out = vec![0u8; pitch * info.height];
            let _ = decoder.decode(payload, info, cs, pitch, DecodeParams { fast_dct: c.dct, fast_upsample: c.ups }, &mut out);
        }
    }
});
