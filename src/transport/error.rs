// SPDX-License-Identifier: MPL-2.0
//! The failures a link reports, each naming what failed and where.

use super::events::Unanswered;
use std::time::Duration;

/// A failure the element must report.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// `unlock()` was called.
    #[error("interrupted")]
    Interrupted,
    /// A host name in an endpoint does not resolve (getaddrinfo failed).
    #[error("cannot resolve host '{host}' of {endpoint}: {error}")]
    Unresolvable {
        endpoint: String,
        host: String,
        #[source]
        error: std::io::Error,
    },
    /// Patterns 0/1: `attempts` request timeouts in a row went unanswered, the last for
    /// `cause`. Every such text starts alike, so scripts matching it keep working.
    #[error(
        "no receiver answered at {endpoints} after {attempts} attempts ({} ms each): {cause}",
        timeout.as_millis()
    )]
    Unanswered {
        endpoints: String,
        attempts: u32,
        timeout: Duration,
        cause: Unanswered,
    },
    /// Secure mode could not be set up.
    #[error("secure mode on {endpoint}: {error}")]
    Security { endpoint: String, error: String },
    /// ZeroMQ refused an operation (bad address, port in use, …).
    #[error("could not {what} {endpoint}: {error}")]
    Socket {
        what: &'static str,
        endpoint: String,
        #[source]
        error: zmq::Error,
    },
}

impl LinkError {
    /// What the user can do about it, where there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            LinkError::Unanswered { cause, .. } => cause.hint(),
            LinkError::Unresolvable { .. } => Some("check the address property"),
            _ => None,
        }
    }
}

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
