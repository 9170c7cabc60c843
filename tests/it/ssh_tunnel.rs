// SPDX-License-Identifier: MPL-2.0
//! SSH tunnel mode with the elements, against a real OpenSSH server (the fixture in
//! src/ssh/tests/sshd.rs, shared with the tunnel's own unit tests in src/ssh/tests.rs):
//! `netgearsink`'s ssh-* properties through it to `netgearsrc` and to vidgear's receiver,
//! their failures, and vidgear's own `ssh_tunnel_mode` sender (pyzmq over paramiko) to
//! `netgearsrc`.

#[path = "../../src/ssh/tests/sshd.rs"]
mod sshd;

use crate::common::*;
use gst::glib;
use gst::prelude::*;
use gst_video::VideoFormat;
use serde_json::Value;
use sshd::{assert_tunnel_closed, ssh_clients, Password, Sshd};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const WIDTH: usize = 64;
const HEIGHT: usize = 48;

fn assert_frames_exact(received: &[Frame], frames: usize) {
    assert_eq!(received.len(), frames, "every frame arrives");
    for (n, frame) in received.iter().enumerate() {
        let packed = frame.packed();
        assert_eq!(frame_index(&packed), n, "frames arrive in order");
        assert!(
            packed == test_frame(n, WIDTH, HEIGHT, 3, false),
            "frame {n} differs"
        );
    }
}

/// A sender whose sink reaches 127.0.0.1:`port` as `sshd` sees it, through a key-login
/// tunnel the sink opens itself.
fn tunnel_sender(sshd: &Sshd, port: u16) -> Sender {
    let (port_text, key) = (
        port.to_string(),
        sshd.client_key.to_string_lossy().into_owned(),
    );
    let (destination, options) = (sshd.destination(), sshd.client_options().join(","));
    Sender::raw(
        VideoFormat::Bgr,
        WIDTH as u32,
        HEIGHT as u32,
        &[
            ("address", "127.0.0.1"),
            ("port", &port_text),
            ("jpeg-compression", "false"),
            ("ssh-tunnel", &destination),
            ("ssh-keyfile", &key),
            ("ssh-options", &options),
        ],
    )
}

/// Pushes `frames` test frames into a sink that reaches `port` through a tunnel it opens
/// through `sshd`, waits for its EOS, and returns it still running (its tunnel open).
fn send_frames(sshd: &Sshd, port: u16, frames: usize) -> Sender {
    let sender = tunnel_sender(sshd, port);
    sender.play();
    for idx in 0..frames {
        std::thread::sleep(Duration::from_millis(5));
        sender
            .push_packed(&test_frame(idx, WIDTH, HEIGHT, 3, false), idx as u64)
            .expect("push");
    }
    sender.finish_expect_eos(Duration::from_secs(20));
    sender
}

