// SPDX-License-Identifier: MPL-2.0
//! Key files: the certificate reader on arbitrary bytes, and the Z85 key decoder.
#![no_main]
use netgear_protocol::keys::{parse_certificate, z85};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = z85::decode_key(text) {
            assert_eq!(z85::encode_key(&key), text, "Z85 round trip");
        }
    }
    let Ok(cert) = parse_certificate(data) else {
        return;
    };
    // What was accepted writes back as a certificate that reads the same.
    let mut text = format!("curve\n    public-key = \"{}\"\n", z85::encode_key(&cert.public));
    if let Some(secret) = &cert.secret {
        text.push_str(&format!("    secret-key = \"{}\"\n", z85::encode_key(secret)));
    }
    let again = parse_certificate(text.as_bytes()).expect("a written certificate reads back");
    assert!(again == cert);
});
