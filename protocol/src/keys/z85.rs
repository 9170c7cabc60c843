// SPDX-License-Identifier: MPL-2.0
//! Z85 (ZeroMQ RFC 32) decoding of CURVE keys, strict: every character must be in the
//! alphabet and every 5-character group must fit 32 bits. (zmq's `z85_decode` ignores
//! libzmq's error return, so a key with foreign characters decoded to garbage.)

use thiserror::Error;

const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Why a Z85 text is not a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Z85Error {
    #[error("is {0} characters long, a key is 40")]
    Length(usize),
    #[error("holds a character outside the Z85 alphabet at position {0}")]
    Character(usize),
    #[error("holds a 5-character group above 2^32 at position {0}")]
    Overflow(usize),
}

fn digit(c: u8) -> Option<u64> {
    ALPHABET.iter().position(|a| *a == c).map(|i| i as u64)
}

/// Decodes the 40-character Z85 form of a 32-byte key.
pub fn decode_key(text: &str) -> Result<[u8; 32], Z85Error> {
    let bytes = text.as_bytes();
    if bytes.len() != 40 {
        return Err(Z85Error::Length(text.chars().count()));
    }
    let mut key = [0u8; 32];
    for (group, (chars, out)) in bytes
        .chunks_exact(5)
        .zip(key.chunks_exact_mut(4))
        .enumerate()
    {
        let mut value = 0u64;
        for (i, c) in chars.iter().enumerate() {
            let d = digit(*c).ok_or(Z85Error::Character(group * 5 + i))?;
            value = value * 85 + d;
        }
        let value = u32::try_from(value).map_err(|_| Z85Error::Overflow(group * 5))?;
        out.copy_from_slice(&value.to_be_bytes());
    }
    Ok(key)
}

/// Encodes a 32-byte key as 40 Z85 characters.
pub fn encode_key(key: &[u8; 32]) -> String {
    let mut text = String::with_capacity(40);
    for chunk in key.chunks_exact(4) {
        let mut value = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let mut group = [0u8; 5];
        for slot in group.iter_mut().rev() {
            *slot = ALPHABET[(value % 85) as usize];
            value /= 85;
        }
        text.extend(group.iter().map(|b| *b as char));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_libzmq() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 37 + 11) as u8);
        let text = encode_key(&key);
        assert_eq!(text, zmq::z85_encode(&key).unwrap());
        assert_eq!(decode_key(&text).unwrap(), key);
        // RFC 32's test vector, repeated to key length.
        let hello = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        let mut long = [0u8; 32];
        for (i, b) in long.iter_mut().enumerate() {
            *b = hello[i % 8];
        }
        assert_eq!(encode_key(&long), "HelloWorld".repeat(4));
    }

    #[test]
    fn refuses_foreign_characters_lengths_and_overflow() {
        let good = "Z0XTG!:9*W}-$dBe74qU0-FMwFOiyM30XyP*^y#x";
        assert!(decode_key(good).is_ok());
        assert_eq!(decode_key(&good[..39]), Err(Z85Error::Length(39)));
        let bad = good.replacen('Z', "~", 1);
        assert_eq!(decode_key(&bad), Err(Z85Error::Character(0)));
        let spaced = good.replacen('9', " ", 1);
        assert_eq!(decode_key(&spaced), Err(Z85Error::Character(7)));
        let over = format!("#####{}", &good[5..]);
        assert_eq!(decode_key(&over), Err(Z85Error::Overflow(0)));
        assert_eq!(decode_key(&"é".repeat(20)), Err(Z85Error::Character(0)));
        assert_eq!(decode_key("é"), Err(Z85Error::Length(1)));
    }
}
