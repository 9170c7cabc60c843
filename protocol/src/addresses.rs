// SPDX-License-Identifier: MPL-2.0
//! Addresses in text: port numbers, and the allow-list of a secure receiver (IPv4/IPv6
//! addresses and CIDR ranges, checked against the peer address of each ZAP request before
//! its key).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use thiserror::Error;

/// A port number written as text: ASCII digits only (no sign, no spaces: callers trim where
/// their syntax allows spaces) for 1 to 65535. Port 0 is refused: every port read here
/// names a socket to bind or connect to, a tunnel's SSH port or a server in a header.
pub fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|&port| port != 0)
}

/// Why an allow-list entry does not parse; names the entry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressListError {
    #[error("allowed-addresses has an empty entry (at position {0})")]
    Empty(usize),
    #[error("allowed-addresses entry '{0}' is not an IP address")]
    NotAnAddress(String),
    #[error("allowed-addresses entry '{0}' has an invalid prefix length")]
    BadPrefix(String),
}

/// One address (`10.0.0.1`, `::1`) or range (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    base: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.base, addr.to_canonical()) {
            (IpAddr::V4(base), IpAddr::V4(a)) => {
                same_prefix(u32::from(base).into(), u32::from(a).into(), self.prefix, 32)
            }
            (IpAddr::V6(base), IpAddr::V6(a)) => {
                same_prefix(u128::from(base), u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, prefix: u8, bits: u32) -> bool {
    let host_bits = bits - u32::from(prefix);
    // Shifting by the full width is not allowed: a /0 matches everything.
    host_bits >= bits || (a >> host_bits) == (b >> host_bits)
}

impl FromStr for IpNetwork {
    type Err = AddressListError;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match entry.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (entry, None),
        };
        let address = address
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(address);
        let base = IpAddr::from_str(address)
            .map_err(|_| AddressListError::NotAnAddress(entry.to_owned()))?
            .to_canonical();
        let width = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| AddressListError::BadPrefix(entry.to_owned()))?,
        };
        Ok(IpNetwork { base, prefix })
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = if self.base.is_ipv4() { 32 } else { 128 };
        if self.prefix == width {
            write!(f, "{}", self.base)
        } else {
            write!(f, "{}/{}", self.base, self.prefix)
        }
    }
}

/// The addresses a secure receiver lets in; empty (the default) lets in any address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedAddresses(Vec<IpNetwork>);

impl AllowedAddresses {
    /// Any address (no check).
    pub fn any() -> Self {
        AllowedAddresses(Vec::new())
    }

    /// Parses a comma list like `127.0.0.1, 10.0.0.0/8, ::1`. Empty text or a `*` entry
    /// means any address.
    pub fn parse(text: &str) -> Result<Self, AddressListError> {
        if text.trim().is_empty() {
            return Ok(Self::any());
        }
        let mut networks = Vec::new();
        for (index, entry) in text.split(',').map(str::trim).enumerate() {
            match entry {
                "" => return Err(AddressListError::Empty(index + 1)),
                "*" => return Ok(Self::any()),
                _ => networks.push(entry.parse()?),
            }
        }
        Ok(AllowedAddresses(networks))
    }

    pub fn is_any(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a peer address as ZAP gives it (`127.0.0.1`, `::1`, `::ffff:10.0.0.2`,
    /// `fe80::1%eth0`) is allowed. With a list, an address that does not parse is not.
    pub fn allows(&self, peer: &str) -> bool {
        if self.is_any() {
            return true;
        }
        let without_zone = peer.split('%').next().unwrap_or_default();
        IpAddr::from_str(without_zone).is_ok_and(|a| self.0.iter().any(|n| n.contains(a)))
    }
}

impl fmt::Display for AllowedAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&entries.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_digits_from_1_to_65535() {
        assert_eq!(parse_port("5555"), Some(5555));
        assert_eq!(parse_port("1"), Some(1));
        assert_eq!(parse_port("65535"), Some(65535));
        assert_eq!(parse_port("05566"), Some(5566));
        for refused in [
            "",
            "0",
            "00",
            "65536",
            "99999999999",
            "+22",
            "-1",
            " 22",
            "22 ",
            "2 2",
            "0x16",
            "٣",
        ] {
            assert_eq!(parse_port(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn parses_addresses_and_ranges() {
        let list = AllowedAddresses::parse("127.0.0.1, 10.0.0.0/8,::1,[fd00::]/8").unwrap();
        assert_eq!(list.to_string(), "127.0.0.1,10.0.0.0/8,::1,fd00::/8");
        for ok in [
            "127.0.0.1",
            "10.200.3.4",
            "::1",
            "fd12::5",
            "::ffff:10.1.2.3",
            "::1%lo",
        ] {
            assert!(list.allows(ok), "{ok}");
        }
        for refused in ["127.0.0.2", "11.0.0.1", "::2", "fe80::1", "", "nonsense"] {
            assert!(!list.allows(refused), "{refused}");
        }
        let all = AllowedAddresses::parse("0.0.0.0/0,::/0").unwrap();
        assert!(all.allows("203.0.113.9") && all.allows("2001:db8::1"));
        assert!(AllowedAddresses::parse("").unwrap().allows("anything"));
        assert!(AllowedAddresses::parse("10.0.0.1, *").unwrap().is_any());
    }

    #[test]
    fn errors_name_the_bad_entry() {
        assert_eq!(
            AllowedAddresses::parse("127.0.0.1,localhost"),
            Err(AddressListError::NotAnAddress("localhost".into()))
        );
        assert_eq!(
            AllowedAddresses::parse("10.0.0.0/33"),
            Err(AddressListError::BadPrefix("10.0.0.0/33".into()))
        );
        assert_eq!(
            AllowedAddresses::parse("::/x"),
            Err(AddressListError::BadPrefix("::/x".into()))
        );
        assert_eq!(
            AllowedAddresses::parse("127.0.0.1,,::1"),
            Err(AddressListError::Empty(2))
        );
        let text = AllowedAddresses::parse("1.2.3.4.5")
            .unwrap_err()
            .to_string();
        assert!(text.contains("'1.2.3.4.5'"), "{text}");
    }
}