/// The one ssh running the tunnel to `destination`: its pid and the local port it forwards.
fn tunnel_ssh(destination: &str) -> (u32, u16) {
    let clients = ssh_clients_for_destination(destination);
    assert_eq!(clients.len(), 1, "one ssh runs the tunnel: {clients:?}");
    let (pid, args) = &clients[0];
    let local_port = args
        .iter()
        .find_map(|a| {
            a.strip_prefix("127.0.0.1:")?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no forward in {args:?}"));
    (*pid, local_port)
}

/// Stops the sender and checks the ssh of its tunnel is gone: not running, not a zombie.
fn stop_and_check(sender: Sender, destination: &str) {
    let (pid, port) = tunnel_ssh(destination);
    drop(sender);
    assert_tunnel_closed(pid, port);
}

#[test]
fn sink_through_tunnel_to_netgearsrc() {
    let sshd = Sshd::start();
    let port = free_port();
    let port_text = port.to_string();
    let receiver = Receiver::new(&[("address", "127.0.0.1"), ("port", &port_text)]);
    receiver.play();
    let sender = send_frames(&sshd, port, 20);
    let (received, eos) = receiver.collect(Duration::from_secs(10));
    assert!(eos, "no EOS through the tunnel");
    assert_frames_exact(&received, 20);
    stop_and_check(sender, &sshd.destination());
}

#[test]
fn sink_through_tunnel_to_vidgear_receiver() {
    let sshd = Sshd::start();
    let port = free_port();
    let mut peer = Peer::start(&peer_args("recv", port, 0, &[("seconds", "25".into())]));
    peer.wait_ready(Duration::from_secs(20));
    let sender = send_frames(&sshd, port, 20);
    let report = peer.report(Duration::from_secs(25));
    assert_eq!(report["terminated"], Value::Bool(true), "{report}");
    assert_eq!(report["bad"], Value::Array(vec![]), "{report}");
    let received: Vec<u64> = report["received"]
        .as_array()
        .expect("received")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(received, (0..20).collect::<Vec<u64>>(), "{report}");
    stop_and_check(sender, &sshd.destination());
}

/// Runs tests/python/netgear_peer.py's sender with vidgear's SSH tunnel options added,
/// with HOME set to a directory whose .ssh/known_hosts knows the test server (paramiko,
/// which vidgear prefers, reads ~/.ssh/known_hosts and refuses unknown hosts).
fn vidgear_tunnel_sender(sshd: &Sshd, ssh_options: Value, port: u16, frames: usize) -> Value {
    let home = sshd.dir.join("home");
    std::fs::create_dir_all(home.join(".ssh")).expect("home");
    std::fs::write(home.join(".ssh/known_hosts"), &sshd.known_hosts_line).expect("known_hosts");
    let script = "import json, sys\n\
sys.path.insert(0, sys.argv[1])\n\
import netgear_peer as peer\n\
ssh = json.loads(sys.argv[2])\n\
base = peer.options\n\
peer.options = lambda args, receive: {**base(args, receive), **ssh}\n\
sys.argv = ['netgear_peer.py'] + sys.argv[3:]\n\
peer.main()\n";
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let mut child = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&dir)
        .arg(ssh_options.to_string())
        .args(peer_args(
            "send",
            port,
            0,
            &[
                ("frames", frames.to_string()),
                ("address", "127.0.0.1".into()),
            ],
        ))
        .env("HOME", &home)
        .env_remove("SSH_AUTH_SOCK")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn vidgear sender");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .last()
        .unwrap_or_default();
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "vidgear sender failed ({status}); sshd: {}",
        sshd.log()
    );
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad report {line:?}: {e}"))
}

fn vidgear_with_ssh_tunnel_mode_to_src(ssh_options: impl Fn(&Sshd) -> Value, method: &str) {
    let sshd = Sshd::start();
    let port = free_port();
    let port_text = port.to_string();
    let receiver = Receiver::new(&[("address", "127.0.0.1"), ("port", &port_text)]);
    receiver.play();
    let report = vidgear_tunnel_sender(&sshd, ssh_options(&sshd), port, 15);
    assert_eq!(report["sent"], 15);
    let (received, eos) = receiver.collect(Duration::from_secs(10));
    assert!(eos, "no EOS from vidgear through its tunnel");
    assert_frames_exact(&received, 15);
    // The frames really went through sshd: it logged the login and the forward.
    let log = sshd.log();
    assert!(
        log.contains(&format!("Accepted {method} for netgear-tunnel")),
        "{log}"
    );
}

#[test]
fn vidgear_key_tunnel_to_netgearsrc() {
    vidgear_with_ssh_tunnel_mode_to_src(
        |sshd| {
            serde_json::json!({
                "ssh_tunnel_mode": sshd.destination(),
                "ssh_tunnel_keyfile": sshd.client_key.to_string_lossy(),
            })
        },
        "publickey",
    );
}

