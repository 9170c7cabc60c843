// SPDX-License-Identifier: MPL-2.0
//! The SSH host of a tunnel, `[user@]host[:port]`, and the name checks that keep anything
//! ssh or a shell would interpret out of its command line.

use netgear_protocol::addresses;
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// The SSH host of a tunnel, `[user@]host[:port]` as vidgear's `ssh_tunnel_mode` takes it.
/// `host` may be a `~/.ssh/config` alias; an IPv6 address is written `[::1]` when a port
/// follows (a bare `::1` is taken as a host without port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Why a `[user@]host[:port]` text is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("the SSH host is empty: expected [user@]host[:port]")]
    Empty,
    #[error("nothing before '@': expected user@host[:port]")]
    EmptyUser,
    #[error("no host name: expected [user@]host[:port]")]
    EmptyHost,
    #[error("'{0}' is not a user name")]
    BadUser(String),
    #[error("'{0}' is not a host name or address")]
    BadHost(String),
    #[error("'{0}' is not a port number (1-65535)")]
    BadPort(String),
}

/// Letters ssh takes in a host name, alias or IPv4 address (no spaces, no option-like
/// leading '-', nothing a shell or ssh would interpret).
pub(super) fn is_valid_host_name(text: &str) -> bool {
    !text.starts_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// An IPv6 address, with an optional `%zone`.
pub(super) fn is_ipv6(text: &str) -> bool {
    let address = text.split_once('%').map_or(text, |(a, _)| a);
    address.parse::<Ipv6Addr>().is_ok()
}

fn is_user_name(text: &str) -> bool {
    !text.starts_with('-')
        && text
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != ':' && c != '/')
}

fn parse_port(text: &str) -> Result<u16, SpecError> {
    addresses::parse_port(text).ok_or_else(|| SpecError::BadPort(text.to_owned()))
}

/// Splits `host[:port]`, `[v6]:port`, `[v6]` or a bare IPv6 address.
fn split_host_port(text: &str) -> Result<(String, Option<u16>), SpecError> {
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| SpecError::BadHost(text.to_owned()))?;
        if !is_ipv6(inside) {
            return Err(SpecError::BadHost(inside.to_owned()));
        }
        let port = match after.strip_prefix(':') {
            _ if after.is_empty() => None,
            Some(port) => Some(parse_port(port)?),
            None => return Err(SpecError::BadHost(text.to_owned())),
        };
        return Ok((inside.to_owned(), port));
    }
    if is_ipv6(text) {
        return Ok((text.to_owned(), None));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, Some(parse_port(p)?)),
        None => (text, None),
    };
    if host.is_empty() {
        return Err(SpecError::EmptyHost);
    }
    if !is_valid_host_name(host) {
        return Err(SpecError::BadHost(host.to_owned()));
    }
    Ok((host.to_owned(), port))
}

impl FromStr for SshHost {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<SshHost, SpecError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SpecError::Empty);
        }
        // The host part never holds '@', so the last one ends the user (as in ssh).
        let (user, rest) = match text.rsplit_once('@') {
            Some(("", _)) => return Err(SpecError::EmptyUser),
            Some((u, r)) if is_user_name(u) => (Some(u.to_owned()), r),
            Some((u, _)) => return Err(SpecError::BadUser(u.to_owned())),
            None => (None, text),
        };
        if rest.is_empty() {
            return Err(SpecError::EmptyHost);
        }
        let (host, port) = split_host_port(rest)?;
        Ok(SshHost { user, host, port })
    }
}

impl fmt::Display for SshHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match (self.port, self.host.contains(':')) {
            (Some(port), true) => write!(f, "[{}]:{port}", self.host),
            (Some(port), false) => write!(f, "{}:{port}", self.host),
            (None, _) => write!(f, "{}", self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> Result<SshHost, SpecError> {
        text.parse()
    }

    fn ok(user: Option<&str>, h: &str, port: Option<u16>) -> Result<SshHost, SpecError> {
        Ok(SshHost {
            user: user.map(str::to_owned),
            host: h.to_owned(),
            port,
        })
    }

    #[test]
    fn specs_that_parse() {
        assert_eq!(host("example.org"), ok(None, "example.org", None));
        assert_eq!(host("pi@10.0.0.5"), ok(Some("pi"), "10.0.0.5", None));
        assert_eq!(
            host("pi@10.0.0.5:2222"),
            ok(Some("pi"), "10.0.0.5", Some(2222))
        );
        assert_eq!(host(" gateway:22 "), ok(None, "gateway", Some(22)));
        assert_eq!(host("me@[::1]:2200"), ok(Some("me"), "::1", Some(2200)));
        assert_eq!(host("[fe80::1%eth0]"), ok(None, "fe80::1%eth0", None));
        assert_eq!(host("::1"), ok(None, "::1", None));
        assert_eq!(
            host("a.b@c@jump_host"),
            ok(Some("a.b@c"), "jump_host", None)
        );
    }

    #[test]
    fn specs_that_do_not() {
        assert_eq!(host(""), Err(SpecError::Empty));
        assert_eq!(host("   "), Err(SpecError::Empty));
        assert_eq!(host("@host"), Err(SpecError::EmptyUser));
        assert_eq!(host("pi@"), Err(SpecError::EmptyHost));
        assert_eq!(host(":22"), Err(SpecError::EmptyHost));
        assert_eq!(host("pi@host:"), Err(SpecError::BadPort(String::new())));
        assert_eq!(host("host:0"), Err(SpecError::BadPort("0".into())));
        assert_eq!(host("host:65536"), Err(SpecError::BadPort("65536".into())));
        assert_eq!(host("host:ssh"), Err(SpecError::BadPort("ssh".into())));
        assert_eq!(host("host:+22"), Err(SpecError::BadPort("+22".into())));
        assert_eq!(
            host("-oProxyCommand=x"),
            Err(SpecError::BadHost("-oProxyCommand=x".into()))
        );
        assert_eq!(host("-l@host"), Err(SpecError::BadUser("-l".into())));
        assert_eq!(host("my host"), Err(SpecError::BadHost("my host".into())));
        assert_eq!(host("a:b:c"), Err(SpecError::BadPort("c".into())));
        assert_eq!(
            host("[nothex]:22"),
            Err(SpecError::BadHost("nothex".into()))
        );
        assert_eq!(host("[::1]22"), Err(SpecError::BadHost("[::1]22".into())));
        assert_eq!(host("pi@host/x"), Err(SpecError::BadHost("host/x".into())));
    }

    #[test]
    fn specs_print_back() {
        for text in ["pi@10.0.0.5:2222", "gateway", "me@[::1]:2200", "::1"] {
            assert_eq!(host(text).unwrap().to_string(), text);
        }
        let message = SpecError::BadPort("x".into()).to_string();
        assert_eq!(message, "'x' is not a port number (1-65535)");
    }
}
