// SPDX-License-Identifier: MPL-2.0
//! ssh's command line for a tunnel: checked options, the forward, the login, and the
//! options that keep the process non-interactive and ours alone.

use super::askpass::{self, AskpassHelper};
use super::error::TunnelError;
use super::host::{is_ipv6, is_valid_host_name};
use super::tunnel::TunnelConfig;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The remote end of the forward as `-L` wants it (IPv6 in brackets).
pub(super) fn forward_target(remote_host: &str) -> Result<String, TunnelError> {
    let host = remote_host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if is_ipv6(bare) {
        Ok(format!("[{bare}]"))
    } else if !bare.is_empty() && bare != "*" && is_valid_host_name(bare) {
        Ok(bare.to_owned())
    } else {
        Err(TunnelError::BadRemote(remote_host.to_owned()))
    }
}

/// `Key=Value` (or `Key Value`) with a plain option name, as `ssh -o` takes it.
pub(super) fn is_option(text: &str) -> bool {
    let name = text.split(['=', ' ']).next().unwrap_or("");
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric())
        && text.len() > name.len() + 1
        && !text.contains(['\n', '\r'])
}

/// `ssh -N -L forward host` with `config`'s options before our own, its login, and the
/// password (if any) given to the askpass helper through the environment.
pub(super) fn ssh_command(
    config: &TunnelConfig,
    askpass: Option<&AskpassHelper>,
    timeout: Duration,
    forward: &str,
) -> Command {
    let mut command = Command::new(&config.program);
    command.args(["-N", "-T", "-n"]);
    for option in config.options.iter().chain(&own_options(config, timeout)) {
        command.arg("-o").arg(option);
    }
    add_login(&mut command, config);
    command
        .arg("-L")
        .arg(forward)
        .arg("--")
        .arg(&config.host.host);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match (&config.password, askpass) {
        (Some(secret), Some(helper)) => helper.answer_prompts(&mut command, secret),
        _ => askpass::no_prompts(&mut command),
    }
    command
}

/// The key file, user and port of the SSH host.
fn add_login(command: &mut Command, config: &TunnelConfig) {
    if let Some(keyfile) = &config.keyfile {
        command.arg("-i").arg(keyfile);
    }
    if let Some(user) = &config.host.user {
        command.arg("-l").arg(user);
    }
    if let Some(port) = config.host.port {
        command.arg("-p").arg(port.to_string());
    }
}

/// Non-interactive and quick to fail; the tunnel process is ours alone (no control
/// master, no fork to the background, whatever ~/.ssh/config says).
fn own_options(config: &TunnelConfig, timeout: Duration) -> Vec<String> {
    let connect = timeout.as_secs().clamp(1, 3600);
    let batch = if config.password.is_some() {
        "BatchMode=no"
    } else {
        "BatchMode=yes"
    };
    let mut options = vec![
        batch.to_owned(),
        "ExitOnForwardFailure=yes".to_owned(),
        format!("ConnectTimeout={connect}"),
        "ServerAliveInterval=5".to_owned(),
        "ServerAliveCountMax=3".to_owned(),
        "ControlMaster=no".to_owned(),
        "ControlPath=none".to_owned(),
        "ForkAfterAuthentication=no".to_owned(),
        "SessionType=none".to_owned(),
    ];
    if config.password.is_some() {
        // One try: a wrong password fails now, with ssh's "Permission denied".
        options.push("NumberOfPasswordPrompts=1".to_owned());
    }
    options
}

/// The program and its arguments on one line, for logs (the environment, where the
/// password is, is not part of it).
pub(super) fn printable(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_targets() {
        assert_eq!(forward_target("10.0.0.9").unwrap(), "10.0.0.9");
        assert_eq!(forward_target("receiver.lan").unwrap(), "receiver.lan");
        assert_eq!(forward_target("::1").unwrap(), "[::1]");
        assert_eq!(forward_target("[::1]").unwrap(), "[::1]");
        for bad in ["*", "", "a b", "-x", "h:1"] {
            assert!(
                matches!(forward_target(bad), Err(TunnelError::BadRemote(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn options_are_checked() {
        assert!(is_option("StrictHostKeyChecking=accept-new"));
        assert!(is_option("UserKnownHostsFile /tmp/k"));
        assert!(!is_option("=x"));
        assert!(!is_option("Key="));
        assert!(!is_option("-F=x"));
        assert!(!is_option("A=b\nProxyCommand=c"));
    }
}