#[test]
fn vidgear_password_tunnel_to_netgearsrc() {
    let password = Password::set();
    let text = password.text.clone();
    vidgear_with_ssh_tunnel_mode_to_src(
        move |sshd| {
            serde_json::json!({
                "ssh_tunnel_mode": sshd.destination(),
                "ssh_tunnel_pwd": text,
            })
        },
        "password",
    );
}

/// `netgearsink ssh-tunnel=… ssh-keyfile=… ssh-options=…`: the element opens the tunnel
/// itself and a real vidgear receiver behind the SSH host gets every frame.
#[test]
fn sink_properties_open_the_tunnel_to_a_vidgear_receiver() {
    let sshd = Sshd::start();
    let port = free_port();
    let mut peer = Peer::start(&peer_args("recv", port, 0, &[("seconds", "25".into())]));
    peer.wait_ready(Duration::from_secs(20));
    let sender = tunnel_sender(&sshd, port);
    sender.play();
    for idx in 0..20 {
        sender
            .push_packed(&test_frame(idx, WIDTH, HEIGHT, 3, false), idx as u64)
            .expect("push");
    }
    sender.finish_expect_eos(Duration::from_secs(20));
    let report = peer.report(Duration::from_secs(25));
    let received: Vec<u64> = report["received"]
        .as_array()
        .expect("received")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(received, (0..20).collect::<Vec<u64>>(), "{report}");
    assert_eq!(report["bad"], Value::Array(vec![]), "{report}");
    let password = sender
        .sink
        .find_property("ssh-password")
        .expect("ssh-password");
    assert!(
        !password.flags().contains(glib::ParamFlags::READABLE),
        "ssh-password is write-only"
    );
    drop(sender);
    assert!(
        ssh_clients_for_destination(&sshd.destination()).is_empty(),
        "ssh left running"
    );
}

/// The ssh clients whose command line names `destination`'s port.
fn ssh_clients_for_destination(destination: &str) -> Vec<(u32, Vec<String>)> {
    let port = destination
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    ssh_clients()
        .into_iter()
        .filter(|(_, args)| args.join(" ").contains(&format!("-p {port}")))
        .collect()
}

const WRONG_PASSWORD: &str = "not-the-password-7f3a";

/// Start fails with ssh's own words when the login is refused, and vidgear's clashes are
/// refused before ssh runs.
#[test]
fn sink_tunnel_failures_name_the_cause() {
    let sshd = Sshd::start();
    let options = sshd.client_options().join(",");
    let cases = [
        (
            vec![
                ("ssh-tunnel", sshd.destination()),
                ("ssh-password", WRONG_PASSWORD.into()),
            ],
            "Permission denied",
        ),
        (
            vec![
                ("ssh-tunnel", format!("nobody@127.0.0.1:{}", free_port())),
                (
                    "ssh-keyfile",
                    sshd.client_key.to_string_lossy().into_owned(),
                ),
            ],
            "Connection refused",
        ),
        (
            vec![
                ("ssh-tunnel", sshd.destination()),
                ("multi-client", "true".into()),
                ("pattern", "req-rep".into()),
                ("ports", "5577,5578".into()),
            ],
            "ssh-tunnel cannot be combined with multi-client=true",
        ),
    ];
    for (props, expected) in cases {
        let mut props: Vec<(&str, String)> = props;
        props.push(("ssh-options", options.clone()));
        props.push(("address", "127.0.0.1".into()));
        props.push(("port", free_port().to_string()));
        let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sender = Sender::raw(VideoFormat::Bgr, WIDTH as u32, HEIGHT as u32, &props);
        assert!(sender.pipeline.set_state(gst::State::Paused).is_err());
        match wait_end(&sender.pipeline, Duration::from_secs(20)) {
            Outcome::Error(e) => {
                assert!(e.contains(expected), "{expected}: {e}");
                assert!(
                    !e.contains(WRONG_PASSWORD),
                    "the password is in the error: {e}"
                );
            }
            other => panic!("{expected}: {other:?}"),
        }
    }
}
