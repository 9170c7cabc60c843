// SPDX-License-Identifier: MPL-2.0
//! The sink's SSH tunnel (vidgear's `ssh_tunnel_mode`): its properties, and the glue that
//! opens it at start, keeps it up while streaming and closes it with the link.

use crate::config::Role;
use crate::properties::{string_value, CommonSettings};
use crate::ssh::{check_tunnel_modes, Secret, SshHost, Tunnel, TunnelConfig, TunnelError};
use gst::glib;
use gst::prelude::*;
use std::path::PathBuf;
use std::time::Duration;

/// The shortest time ssh gets to log in and set up the forward.
const MIN_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The `ssh-*` properties.
#[derive(Debug, Clone, Default)]
pub struct TunnelSettings {
    pub host: String,
    pub keyfile: String,
    pub password: String,
    pub options: String,
}

impl TunnelSettings {
    pub fn properties() -> Vec<glib::ParamSpec> {
        vec![
            glib::ParamSpecString::builder("ssh-tunnel")
                .nick("SSH tunnel")
                .blurb("vidgear's ssh_tunnel_mode: reach the receiver through this SSH host, [user@]host[:port], with the system's ssh (address and port are then the receiver as seen from that host); empty: no tunnel")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("ssh-keyfile")
                .nick("SSH key file")
                .blurb("vidgear's ssh_tunnel_keyfile: private key for the SSH login (besides ssh-agent and ssh's default keys)")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("ssh-password")
                .nick("SSH password")
                .blurb("vidgear's ssh_tunnel_pwd: password (or key passphrase) for the SSH login, given to ssh through SSH_ASKPASS, never on a command line; write-only")
                .write_only()
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("ssh-options")
                .nick("SSH options")
                .blurb("Extra ssh -o options, comma-separated Key=Value pairs, e.g. \"StrictHostKeyChecking=accept-new\"")
                .mutable_ready()
                .build(),
        ]
    }

    /// Applies an `ssh-*` property; `false` if `pspec` is not one of them.
    pub fn set_property(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) -> bool {
        let field = match pspec.name() {
            "ssh-tunnel" => &mut self.host,
            "ssh-keyfile" => &mut self.keyfile,
            "ssh-password" => &mut self.password,
            "ssh-options" => &mut self.options,
            _ => return false,
        };
        *field = string_value(value);
        true
    }

    /// Reads an `ssh-*` property (the password reads back empty).
    pub fn property(&self, pspec: &glib::ParamSpec) -> Option<glib::Value> {
        Some(match pspec.name() {
            "ssh-tunnel" => self.host.to_value(),
            "ssh-keyfile" => self.keyfile.to_value(),
            "ssh-password" => "".to_value(),
            "ssh-options" => self.options.to_value(),
            _ => return None,
        })
    }

    fn config(&self) -> Result<TunnelConfig, gst::ErrorMessage> {
        let host: SshHost = self.host.parse().map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ["Invalid ssh-tunnel=\"{}\": {}", self.host, e]
            )
        })?;
        let mut config = TunnelConfig::new(host);
        config.keyfile = (!self.keyfile.is_empty()).then(|| PathBuf::from(&self.keyfile));
        config.password = (!self.password.is_empty()).then(|| Secret::new(self.password.clone()));
        config.options = self
            .options
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(config)
    }
}

/// Opens the tunnel `tunnel` asks for, if any, and returns the settings the link must use
/// instead: the tunnel's local end on 127.0.0.1.
pub fn open(
    tunnel: &TunnelSettings,
    common: &CommonSettings,
) -> Result<Option<(Tunnel, CommonSettings)>, gst::ErrorMessage> {
    if tunnel.host.is_empty() {
        return Ok(None);
    }
    let refused = |why: &dyn std::fmt::Display| {
        gst::error_msg!(gst::ResourceError::Settings, ["Invalid settings: {}", why])
    };
    check_tunnel_modes(
        Role::Sender,
        common.protocol,
        common.multi_server,
        common.multi_client,
    )
    .map_err(|e| refused(&e))?;
    if common.address == "*" || common.address.is_empty() {
        return Err(refused(&"ssh-tunnel needs address= set to the receiver as the SSH host sees it (e.g. 127.0.0.1), not \"*\""));
    }
    let config = tunnel.config()?;
    let timeout = Duration::from_millis(u64::from(common.request_timeout_ms)).max(MIN_OPEN_TIMEOUT);
    let opened = Tunnel::open(&config, &common.address, common.own_port(), timeout)
        .map_err(|e| failed(&tunnel.host, &e))?;
    let mut through = common.clone();
    through.address = "127.0.0.1".into();
    through.port = u32::from(opened.local_port());
    Ok(Some((opened, through)))
}

/// The element error for a tunnel that could not be opened or restarted.
pub fn failed(host: &str, error: &TunnelError) -> gst::ErrorMessage {
    let hint = error.hint().unwrap_or("");
    gst::error_msg!(
        gst::ResourceError::OpenWrite,
        ("SSH tunnel through {} failed: {}", host, error),
        ["{}", hint]
    )
}

/// Keeps the tunnel up: an ssh that died is started again on the same local port.
/// Returns ssh's lines since the last call, for the log.
pub fn keep_up(tunnel: &mut Tunnel) -> Result<Vec<String>, TunnelError> {
    let mut lines = tunnel.messages();
    if let Err(e) = tunnel.check() {
        lines.push(e.to_string());
        let port = tunnel.local_port();
        tunnel.restart()?;
        if tunnel.local_port() != port {
            return Err(TunnelError::Exited {
                message: format!(
                    "restarted on port {} instead of {port}",
                    tunnel.local_port()
                ),
                status: None,
            });
        }
    }
    Ok(lines)
}
