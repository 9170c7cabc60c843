// SPDX-License-Identifier: MPL-2.0
//! [`Tunnel`] against a real OpenSSH server (the fixture in tests/sshd.rs beside this
//! file): key and password logins, its failures (wrong password, unreachable or unknown
//! host, silent host, missing key), and that no ssh outlives the tunnel or the process
//! that owns it.

mod sshd;

use super::tunnel::free_local_port;
use super::{Secret, SshHost, Tunnel, TunnelConfig, TunnelError};
use sshd::{assert_tunnel_closed, ssh_pids_for, Password, Sshd};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

fn key_config(sshd: &Sshd) -> TunnelConfig {
    let mut config = TunnelConfig::new(sshd.destination().parse::<SshHost>().expect("spec"));
    config.keyfile = Some(sshd.client_key.clone());
    config.options = sshd.client_options();
    config
}

fn password_config(sshd: &Sshd, password: &str) -> TunnelConfig {
    let mut config = TunnelConfig::new(sshd.destination().parse::<SshHost>().expect("spec"));
    config.password = Some(Secret::new(password));
    config.options = sshd.client_options();
    config
}

/// A TCP echo server on 127.0.0.1 for as many connections as come.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// Sends bytes through the tunnel's local port and expects them back unchanged.
fn assert_echoes(local_port: u16) {
    let mut stream = TcpStream::connect(("127.0.0.1", local_port)).expect("connect tunnel");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let sent: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let writer = {
        let mut w = stream.try_clone().expect("clone");
        let data = sent.clone();
        std::thread::spawn(move || w.write_all(&data).expect("write"))
    };
    let mut got = vec![0u8; sent.len()];
    stream.read_exact(&mut got).expect("echo back");
    writer.join().expect("writer");
    assert!(got == sent, "bytes changed in the tunnel");
}

/// Drops the tunnel and checks its ssh is gone: not running, not a zombie.
fn close_and_check(tunnel: Tunnel) {
    let port = tunnel.local_port();
    let pids = ssh_pids_for(port);
    assert_eq!(pids.len(), 1, "one ssh runs the tunnel: {pids:?}");
    drop(tunnel);
    assert_tunnel_closed(pids[0], port);
}

fn open_failure(config: &TunnelConfig, remote_port: u16) -> TunnelError {
    match Tunnel::open(config, "127.0.0.1", remote_port, OPEN_TIMEOUT) {
        Ok(t) => panic!("the tunnel opened: {t:?}"),
        Err(e) => {
            eprintln!("failed as expected: {e}");
            e
        }
    }
}

#[test]
fn key_login_forwards_bytes_and_closes_cleanly() {
    let sshd = Sshd::start();
    let echo = echo_server();
    let tunnel = Tunnel::open(&key_config(&sshd), "127.0.0.1", echo, OPEN_TIMEOUT)
        .unwrap_or_else(|e| panic!("tunnel: {e}\nsshd: {}", sshd.log()));
    assert_ne!(tunnel.local_port(), echo);
    assert_echoes(tunnel.local_port());
    assert_echoes(tunnel.local_port());
    close_and_check(tunnel);
}

#[test]
fn dropping_the_tunnel_stops_ssh() {
    let sshd = Sshd::start();
    let tunnel =
        Tunnel::open(&key_config(&sshd), "127.0.0.1", echo_server(), OPEN_TIMEOUT).expect("tunnel");
    let port = tunnel.local_port();
    let pids = ssh_pids_for(port);
    assert_eq!(pids.len(), 1);
    drop(tunnel);
    assert!(!PathBuf::from(format!("/proc/{}", pids[0])).exists());
}

/// The full name of `tunnel_owner_process` in this test binary, for `--exact`.
const TUNNEL_OWNER_TEST: &str = "ssh::tests::tunnel_owner_process";

/// Run by `ssh_dies_with_its_process` in a child process: opens a tunnel, says its
/// port, and waits to be killed. Does nothing when run on its own.
#[test]
#[ignore = "helper for ssh_dies_with_its_process"]
fn tunnel_owner_process() {
    let (Ok(destination), Ok(key), Ok(known)) = (
        std::env::var("NETGEAR_TUNNEL_DESTINATION"),
        std::env::var("NETGEAR_TUNNEL_KEY"),
        std::env::var("NETGEAR_TUNNEL_KNOWN_HOSTS"),
    ) else {
        return;
    };
    let mut config = TunnelConfig::new(destination.parse::<SshHost>().expect("spec"));
    config.keyfile = Some(PathBuf::from(key));
    config.options = vec![
        format!("UserKnownHostsFile={known}"),
        "StrictHostKeyChecking=yes".into(),
    ];
    let tunnel = Tunnel::open(&config, "127.0.0.1", echo_server(), OPEN_TIMEOUT).expect("tunnel");
    println!("TUNNEL {}", tunnel.local_port());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn ssh_dies_with_its_process() {
    let sshd = Sshd::start();
    let mut owner = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", TUNNEL_OWNER_TEST, "--ignored", "--nocapture"])
        .env("NETGEAR_TUNNEL_DESTINATION", sshd.destination())
        .env("NETGEAR_TUNNEL_KEY", &sshd.client_key)
        .env("NETGEAR_TUNNEL_KNOWN_HOSTS", &sshd.known_hosts)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn owner");
    let stdout = owner.stdout.take().expect("stdout");
    let port: u16 = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("TUNNEL ").and_then(|p| p.parse().ok()))
        .expect("the owner reports its tunnel");
    assert_eq!(ssh_pids_for(port).len(), 1, "the owner's ssh runs");
    // SIGKILL: no Drop; only the kernel can stop ssh now.
    owner.kill().expect("kill owner");
    owner.wait().expect("reap owner");
    let mut left = ssh_pids_for(port);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = ssh_pids_for(port);
    }
    assert!(
        left.is_empty(),
        "ssh {left:?} outlived the process that owned it"
    );
}

