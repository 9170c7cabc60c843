// SPDX-License-Identifier: MPL-2.0
//! NetGear modes and the rules for combining them (vidgear's ValueErrors, as user-facing
//! messages that name our properties).

use gst::glib;
use netgear_protocol::addresses;

/// ZeroMQ messaging pattern; the numbers are vidgear's `pattern` values.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstNetGearPattern")]
pub enum Pattern {
    #[default]
    #[enum_value(
        name = "PAIR: one sender, one receiver, every frame acknowledged",
        nick = "pair"
    )]
    Pair = 0,
    #[enum_value(
        name = "REQ/REP: request and reply, every frame acknowledged",
        nick = "req-rep"
    )]
    ReqRep = 1,
    #[enum_value(
        name = "PUB/SUB: publish without acknowledgement, late frames dropped",
        nick = "pub-sub"
    )]
    PubSub = 2,
}

impl Pattern {
    pub fn number(self) -> u8 {
        self as u8
    }

    /// Patterns 0 and 1 acknowledge every frame.
    pub fn is_acknowledged(self) -> bool {
        self != Pattern::PubSub
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstNetGearProtocol")]
pub enum Protocol {
    #[default]
    #[enum_value(name = "TCP", nick = "tcp")]
    Tcp = 0,
    #[enum_value(
        name = "IPC (Unix domain socket; address is a path prefix)",
        nick = "ipc"
    )]
    Ipc = 1,
}

impl Protocol {
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Ipc => "ipc",
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstNetGearSecureMode")]
pub enum SecureMode {
    #[default]
    #[enum_value(name = "No encryption", nick = "none")]
    None = 0,
    #[enum_value(
        name = "StoneHouse: CURVE encryption, any client key accepted",
        nick = "stonehouse"
    )]
    StoneHouse = 1,
    #[enum_value(
        name = "IronHouse: CURVE encryption, only listed client keys accepted",
        nick = "ironhouse"
    )]
    IronHouse = 2,
}

/// Which side of the connection an element is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// vidgear's server, `netgearsink`: connects and sends.
    Sender,
    /// vidgear's client, `netgearsrc`: binds and receives.
    Receiver,
}

/// The mode-related settings both elements share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modes {
    pub pattern: Pattern,
    pub bidirectional: bool,
    pub multi_server: bool,
    pub multi_client: bool,
    pub ports: Vec<u16>,
}

/// A combination of settings vidgear refuses, or a `ports` list that does not parse. The
/// texts name our properties and say what would work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    #[error("'{entry}' in ports=\"{list}\" is not a port number")]
    BadPort { entry: String, list: String },
    #[error("multi-server=true and multi-client=true cannot be combined: choose one")]
    MultiServerAndClient,
    #[error("{mode}=true needs pattern=req-rep (1) or pattern=pub-sub (2), not pattern=pair (0)")]
    MultiWithPair { mode: &'static str },
    #[error(
        "bidirectional=true needs pattern=pair (0) or pattern=req-rep (1), not pattern=pub-sub (2)"
    )]
    BidirectionalWithPubSub,
    #[error("{mode}=true needs ports=\"…\" listing {what}, e.g. ports=\"5566,5567\"")]
    MissingPorts {
        mode: &'static str,
        what: &'static str,
    },
    #[error("load-balance=true needs multi-client=true and pattern=req-rep (1), not {clash}: only then does each frame go to one of several receivers")]
    LoadBalanceOutsideMultiClient { clash: &'static str },
}

/// The shortest `request-timeout`, in milliseconds: anything shorter is most likely
/// vidgear's `request_timeout` in seconds, and cannot survive a busy machine's scheduling.
pub const MIN_REQUEST_TIMEOUT_MS: u32 = 100;

/// A `request-timeout` below [`MIN_REQUEST_TIMEOUT_MS`]; the text says what vidgear's
/// seconds would be in our milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request-timeout={ms} is in milliseconds ({ms} ms), below the {MIN_REQUEST_TIMEOUT_MS} ms minimum{}", vidgear_seconds(*.ms))]
pub struct RequestTimeoutError {
    pub ms: u32,
}

fn vidgear_seconds(ms: u32) -> String {
    match ms {
        0 => String::new(),
        s => format!(
            "; vidgear's request_timeout={s} (seconds) is request-timeout={}",
            u64::from(s) * 1000
        ),
    }
}

/// Refuses a `request-timeout` (ms) short enough to be meant as vidgear's seconds.
pub fn check_request_timeout(ms: u32) -> Result<(), RequestTimeoutError> {
    match ms < MIN_REQUEST_TIMEOUT_MS {
        true => Err(RequestTimeoutError { ms }),
        false => Ok(()),
    }
}

/// A sink's `load-balance` needs receivers to choose from: multi-client req-rep.
pub fn check_load_balance(
    load_balance: bool,
    multi_client: bool,
    pattern: Pattern,
) -> Result<(), ModeError> {
    let clash = match (multi_client, pattern) {
        _ if !load_balance => return Ok(()),
        (true, Pattern::ReqRep) => return Ok(()),
        (false, _) => "multi-client=false",
        (true, Pattern::Pair) => "pattern=pair (0)",
        (true, Pattern::PubSub) => "pattern=pub-sub (2), where every receiver gets every frame",
    };
    Err(ModeError::LoadBalanceOutsideMultiClient { clash })
}

