// SPDX-License-Identifier: MPL-2.0
//! The failures a link reports, each naming what failed and where.

use super::events::{HandshakeFailure, Unanswered};
use std::fmt;
use std::time::Duration;

/// A failure the element must report.
#[derive(Debug)]
pub enum LinkError {
    /// `unlock()` was called.
    Interrupted,
    /// A host name in an endpoint does not resolve (getaddrinfo failed).
    Unresolvable {
        endpoint: String,
        host: String,
        error: std::io::Error,
    },
    /// Patterns 0/1: no connection could be made for `attempts` request timeouts in a row.
    NobodyListening {
        endpoints: String,
        attempts: u32,
        timeout: Duration,
    },
    /// Patterns 0/1: connections were made, but the CURVE handshake failed.
    HandshakeFailed {
        endpoints: String,
        attempts: u32,
        timeout: Duration,
        reason: HandshakeFailure,
    },
    /// Pattern 0: connected, but never answered (another sender holds the pair slot).
    PairSlotTaken {
        endpoints: String,
        attempts: u32,
        timeout: Duration,
    },
    /// Patterns 0/1: connected, but no reply after every retry.
    NoReceiver {
        endpoints: String,
        attempts: u32,
        timeout: Duration,
    },
    /// Secure mode could not be set up.
    Security { endpoint: String, error: String },
    /// ZeroMQ refused an operation (bad address, port in use, …).
    Socket {
        what: &'static str,
        endpoint: String,
        error: zmq::Error,
    },
}

impl LinkError {
    /// The error that ends an exchange whose last attempt went unanswered for `cause`.
    pub(super) fn unanswered(
        cause: Unanswered,
        endpoints: String,
        attempts: u32,
        timeout: Duration,
    ) -> LinkError {
        match cause {
            Unanswered::NobodyListening => LinkError::NobodyListening {
                endpoints,
                attempts,
                timeout,
            },
            Unanswered::HandshakeFailed(reason) => LinkError::HandshakeFailed {
                endpoints,
                attempts,
                timeout,
                reason,
            },
            Unanswered::PairSlotTaken => LinkError::PairSlotTaken {
                endpoints,
                attempts,
                timeout,
            },
            Unanswered::ConnectionLost | Unanswered::NoReply => LinkError::NoReceiver {
                endpoints,
                attempts,
                timeout,
            },
        }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every "no answer" text starts alike, so scripts matching it keep working.
        let head = |f: &mut fmt::Formatter<'_>, e: &str, n: &u32, t: &Duration| {
            write!(
                f,
                "no receiver answered at {e} after {n} attempts ({} ms each)",
                t.as_millis()
            )
        };
        match self {
            LinkError::Interrupted => write!(f, "interrupted"),
            LinkError::Unresolvable {
                endpoint,
                host,
                error,
            } => write!(f, "cannot resolve host '{host}' of {endpoint}: {error}"),
            LinkError::NobodyListening {
                endpoints,
                attempts,
                timeout,
            } => {
                head(f, endpoints, attempts, timeout)?;
                write!(
                    f,
                    ": connection refused, nobody is listening at {endpoints}"
                )
            }
            LinkError::HandshakeFailed {
                endpoints,
                attempts,
                timeout,
                reason,
            } => {
                head(f, endpoints, attempts, timeout)?;
                write!(f, ": CURVE handshake with {endpoints} failed ({reason}); check that the sender uses the receiver's server public key")
            }
            LinkError::PairSlotTaken {
                endpoints,
                attempts,
                timeout,
            } => {
                head(f, endpoints, attempts, timeout)?;
                write!(f, ": connected but never answered; the receiver's pair slot is probably taken by another sender")
            }
            LinkError::NoReceiver {
                endpoints,
                attempts,
                timeout,
            } => {
                head(f, endpoints, attempts, timeout)?;
                write!(f, ": connected, but no reply within the timeout")
            }
            LinkError::Socket {
                what,
                endpoint,
                error,
            } => write!(f, "could not {what} {endpoint}: {error}"),
            LinkError::Security { endpoint, error } => {
                write!(f, "secure mode on {endpoint}: {error}")
            }
        }
    }
}

impl std::error::Error for LinkError {}

pub(super) fn socket_error<'a>(
    what: &'static str,
    endpoint: &'a str,
) -> impl Fn(zmq::Error) -> LinkError + 'a {
    move |error| LinkError::Socket {
        what,
        endpoint: endpoint.to_owned(),
        error,
    }
}