#[test]
fn restart_keeps_the_local_port_and_reports_a_lost_server() {
    let mut sshd = Sshd::start();
    let echo = echo_server();
    let mut tunnel =
        Tunnel::open(&key_config(&sshd), "127.0.0.1", echo, OPEN_TIMEOUT).expect("tunnel");
    let port = tunnel.local_port();
    let first = ssh_pids_for(port);
    tunnel.restart().expect("restart");
    assert_eq!(
        tunnel.local_port(),
        port,
        "a restart keeps a free local port"
    );
    let second = ssh_pids_for(port);
    assert_eq!(second.len(), 1);
    assert_ne!(first, second, "a new ssh runs the tunnel");
    assert_echoes(port);
    assert!(tunnel.check().is_ok());

    // The SSH server goes away: ssh ends and check() says so with ssh's words.
    sshd.stop();
    let mut ended = None;
    for _ in 0..200 {
        if let Err(e) = tunnel.check() {
            ended = Some(e);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match ended {
        Some(TunnelError::Exited { message, status }) => {
            // e.g. "client_loop: send disconnect: Broken pipe" or "Connection to
            // 127.0.0.1 closed by remote host."
            assert_eq!(status, Some(255), "{message}");
            assert!(!message.is_empty(), "ssh's words are kept");
        }
        other => panic!("no end reported: {other:?}"),
    }
    drop(tunnel);
    assert!(ssh_pids_for(port).is_empty());
}

#[test]
fn receiver_unreachable_from_the_ssh_host_is_reported_by_messages() {
    let sshd = Sshd::start();
    let nobody = free_local_port().expect("free port");
    let tunnel =
        Tunnel::open(&key_config(&sshd), "127.0.0.1", nobody, OPEN_TIMEOUT).expect("tunnel");
    // Opening probes the local port once, so ssh already tried the remote end.
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines.extend(tunnel.messages());
        if !lines.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = lines.join("\n");
    assert!(
        text.contains("open failed") && text.contains("Connection refused"),
        "{text}"
    );
    drop(tunnel);
}

#[test]
fn password_login_through_askpass_keeps_the_password_off_command_lines() {
    let sshd = Sshd::start();
    let password = Password::set();
    let echo = echo_server();
    let tunnel = Tunnel::open(
        &password_config(&sshd, &password.text),
        "127.0.0.1",
        echo,
        OPEN_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("tunnel: {e}\nsshd: {}", sshd.log()));
    assert_echoes(tunnel.local_port());
    assert!(!tunnel.command_line().contains(&password.text));
    let helpers = askpass_dirs();
    assert_eq!(helpers.len(), 1, "one askpass helper: {helpers:?}");
    assert_eq!(
        mode(&helpers[0]),
        0o700,
        "the helper's directory is private"
    );
    assert_eq!(mode(&helpers[0].join("askpass")), 0o700);
    let script = std::fs::read_to_string(helpers[0].join("askpass")).expect("helper");
    assert!(
        !script.contains(&password.text),
        "the password is not in the helper file"
    );
    for entry in std::fs::read_dir("/proc")
        .expect("/proc")
        .map_while(Result::ok)
    {
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&raw);
            assert!(
                !text.contains(&password.text),
                "the password is on the command line of process {:?}",
                entry.file_name()
            );
        }
    }
    assert!(
        sshd.log().contains("Accepted password for netgear-tunnel"),
        "not a password login: {}",
        sshd.log()
    );
    close_and_check(tunnel);
    assert!(
        askpass_dirs().is_empty(),
        "close removes the askpass helper"
    );
}