/// Parses the `ports` property: port numbers separated by commas, spaces or semicolons.
pub fn parse_ports(text: &str) -> Result<Vec<u16>, ModeError> {
    text.split([',', ' ', ';'])
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            addresses::parse_port(entry).ok_or_else(|| ModeError::BadPort {
                entry: entry.to_owned(),
                list: text.to_owned(),
            })
        })
        .collect()
}

impl Modes {
    /// The multi mode in use, by its property name.
    fn multi_mode(&self) -> Option<&'static str> {
        if self.multi_server {
            Some("multi-server")
        } else if self.multi_client {
            Some("multi-client")
        } else {
            None
        }
    }

    /// Rejects what vidgear rejects, saying what clashes and what would work.
    pub fn validate(&self, role: Role) -> Result<(), ModeError> {
        if self.multi_server && self.multi_client {
            return Err(ModeError::MultiServerAndClient);
        }
        if let (Some(mode), Pattern::Pair) = (self.multi_mode(), self.pattern) {
            return Err(ModeError::MultiWithPair { mode });
        }
        if self.bidirectional && self.pattern == Pattern::PubSub {
            return Err(ModeError::BidirectionalWithPubSub);
        }
        let (needs_ports, mode, what) = match role {
            Role::Receiver => (self.multi_server, "multi-server", "the ports to bind"),
            Role::Sender => (self.multi_client, "multi-client", "the receivers' ports"),
        };
        if needs_ports && self.ports.is_empty() {
            return Err(ModeError::MissingPorts { mode, what });
        }
        Ok(())
    }

    /// The ports this element binds or connects to.
    pub fn active_ports(&self, role: Role, port: u16) -> Vec<u16> {
        let uses_list = match role {
            Role::Receiver => self.multi_server,
            Role::Sender => self.multi_client,
        };
        if uses_list {
            self.ports.clone()
        } else {
            vec![port]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modes(pattern: Pattern, bi: bool, ms: bool, mc: bool, ports: &[u16]) -> Modes {
        Modes {
            pattern,
            bidirectional: bi,
            multi_server: ms,
            multi_client: mc,
            ports: ports.to_vec(),
        }
    }

    #[test]
    fn vidgear_rejections() {
        use Pattern::*;
        let err = |m: Modes, r| m.validate(r).unwrap_err().to_string();
        assert!(err(modes(Pair, false, true, false, &[1]), Role::Receiver)
            .contains("multi-server=true needs pattern=req-rep"));
        assert!(err(modes(Pair, false, false, true, &[1]), Role::Sender)
            .contains("multi-client=true needs pattern=req-rep"));
        assert!(err(modes(PubSub, true, false, false, &[]), Role::Sender)
            .contains("bidirectional=true needs pattern=pair"));
        assert!(err(modes(ReqRep, false, true, true, &[1]), Role::Sender)
            .contains("cannot be combined"));
        assert!(err(modes(ReqRep, false, true, false, &[]), Role::Receiver).contains("ports="));
        assert!(err(modes(PubSub, false, false, true, &[]), Role::Sender).contains("ports="));
        // A multi-server sender and a multi-client receiver use their single port.
        assert!(modes(ReqRep, false, true, false, &[])
            .validate(Role::Sender)
            .is_ok());
        assert!(modes(ReqRep, false, false, true, &[])
            .validate(Role::Receiver)
            .is_ok());
        assert!(modes(ReqRep, true, true, false, &[5, 6])
            .validate(Role::Receiver)
            .is_ok());
        assert!(modes(Pair, true, false, false, &[])
            .validate(Role::Sender)
            .is_ok());
    }

    #[test]
    fn load_balance_needs_multi_client_req_rep() {
        use Pattern::*;
        assert!(check_load_balance(true, true, ReqRep).is_ok());
        assert!(check_load_balance(false, false, PubSub).is_ok());
        let err = |mc, pattern| {
            check_load_balance(true, mc, pattern)
                .unwrap_err()
                .to_string()
        };
        assert!(err(false, ReqRep).contains("load-balance=true needs multi-client=true"));
        assert!(err(false, ReqRep).contains("not multi-client=false"));
        assert!(err(true, PubSub).contains("not pattern=pub-sub (2)"));
        assert!(err(true, Pair).contains("not pattern=pair (0)"));
    }

    #[test]
    fn request_timeouts_that_look_like_seconds_are_refused() {
        assert_eq!(
            check_request_timeout(4).unwrap_err().to_string(),
            "request-timeout=4 is in milliseconds (4 ms), below the 100 ms minimum; \
             vidgear's request_timeout=4 (seconds) is request-timeout=4000"
        );
        assert_eq!(
            check_request_timeout(0).unwrap_err().to_string(),
            "request-timeout=0 is in milliseconds (0 ms), below the 100 ms minimum"
        );
        assert!(check_request_timeout(99).is_err());
        assert!(check_request_timeout(100).is_ok());
        assert!(check_request_timeout(u32::MAX).is_ok());
    }

    #[test]
    fn ports_list() {
        assert_eq!(
            parse_ports("5566,5567, 5568").unwrap(),
            vec![5566, 5567, 5568]
        );
        assert_eq!(parse_ports("").unwrap(), Vec::<u16>::new());
        assert!(parse_ports("5566,x")
            .unwrap_err()
            .to_string()
            .contains("'x'"));
        assert!(parse_ports("0").is_err());
        assert!(parse_ports("70000").is_err());
        assert!(parse_ports("+5566").is_err());
    }
}
