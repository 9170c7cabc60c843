// SPDX-License-Identifier: MPL-2.0
//! Any first message part: a sender's header or a receiver's reply.
#![no_main]
use netgear_protocol::{check_raw_payload, parse_header, parse_reply, Incoming, PayloadKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Incoming::Frame(header)) = parse_header(data) {
        if let PayloadKind::Raw(layout) = header.payload {
            let _ = check_raw_payload(&layout, data.len());
        }
    }
    let _ = parse_reply(data);
});