/// This process's askpass helper directories (where askpass.rs puts them).
fn askpass_dirs() -> Vec<PathBuf> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let prefix = format!("netgear-ssh-{}-", std::process::id());
    std::fs::read_dir(base)
        .expect("temp dir")
        .map_while(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn wrong_password_fails_with_ssh_message() {
    let sshd = Sshd::start();
    let password = Password::set();
    let wrong = format!("{}x", password.text);
    let error = open_failure(&password_config(&sshd, &wrong), echo_server());
    let text = error.to_string();
    assert!(matches!(error, TunnelError::Failed { .. }), "{error:?}");
    assert!(text.contains("Permission denied"), "{text}");
    assert!(!text.contains(&wrong) && !format!("{error:?}").contains(&wrong));
    // The askpass helper did answer: the server saw (and refused) a password.
    assert!(
        sshd.log().contains("Failed password for netgear-tunnel"),
        "{}",
        sshd.log()
    );
}

#[test]
fn unauthorized_key_fails_with_ssh_message() {
    let sshd = Sshd::start();
    let other = sshd.dir.join("other_key");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let mut config = key_config(&sshd);
    config.keyfile = Some(other);
    let error = open_failure(&config, echo_server());
    let text = error.to_string();
    assert!(
        text.contains("Permission denied (publickey,password)"),
        "{text}"
    );
    assert!(error
        .hint()
        .is_some_and(|h| h.contains("refused the login")));
}

#[test]
fn unreachable_ssh_host_fails_at_once() {
    let mut config = TunnelConfig::new(
        format!(
            "someone@127.0.0.1:{}",
            free_local_port().expect("free port")
        )
        .parse::<SshHost>()
        .expect("spec"),
    );
    config.options = vec!["UserKnownHostsFile=/dev/null".into()];
    let error = open_failure(&config, 5555);
    let text = error.to_string();
    // Failed (ssh's own verdict), not TimedOut: no waiting out the timeout.
    assert!(matches!(error, TunnelError::Failed { .. }), "{text}");
    assert!(text.contains("Connection refused"), "{text}");
}

/// Points `config` at an empty known_hosts (returned) and drops its StrictHostKeyChecking
/// option, so the test sshd's host key is unknown and ssh's default decides.
fn with_unknown_host_key(sshd: &Sshd, config: &mut TunnelConfig) -> PathBuf {
    let empty = sshd.dir.join("empty_known_hosts");
    std::fs::write(&empty, "").expect("write");
    config.options[0] = format!("UserKnownHostsFile={}", empty.display());
    config
        .options
        .retain(|o| !o.starts_with("StrictHostKeyChecking"));
    empty
}

#[test]
fn unknown_host_key_is_refused_by_default() {
    let sshd = Sshd::start();
    let mut config = key_config(&sshd);
    let empty = with_unknown_host_key(&sshd, &mut config);
    let error = open_failure(&config, echo_server());
    let text = error.to_string();
    assert!(text.contains("Host key verification failed"), "{text}");
    assert!(error.hint().is_some_and(|h| h.contains("known_hosts")));

    // accept-new (an explicit choice) learns the key and connects.
    config
        .options
        .insert(0, "StrictHostKeyChecking=accept-new".into());
    let tunnel = Tunnel::open(&config, "127.0.0.1", echo_server(), OPEN_TIMEOUT).expect("tunnel");
    assert!(std::fs::read_to_string(&empty)
        .expect("read")
        .contains("ssh-ed25519"));
    drop(tunnel);
}

/// With a password, the askpass helper answers password prompts only: the host key
/// question gets no answer (not the password), so an unknown host still fails.
#[test]
fn unknown_host_key_is_refused_with_a_password_too() {
    let sshd = Sshd::start();
    let password = Password::set();
    let mut config = password_config(&sshd, &password.text);
    with_unknown_host_key(&sshd, &mut config);
    let text = open_failure(&config, echo_server()).to_string();
    assert!(text.contains("Host key verification failed"), "{text}");
    assert!(!sshd.log().contains("Accepted password"), "{}", sshd.log());
}

/// A host that accepts TCP but never speaks SSH: the open gives up after its timeout.
#[test]
fn silent_ssh_host_times_out() {
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let mut config = TunnelConfig::new(
        format!("someone@127.0.0.1:{port}")
            .parse::<SshHost>()
            .expect("spec"),
    );
    config.options = vec!["UserKnownHostsFile=/dev/null".into()];
    match Tunnel::open(&config, "127.0.0.1", 5555, Duration::from_secs(2)) {
        Ok(t) => panic!("opened: {t:?}"),
        // ssh's ConnectTimeout (same seconds) or our own deadline, whichever says it first.
        Err(TunnelError::Failed { message, .. }) => {
            eprintln!("failed as expected: {message}");
            assert!(message.contains("timed out"), "{message}")
        }
        Err(TunnelError::TimedOut { after, .. }) => assert_eq!(after, Duration::from_secs(2)),
        Err(other) => panic!("unexpected: {other}"),
    }
    drop(silent);
}

#[test]
fn missing_key_file_is_named() {
    let sshd = Sshd::start();
    let mut config = key_config(&sshd);
    config.keyfile = Some(sshd.dir.join("no_such_key"));
    let text = open_failure(&config, 5555).to_string();
    assert!(
        text.contains("no_such_key") && text.contains("No such file"),
        "{text}"
    );
}
