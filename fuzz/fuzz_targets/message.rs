// SPDX-License-Identifier: MPL-2.0
//! vidgear messages: the input as a JSON text on its own (the Python-compatible scanner and
//! respacing), inside a vidgear header (the header parser around it), and as a reply.
#![no_main]
use netgear_protocol::{
    encode_data_reply, encode_frame_header, parse_header, parse_reply, Dtype, Incoming,
    JsonText, PayloadKind, RawLayout, Reply,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut header = br#"{"terminate_flag": false, "compression": false, "message": "#.to_vec();
    header.extend_from_slice(data);
    header.extend_from_slice(br#", "pattern": "0", "dtype": "uint8", "shape": [1, 1]}"#);
    let embedded = parse_header(&header);
    let _ = parse_reply(data);
    let Ok(text) = JsonText::parse_bytes(data) else {
        return;
    };
    // Accepted text stays accepted and unchanged once respaced, and what the header parser
    // keeps is the same text.
    let again = JsonText::parse(text.as_str()).expect("respaced text stays valid");
    assert_eq!(again, text);
    let _ = text.python_type_name();
    let expected = text.is_truthy().then(|| text.clone());
    match embedded {
        Ok(Incoming::Frame(h)) => assert_eq!(h.message, expected),
        other => panic!("a valid message made the header fail: {other:?}"),
    }
    let layout = PayloadKind::Raw(RawLayout::new(Dtype::U8, 1, 1, 1));
    let written = encode_frame_header(None, &layout, &text, 0);
    match parse_header(&written) {
        Ok(Incoming::Frame(h)) => assert_eq!(h.message, expected),
        other => panic!("our own header did not parse: {other:?}"),
    }
    match parse_reply(&encode_data_reply(Some(5555), &text)) {
        Ok(Reply::Data { port, data }) => assert!(port == Some(5555) && data == text),
        other => panic!("our own reply did not parse: {other:?}"),
    }
});
