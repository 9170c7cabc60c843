// SPDX-License-Identifier: MPL-2.0
//! Why a tunnel could not be opened or stopped working, in ssh's own words where ssh
//! said something, with a hint where the cause is clear.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why a tunnel could not be opened or stopped working.
#[derive(Debug)]
pub enum TunnelError {
    /// The remote address cannot be put in an `-L` forward.
    BadRemote(String),
    /// An extra option is not `Key=Value`.
    BadOption(String),
    /// The key file cannot be read.
    KeyFile {
        path: PathBuf,
        source: io::Error,
    },
    /// The askpass helper could not be written.
    Askpass(io::Error),
    /// No free local port, or ssh could not be started.
    Local(io::Error),
    Spawn {
        program: PathBuf,
        source: io::Error,
    },
    /// ssh ended before the forward was usable; `message` is what ssh said.
    Failed {
        message: String,
        status: Option<i32>,
    },
    /// Neither the forward nor an error from ssh within the timeout.
    TimedOut {
        after: Duration,
        message: String,
    },
    /// ssh ended after the forward was up (network lost, server gone, killed).
    Exited {
        message: String,
        status: Option<i32>,
    },
}

fn or_silent(message: &str) -> &str {
    if message.is_empty() {
        "ssh printed nothing"
    } else {
        message
    }
}

impl fmt::Display for TunnelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TunnelError::BadRemote(r) => write!(f, "'{r}' cannot be forwarded to"),
            TunnelError::BadOption(o) => write!(f, "ssh option '{o}' is not Key=Value"),
            TunnelError::KeyFile { path, source } => {
                write!(f, "SSH key file {}: {source}", path.display())
            }
            TunnelError::Askpass(e) => write!(f, "cannot write the SSH_ASKPASS helper: {e}"),
            TunnelError::Local(e) => write!(f, "no local port for the SSH tunnel: {e}"),
            TunnelError::Spawn { program, source } => {
                write!(f, "cannot run {}: {source}", program.display())
            }
            TunnelError::Failed { message, status } => match status {
                Some(code) => write!(f, "ssh failed (exit {code}): {}", or_silent(message)),
                None => write!(f, "ssh failed: {}", or_silent(message)),
            },
            TunnelError::TimedOut { after, message } => write!(
                f,
                "the SSH tunnel was not up after {:.1} s: {}",
                after.as_secs_f64(),
                or_silent(message)
            ),
            TunnelError::Exited { message, status } => match status {
                Some(code) => write!(
                    f,
                    "the SSH tunnel ended (exit {code}): {}",
                    or_silent(message)
                ),
                None => write!(f, "the SSH tunnel ended: {}", or_silent(message)),
            },
        }
    }
}

impl TunnelError {
    /// What the user can do about a failure ssh reported, when that is clear.
    pub fn hint(&self) -> Option<&'static str> {
        let message = match self {
            TunnelError::Failed { message, .. } => message,
            _ => return None,
        };
        if message.contains("Host key verification failed") {
            Some("the SSH host is not in known_hosts (or its key changed): connect once with ssh, or add it with ssh-keyscan")
        } else if message.contains("Permission denied") {
            Some("the SSH host refused the login: check the key file, the agent or the password")
        } else {
            None
        }
    }
}

impl std::error::Error for TunnelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TunnelError::KeyFile { source, .. } | TunnelError::Spawn { source, .. } => Some(source),
            TunnelError::Askpass(e) | TunnelError::Local(e) => Some(e),
            _ => None,
        }
    }
}
