// SPDX-License-Identifier: MPL-2.0
//! The [`Tunnel`]: what it logs in with, and its life from open (ssh started, the forward
//! usable) through checks and restarts to its drop.

use super::askpass::AskpassHelper;
use super::command::{forward_target, is_option, printable, ssh_command};
use super::error::TunnelError;
use super::host::SshHost;
use super::process::SshProcess;
use super::secret::Secret;
use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// How often a failed start is retried with a fresh local port (another process may take
/// the port between our probe and ssh's bind).
const PORT_ATTEMPTS: usize = 3;

/// What a tunnel logs in with.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    pub host: SshHost,
    /// `ssh -i`: a private key file, besides the agent's and ssh's default keys.
    pub keyfile: Option<PathBuf>,
    /// Answered to password (and key passphrase) prompts through `SSH_ASKPASS`.
    pub password: Option<Secret>,
    /// Extra `-o Key=Value` options, given before the tunnel's own so they take
    /// precedence (ssh keeps the first value it reads), e.g.
    /// `UserKnownHostsFile=/path` or `StrictHostKeyChecking=accept-new`.
    pub options: Vec<String>,
    /// The ssh client to run; `ssh` from `PATH` by default.
    pub program: PathBuf,
}

impl TunnelConfig {
    pub fn new(host: SshHost) -> TunnelConfig {
        TunnelConfig {
            host,
            keyfile: None,
            password: None,
            options: Vec::new(),
            program: PathBuf::from("ssh"),
        }
    }

