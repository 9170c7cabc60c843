// SPDX-License-Identifier: MPL-2.0
//! SSH tunnel mode (vidgear's `ssh_tunnel_mode`): a sender reaches a receiver that only an
//! SSH host can reach, through a local port forward run by the system OpenSSH client, so
//! the user's `~/.ssh/config`, agent and `known_hosts` apply as they do for `ssh` itself.
//!
//! The tunnel is `ssh -N -L 127.0.0.1:LOCAL:REMOTE_HOST:REMOTE_PORT [user@]host`, owned by
//! its [`Tunnel`]: killed and reaped on drop, killed by the kernel if the owning
//! process dies (so no `ssh` outlives a crashed pipeline), and never interactive: keys
//! or agent with `BatchMode=yes`, or a password answered by a private `SSH_ASKPASS`
//! helper that reads it from ssh's environment (never from a command line).
//!
//! Host keys: nothing here weakens OpenSSH's checks. An SSH host missing from
//! `known_hosts` fails with ssh's own "Host key verification failed." unless the user's
//! configuration (or [`TunnelConfig::options`], e.g. `StrictHostKeyChecking=accept-new`)
//! says otherwise.
//!
//! Where each concern lives: `host` parses `[user@]host[:port]`, `secret` keeps the
//! password out of logs, `clash` refuses the modes vidgear refuses, `askpass` writes the
//! password helper, `command` builds ssh's command line, `process` runs one ssh and
//! reaps it, `stderr_log` keeps what ssh prints, `error` says why a tunnel fails, and
//! `tunnel` holds the [`Tunnel`] that ties them together.

mod askpass;
mod clash;
mod command;
mod error;
mod host;
mod process;
mod secret;
mod stderr_log;
mod tunnel;

#[cfg(test)]
mod tests;

pub use clash::check_tunnel_modes;
pub use error::TunnelError;
pub use host::SshHost;
pub use secret::Secret;
pub use tunnel::{Tunnel, TunnelConfig};
