// SPDX-License-Identifier: MPL-2.0
//! Why a tunnel could not be opened or stopped working, in ssh's own words where ssh
//! said something, with a hint where the cause is clear.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why a tunnel could not be opened or stopped working.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The remote address cannot be put in an `-L` forward.
    #[error("'{0}' cannot be forwarded to")]
    BadRemote(String),
    /// An extra option is not `Key=Value`.
    #[error("ssh option '{0}' is not Key=Value")]
    BadOption(String),
    /// The key file cannot be read.
    #[error("SSH key file {}: {source}", .path.display())]
    KeyFile { path: PathBuf, source: io::Error },
    /// The askpass helper could not be written.
    #[error("cannot write the SSH_ASKPASS helper: {0}")]
    Askpass(#[source] io::Error),
    /// No free local port, or ssh could not be started.
    #[error("no local port for the SSH tunnel: {0}")]
    Local(#[source] io::Error),
    #[error("cannot run {}: {source}", .program.display())]
    Spawn { program: PathBuf, source: io::Error },
    /// ssh ended before the forward was usable; `message` is what ssh said.
    #[error("ssh failed{}: {}", exit_note(.status), or_silent(.message))]
    Failed {
        message: String,
        status: Option<i32>,
    },
    /// Neither the forward nor an error from ssh within the timeout.
    #[error(
        "the SSH tunnel was not up after {:.1} s: {}",
        .after.as_secs_f64(),
        or_silent(.message)
    )]
    TimedOut { after: Duration, message: String },
    /// ssh ended after the forward was up (network lost, server gone, killed).
    #[error("the SSH tunnel ended{}: {}", exit_note(.status), or_silent(.message))]
    Exited {
        message: String,
        status: Option<i32>,
    },
}

/// ` (exit CODE)` when ssh exited with a code.
fn exit_note(status: &Option<i32>) -> String {
    status.map_or_else(String::new, |code| format!(" (exit {code})"))
}

fn or_silent(message: &str) -> &str {
    if message.is_empty() {
        "ssh printed nothing"
    } else {
        message
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