    /// Refuses options ssh would not take as `-o` and a key file that cannot be read,
    /// before ssh runs.
    fn validate(&self) -> Result<(), TunnelError> {
        if let Some(bad) = self.options.iter().find(|o| !is_option(o)) {
            return Err(TunnelError::BadOption(bad.clone()));
        }
        if let Some(path) = &self.keyfile {
            std::fs::File::open(path).map_err(|source| TunnelError::KeyFile {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// A local port forward through ssh, owned by its creator: closed on drop, never left
/// behind.
pub struct Tunnel {
    config: TunnelConfig,
    target: String,
    remote_port: u16,
    timeout: Duration,
    local_port: u16,
    askpass: Option<AskpassHelper>,
    process: Option<SshProcess>,
}

impl fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tunnel")
            .field("host", &self.config.host.to_string())
            .field("local_port", &self.local_port)
            .field("target", &format!("{}:{}", self.target, self.remote_port))
            .finish()
    }
}

impl Tunnel {
    /// Starts `ssh` forwarding a free port on 127.0.0.1 to `remote_host:remote_port` as
    /// seen from the SSH host, and returns once that port accepts connections; fails with
    /// ssh's own message if ssh ends first, or after `timeout`.
    pub fn open(
        config: &TunnelConfig,
        remote_host: &str,
        remote_port: u16,
        timeout: Duration,
    ) -> Result<Tunnel, TunnelError> {
        let target = forward_target(remote_host)?;
        config.validate()?;
        let askpass = match config.password {
            Some(_) => Some(AskpassHelper::create()?),
            None => None,
        };
        let mut tunnel = Tunnel {
            config: config.clone(),
            target,
            remote_port,
            timeout,
            local_port: 0,
            askpass,
            process: None,
        };
        tunnel.start(None)?;
        Ok(tunnel)
    }

    /// The port on 127.0.0.1 to connect to (`tcp://127.0.0.1:PORT`).
    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    /// `Err(Exited)` with ssh's last words if ssh has ended since the tunnel came up.
    pub fn check(&mut self) -> Result<(), TunnelError> {
        let Some(process) = self.process.as_mut() else {
            return Err(TunnelError::Exited {
                message: "closed".into(),
                status: None,
            });
        };
        match process.exited() {
            None => Ok(()),
            Some(status) => Err(TunnelError::Exited {
                message: process.last_words(),
                status: status.code(),
            }),
        }
    }

    /// What ssh has printed since the last call, e.g. `channel 2: open failed: connect
    /// failed: Connection refused` when the receiver is not reachable from the SSH host.
    pub fn messages(&self) -> Vec<String> {
        self.process
            .as_ref()
            .map(SshProcess::messages)
            .unwrap_or_default()
    }

    /// Stops ssh and starts it again, on the same local port when it is still free (so a
    /// socket connected to it reconnects by itself), else on a new one: compare
    /// [`Tunnel::local_port`] before and after.
    pub fn restart(&mut self) -> Result<(), TunnelError> {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
        self.start(Some(self.local_port))
    }

    /// The ssh command line, for debug logs (it never holds the password).
    pub fn command_line(&self) -> String {
        printable(&self.command(self.local_port))
    }

    /// Runs ssh until the forward is usable, retrying with a new port when another
    /// process took the one we picked.
    fn start(&mut self, preferred: Option<u16>) -> Result<(), TunnelError> {
        let mut port = match preferred {
            Some(p) if TcpListener::bind(("127.0.0.1", p)).is_ok() => p,
            _ => free_local_port()?,
        };
        let mut attempt = 1;
        loop {
            match self.start_on(port) {
                Err(TunnelError::Failed { message, .. })
                    if attempt < PORT_ATTEMPTS && is_port_taken(&message) =>
                {
                    attempt += 1;
                    port = free_local_port()?;
                }
                other => return other,
            }
        }
    }

    fn start_on(&mut self, port: u16) -> Result<(), TunnelError> {
        let mut process = SshProcess::spawn(self.command(port), &self.config.program)?;
        wait_for_forward(&mut process, port, self.timeout)?;
        self.local_port = port;
        self.process = Some(process);
        Ok(())
    }

    fn command(&self, port: u16) -> Command {
        let forward = format!("127.0.0.1:{port}:{}:{}", self.target, self.remote_port);
        ssh_command(&self.config, self.askpass.as_ref(), self.timeout, &forward)
    }
}

impl Drop for Tunnel {
    /// Stops ssh and waits for it, then removes the askpass helper: no process or file
    /// is left behind.
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
        self.askpass = None;
    }
}

/// Returns once 127.0.0.1:`port` accepts connections; fails with ssh's last words if ssh
/// ends first, or stops it after `timeout`.
fn wait_for_forward(
    process: &mut SshProcess,
    port: u16,
    timeout: Duration,
) -> Result<(), TunnelError> {
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = process.exited() {
            return Err(TunnelError::Failed {
                message: process.last_words(),
                status: status.code(),
            });
        }
        if TcpStream::connect_timeout(&local, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            process.stop();
            return Err(TunnelError::TimedOut {
                after: timeout,
                message: process.last_words(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port on 127.0.0.1 that nobody listens on right now.
pub(super) fn free_local_port() -> Result<u16, TunnelError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(TunnelError::Local)?;
    Ok(listener.local_addr().map_err(TunnelError::Local)?.port())
}

/// ssh's words when the local end of a forward cannot be bound.
fn is_port_taken(message: &str) -> bool {
    message.contains("Address already in use") || message.contains("cannot listen to port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_without_password() {
        let mut config = TunnelConfig::new("u@h:2022".parse::<SshHost>().unwrap());
        config.password = Some(Secret::new("hunter2"));
        let tunnel = Tunnel {
            config,
            target: "10.1.1.1".into(),
            remote_port: 5555,
            timeout: Duration::from_secs(5),
            local_port: 40000,
            askpass: None,
            process: None,
        };
        let line = tunnel.command_line();
        assert!(!line.contains("hunter2"), "{line}");
        assert!(
            line.ends_with("-l u -p 2022 -L 127.0.0.1:40000:10.1.1.1:5555 -- h"),
            "{line}"
        );
        assert!(line.contains("-o ExitOnForwardFailure=yes"), "{line}");
    }
}
