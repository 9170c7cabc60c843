// SPDX-License-Identifier: MPL-2.0
//! What listens at a receiver's endpoint, learned without becoming its peer: a plain TCP
//! connection reads the peer's ZMTP 3 greeting (its security mechanism) and, with the NULL
//! mechanism, its READY command (its Socket-Type, so its NetGear pattern). Ours never
//! sends a READY, so the peer never completes a handshake with it and no pair slot is
//! taken; a netgearsrc counts it as a probe. See rfc.zeromq.org/spec/23.

use super::events::Mismatch;
use crate::config::Pattern;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// What the probe found at an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// It answered with bytes that are no ZMTP greeting.
    NotZeroMq,
    /// It accepted the connection but sent no greeting before closing or timing out.
    Silent,
    /// A ZeroMQ peer: its mechanism (`NULL`, `CURVE`, `PLAIN`) and, for NULL, its socket
    /// type (`PAIR`, `REP`, `SUB`, …) if its READY came.
    Zmtp {
        mechanism: String,
        socket_type: Option<String>,
    },
}

/// ZMTP 3.0 greeting with the NULL mechanism, as a client.
fn greeting() -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// Probes `endpoint` (`tcp://host:port`; anything else: `None`), waiting at most `timeout`
/// for each read. `None` also when no connection could be made.
pub fn probe(endpoint: &str, timeout: Duration) -> Option<Found> {
    let authority = endpoint.strip_prefix("tcp://")?;
    let address = authority.to_socket_addrs().ok()?.next()?;
    let mut stream = TcpStream::connect_timeout(&address, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    Some(read_peer(&mut stream))
}

/// The part of our greeting sent first: signature and major version. libzmq answers it
/// with the rest of its greeting, before it reads our mechanism (and, on a mismatch,
/// closes without sending that rest).
const GREETING_HEAD: usize = 11;

/// Greets, reads the peer's greeting and, for NULL, its READY.
fn read_peer(stream: &mut (impl Read + Write)) -> Found {
    let ours = greeting();
    let _ = stream.write_all(&ours[..GREETING_HEAD]);
    let mut greeting = [0u8; 64];
    match read_full(stream, &mut greeting) {
        0 => return Found::Silent,
        n if n < greeting.len() => return found_partial(&greeting[..n]),
        _ => {}
    }
    if !is_signature(&greeting) || greeting[10] < 3 {
        return Found::NotZeroMq;
    }
    let mechanism = mechanism_of(&greeting);
    let socket_type = if mechanism == "NULL" {
        let _ = stream.write_all(&ours[GREETING_HEAD..]);
        read_ready(stream)
    } else {
        None
    };
    Found::Zmtp {
        mechanism,
        socket_type,
    }
}

/// A greeting cut short: a ZMTP signature that stopped early still names a ZeroMQ peer.
fn found_partial(bytes: &[u8]) -> Found {
    if bytes[0] == 0xff && (bytes.len() < 10 || bytes[9] & 1 == 1) {
        Found::Zmtp {
            mechanism: String::new(),
            socket_type: None,
        }
    } else {
        Found::NotZeroMq
    }
}

fn is_signature(g: &[u8; 64]) -> bool {
    g[0] == 0xff && g[9] & 1 == 1
}

fn mechanism_of(g: &[u8; 64]) -> String {
    let raw = &g[12..32];
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// Reads into `buf` until it is full, the peer closes or a read times out; the count read.
fn read_full(stream: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    filled
}

/// The biggest READY command read; a real one is a few dozen bytes.
const MAX_READY: usize = 4096;

/// The Socket-Type of the peer's READY command, if one comes whole.
fn read_ready(stream: &mut impl Read) -> Option<String> {
    let mut flags = [0u8; 1];
    if read_full(stream, &mut flags) != 1 || flags[0] & 0x04 == 0 {
        return None;
    }
    let size = if flags[0] & 0x02 == 0 {
        let mut s = [0u8; 1];
        (read_full(stream, &mut s) == 1).then_some(usize::from(s[0]))?
    } else {
        let mut s = [0u8; 8];
        if read_full(stream, &mut s) != 8 {
            return None;
        }
        usize::try_from(u64::from_be_bytes(s)).ok()?
    };
    if size > MAX_READY {
        return None;
    }
    let mut body = vec![0u8; size];
    if read_full(stream, &mut body) != size {
        return None;
    }
    socket_type_in(&body)
}

/// The Socket-Type property of a READY command body (RFC 23: name, then properties).
fn socket_type_in(body: &[u8]) -> Option<String> {
    let name_len = usize::from(*body.first()?);
    if body.get(1..1 + name_len)? != b"READY" {
        return None;
    }
    let mut rest = &body[1 + name_len..];
    while !rest.is_empty() {
        let key_len = usize::from(rest[0]);
        let key = rest.get(1..1 + key_len)?;
        let len_at = 1 + key_len;
        let len: [u8; 4] = rest.get(len_at..len_at + 4)?.try_into().ok()?;
        let value_len = usize::try_from(u32::from_be_bytes(len)).ok()?;
        let value = rest.get(len_at + 4..len_at + 4 + value_len)?;
        if key.eq_ignore_ascii_case(b"Socket-Type") {
            return Some(String::from_utf8_lossy(value).into_owned());
        }
        rest = &rest[len_at + 4 + value_len..];
    }
    None
}

/// The NetGear pattern a receiver's socket type belongs to.
fn receiver_pattern(socket_type: &str) -> Option<Pattern> {
    match socket_type {
        "PAIR" => Some(Pattern::Pair),
        "REP" => Some(Pattern::ReqRep),
        "SUB" | "XSUB" => Some(Pattern::PubSub),
        _ => None,
    }
}

/// A pattern as the `pattern` property and vidgear spell it.
pub fn pattern_name(pattern: Pattern) -> &'static str {
    match pattern {
        Pattern::Pair => "pair (0)",
        Pattern::ReqRep => "req-rep (1)",
        Pattern::PubSub => "pub-sub (2)",
    }
}

/// How what the probe found differs from a sender in `ours`, secure or not; `None`: no
/// difference the probe can see.
pub fn mismatch(found: Found, ours: Pattern, secure: bool) -> Option<Mismatch> {
    let (mechanism, socket_type) = match found {
        Found::NotZeroMq => return Some(Mismatch::NotZeroMq),
        Found::Silent => return Some(Mismatch::Silent),
        Found::Zmtp {
            mechanism,
            socket_type,
        } => (mechanism, socket_type),
    };
    match (mechanism.as_str(), secure) {
        ("CURVE", false) => Some(Mismatch::ReceiverSecure),
        ("NULL", true) => Some(Mismatch::ReceiverPlain),
        ("NULL", false) => {
            let socket_type = socket_type?;
            match receiver_pattern(&socket_type) {
                Some(theirs) if theirs == ours => None,
                Some(theirs) => Some(Mismatch::Pattern {
                    theirs: pattern_name(theirs),
                    ours: pattern_name(ours),
                }),
                None => Some(Mismatch::SocketType(socket_type)),
            }
        }
        ("CURVE", true) | ("", _) => None,
        (other, _) => Some(Mismatch::Mechanism(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer's bytes to read; what we write is dropped.
    struct Scripted<'a>(&'a [u8]);

    impl Read for Scripted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl Write for Scripted<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn found(bytes: &[u8]) -> Found {
        read_peer(&mut Scripted(bytes))
    }

    fn ready(props: &[(&str, &str)]) -> Vec<u8> {
        let mut body = vec![5u8];
        body.extend_from_slice(b"READY");
        for (k, v) in props {
            body.push(k.len() as u8);
            body.extend_from_slice(k.as_bytes());
            body.extend_from_slice(&(v.len() as u32).to_be_bytes());
            body.extend_from_slice(v.as_bytes());
        }
        let mut frame = vec![0x04, body.len() as u8];
        frame.extend(body);
        frame
    }

    fn peer(mechanism: &str, after: &[u8]) -> Vec<u8> {
        let mut g = greeting().to_vec();
        g[12..32].fill(0);
        g[12..12 + mechanism.len()].copy_from_slice(mechanism.as_bytes());
        g.extend_from_slice(after);
        g
    }

    #[test]
    fn a_null_peer_names_its_socket_type() {
        let bytes = peer("NULL", &ready(&[("Socket-Type", "REP"), ("Identity", "")]));
        assert_eq!(
            found(&bytes),
            Found::Zmtp {
                mechanism: "NULL".into(),
                socket_type: Some("REP".into())
            }
        );
    }

    #[test]
    fn a_curve_peer_names_only_its_mechanism() {
        let bytes = peer("CURVE", &[0x04, 0x01]);
        assert_eq!(
            found(&bytes),
            Found::Zmtp {
                mechanism: "CURVE".into(),
                socket_type: None
            }
        );
    }

    #[test]
    fn other_servers_and_silence_are_told_apart() {
        assert_eq!(found(b"SSH-2.0-OpenSSH_9.2\r\n"), Found::NotZeroMq);
        assert_eq!(found(b""), Found::Silent);
    }

    #[test]
    fn what_was_found_is_compared_with_the_sender() {
        let zmtp = |m: &str, t: Option<&str>| Found::Zmtp {
            mechanism: m.into(),
            socket_type: t.map(Into::into),
        };
        assert_eq!(
            mismatch(zmtp("NULL", Some("PAIR")), Pattern::ReqRep, false),
            Some(Mismatch::Pattern {
                theirs: "pair (0)",
                ours: "req-rep (1)"
            })
        );
        assert_eq!(
            mismatch(zmtp("NULL", Some("REP")), Pattern::ReqRep, false),
            None
        );
        assert_eq!(
            mismatch(zmtp("NULL", Some("ROUTER")), Pattern::ReqRep, false),
            Some(Mismatch::SocketType("ROUTER".into()))
        );
        assert_eq!(
            mismatch(zmtp("CURVE", None), Pattern::Pair, false),
            Some(Mismatch::ReceiverSecure)
        );
        assert_eq!(
            mismatch(zmtp("NULL", Some("PAIR")), Pattern::Pair, true),
            Some(Mismatch::ReceiverPlain)
        );
        assert_eq!(mismatch(zmtp("CURVE", None), Pattern::Pair, true), None);
        assert_eq!(
            mismatch(Found::NotZeroMq, Pattern::Pair, false),
            Some(Mismatch::NotZeroMq)
        );
    }

    #[test]
    fn malformed_ready_commands_are_no_socket_type() {
        for junk in [
            vec![0x04, 200, 5],
            vec![0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            vec![0x04, 7, 5, b'R', b'E', b'A', b'D', b'Y', 40],
            vec![0x00],
        ] {
            let bytes = peer("NULL", &junk);
            assert_eq!(
                found(&bytes),
                Found::Zmtp {
                    mechanism: "NULL".into(),
                    socket_type: None
                },
                "{junk:?}"
            );
        }
    }
}
