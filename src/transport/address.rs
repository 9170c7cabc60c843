// SPDX-License-Identifier: MPL-2.0
//! Endpoint strings: building them as vidgear does (with IPv6 literals bracketed), whether
//! a socket needs ZMQ_IPV6, checking that a host resolves, and reading ports back.

use crate::config::Protocol;
use std::net::{IpAddr, ToSocketAddrs};

/// `protocol://address:port`, as vidgear builds it (for ipc the port is part of the path).
/// A bare IPv6 address (`::1`) is bracketed (`tcp://[::1]:5555`); a bracketed one is kept.
pub fn endpoint(protocol: Protocol, address: &str, port: u16) -> String {
    let bare_ipv6 = protocol == Protocol::Tcp
        && !address.starts_with('[')
        && address.parse::<std::net::Ipv6Addr>().is_ok();
    if bare_ipv6 {
        format!("{}://[{}]:{}", protocol.scheme(), address, port)
    } else {
        format!("{}://{}:{}", protocol.scheme(), address, port)
    }
}

/// The host and port of a `tcp://host:port` endpoint (host without brackets).
pub(super) fn tcp_host_port(endpoint: &str) -> Option<(&str, &str)> {
    let rest = endpoint.strip_prefix("tcp://")?;
    let (host, port) = rest.rsplit_once(':')?;
    // A ZeroMQ source address (`tcp://src;dst`) is not used by NetGear.
    let host = host.rsplit(';').next().unwrap_or(host);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port))
}

/// The port of a tcp endpoint (`None` for ipc or a wildcard).
pub fn port_of(endpoint: &str) -> Option<u16> {
    tcp_host_port(endpoint).and_then(|(_, port)| port.parse().ok())
}

/// Whether a host is a name to look up (not an address literal or a wildcard).
fn needs_resolving(host: &str) -> bool {
    host != "*" && host.parse::<IpAddr>().is_err()
}

/// Why a host name does not resolve.
#[derive(Debug)]
pub struct Unresolvable {
    pub host: String,
    pub error: std::io::Error,
}

/// Resolves a tcp endpoint's host name (getaddrinfo); literals and ipc pass. Returns
/// whether the socket needs ZMQ_IPV6: an IPv6 literal, or a name with only IPv6
/// addresses. A name with an IPv4 address keeps IPv4 only, as vidgear does, because
/// ZeroMQ uses only the first address getaddrinfo returns and `localhost` often lists
/// `::1` first while a vidgear receiver listens on IPv4 only.
pub(super) fn needs_ipv6(endpoint: &str) -> Result<bool, Unresolvable> {
    let Some((host, port)) = tcp_host_port(endpoint) else {
        return Ok(false);
    };
    if !needs_resolving(host) {
        return Ok(host.parse::<std::net::Ipv6Addr>().is_ok());
    }
    let port = port.parse::<u16>().unwrap_or(0);
    let addresses: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|error| Unresolvable {
            host: host.to_owned(),
            error,
        })?
        .collect();
    Ok(!addresses.is_empty() && addresses.iter().all(|a| a.is_ipv6()))
}

/// For binding: `port` 0 asks ZeroMQ for an ephemeral port (`tcp://host:*`).
pub(super) fn bind_form(endpoint: &str) -> String {
    match endpoint.strip_suffix(":0") {
        Some(head) if endpoint.starts_with("tcp://") => format!("{head}:*"),
        _ => endpoint.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_bracketed_once() {
        assert_eq!(endpoint(Protocol::Tcp, "::1", 5), "tcp://[::1]:5");
        assert_eq!(endpoint(Protocol::Tcp, "[::1]", 5), "tcp://[::1]:5");
        assert_eq!(endpoint(Protocol::Tcp, "127.0.0.1", 5), "tcp://127.0.0.1:5");
        assert_eq!(endpoint(Protocol::Ipc, "/tmp/a", 5), "ipc:///tmp/a:5");
    }

    #[test]
    fn hosts_ports_and_ipv6_needs() {
        assert_eq!(port_of("tcp://[::1]:5566"), Some(5566));
        assert_eq!(port_of("tcp://*:*"), None);
        assert_eq!(port_of("ipc:///tmp/x:5"), None);
        assert!(needs_ipv6("tcp://[::1]:5").unwrap());
        assert!(!needs_ipv6("tcp://127.0.0.1:5").unwrap());
        assert!(!needs_ipv6("tcp://*:5").unwrap());
        assert!(!needs_ipv6("ipc:///tmp/x:5").unwrap());
        let err = needs_ipv6("tcp://no-such-host.invalid:5").unwrap_err();
        assert_eq!(err.host, "no-such-host.invalid");
        assert_eq!(bind_form("tcp://127.0.0.1:0"), "tcp://127.0.0.1:*");
        assert_eq!(bind_form("tcp://127.0.0.1:10"), "tcp://127.0.0.1:10");
    }
}
