// SPDX-License-Identifier: MPL-2.0
//! A real OpenSSH server for the tunnel tests: `/usr/sbin/sshd -D -e` on a free loopback
//! port with a temporary host key, a temporary authorized key and password logins for a
//! dedicated test user, and a view of the ssh clients running. Needs root (as CI and the
//! development machine run the tests) and Debian's openssh-server (scripts/setup installs
//! it): missing is a failure, not a skip.
//!
//! One file for both test crates: the unit tests in src/ssh/tests.rs and the element tests
//! in tests/it/ssh_tunnel.rs (`#[path]`).
// Each crate that includes this file uses part of it.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";
/// The account the tests log in as; it has no shell, no home and, outside a password
/// test, no usable password ('*').
pub const TEST_USER: &str = "netgear-tunnel";

/// One sshd with everything it needs in a temporary directory, stopped on drop.
pub struct Sshd {
    pub dir: PathBuf,
    pub port: u16,
    /// A private key whose public half is authorized for TEST_USER.
    pub client_key: PathBuf,
    /// A known_hosts file that holds this server's host key.
    pub known_hosts: PathBuf,
    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA…`, for known_hosts files of other clients.
    pub known_hosts_line: String,
    child: Child,
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keygen(path: &Path) {
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "netgear-test",
            "-f",
            path.to_str().expect("utf-8 path"),
        ],
    );
}

/// Creates TEST_USER if it is missing, without a usable password.
pub fn ensure_user() {
    let exists = Command::new("id")
        .arg(TEST_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if exists {
        return;
    }
    // Several test processes may race here; a second useradd fails and is fine.
    let _ = Command::new("useradd")
        .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
        .args(["--shell", "/usr/sbin/nologin", TEST_USER])
        .status();
    // '*' is no password at all, but not "locked" ('!', useradd's default), which
    // sshd without PAM takes as a refusal of keys too.
    run("usermod", &["-p", "*", TEST_USER]);
}

/// A port nobody listens on, without "47" in it: vidgear strips ":47" from its
/// ssh_tunnel_mode text when the SSH port contains those digits (its test hook).
pub fn free_port_for_vidgear() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        if !port.to_string().contains("47") {
            return port;
        }
    }
}

fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "netgear-sshd-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    // sshd reads authorized_keys as the user logging in: the directory must be
    // traversable and the file readable for TEST_USER.
    set_mode(&dir, 0o755);
    dir
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn write_config(dir: &Path, port: u16) -> PathBuf {
    let config = dir.join("sshd_config");
    let text = format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {dir}/host_key\n\
         PidFile {dir}/sshd.pid\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication yes\n\
         KbdInteractiveAuthentication no\n\
         PermitEmptyPasswords no\n\
         UsePAM no\n\
         StrictModes no\n\
         AllowUsers {TEST_USER}\n\
         AllowTcpForwarding local\n\
         X11Forwarding no\n\
         MaxStartups 50\n\
         LogLevel VERBOSE\n",
        dir = dir.display()
    );
    fs::write(&config, text).expect("sshd_config");
    config
}

impl Sshd {
    pub fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: run scripts/setup (it installs openssh-server)"
        );
        ensure_user();
        // sshd's privilege separation directory (Debian creates it only at service start).
        fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let dir = temp_dir();
        keygen(&dir.join("host_key"));
        keygen(&dir.join("client_key"));
        fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).expect("copy key");
        set_mode(&dir.join("authorized_keys"), 0o644);
        let port = free_port_for_vidgear();
        let config = write_config(&dir, port);
        let log = fs::File::create(dir.join("sshd.log")).expect("log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sshd");
        let host_key = fs::read_to_string(dir.join("host_key.pub")).expect("host key");
        let key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        let known_hosts_line = format!("[127.0.0.1]:{port} {}\n", key.join(" "));
        let known_hosts = dir.join("known_hosts");
        fs::write(&known_hosts, &known_hosts_line).expect("known_hosts");
        let mut sshd = Sshd {
            client_key: dir.join("client_key"),
            known_hosts,
            known_hosts_line,
            dir,
            port,
            child,
        };
        sshd.wait_banner();
        sshd
    }

    /// Until the server greets with its SSH banner.
    fn wait_banner(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sshd ended ({status}): {}", self.log());
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut banner = [0u8; 8];
                if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-2.0-" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sshd did not answer on port {}: {}", self.port, self.log());
    }

    /// `TEST_USER@127.0.0.1:PORT`
    pub fn destination(&self) -> String {
        format!("{TEST_USER}@127.0.0.1:{}", self.port)
    }

    /// Client options that trust exactly this server's host key and nothing from the
    /// machine's own configuration or keys.
    pub fn client_options(&self) -> Vec<String> {
        vec![
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".into(),
            "StrictHostKeyChecking=yes".into(),
            "IdentitiesOnly=yes".into(),
            "IdentityAgent=none".into(),
        ]
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Stops the server and every connection it serves. sshd runs each connection in a
    /// process of its own session that outlives the listener, so those go first, with
    /// SIGTERM (each reaps its own privilege-separated child), then the listener, which
    /// reaps them. SIGKILL only for what lingers.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let listener = self.child.id();
        signal_all(&children(listener), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while !children(listener).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_all(&children(listener), libc::SIGKILL);
        signal_all(&[listener], libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal_all(pids: &[u32], signal: libc::c_int) {
    for pid in pids {
        if let Ok(pid) = libc::pid_t::try_from(*pid) {
            // SAFETY: plain kill(2) on processes of our own sshd, read from /proc just
            // now; the listener is not reaped before it is signalled.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

/// The pids of the processes whose parent is `parent` (from /proc/PID/stat).
fn children(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .map_while(Result::ok)
    {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so start after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// TEST_USER's password while it lives: random, one at a time per test process, and
/// back to '*' (none) on drop, so no known password outlives a test on this machine.
pub struct Password {
    pub text: String,
    _lock: MutexGuard<'static, ()>,
}

impl Password {
    pub fn set() -> Password {
        static LOCK: Mutex<()> = Mutex::new(());
        let lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        ensure_user();
        let text = random_text();
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn chpasswd");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{TEST_USER}:{text}\n").as_bytes())
            .expect("write chpasswd");
        assert!(child.wait().expect("chpasswd").success(), "chpasswd failed");
        Password { text, _lock: lock }
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        let _ = Command::new("usermod")
            .args(["-p", "*", TEST_USER])
            .status();
    }
}

/// 24 random letters and digits (from the kernel; no crate needed for a test password).
pub fn random_text() -> String {
    let mut bytes = [0u8; 24];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("urandom");
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// The pid and arguments of every running ssh client.
pub fn ssh_clients() -> Vec<(u32, Vec<String>)> {
    let mut clients = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").map_while(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_ssh = args
            .first()
            .is_some_and(|a| a == "ssh" || a.ends_with("/ssh"));
        if is_ssh {
            clients.push((pid, args));
        }
    }
    clients
}

/// Every process whose command line is an ssh forwarding `local_port`.
pub fn ssh_pids_for(local_port: u16) -> Vec<u32> {
    let forward = format!("127.0.0.1:{local_port}:");
    ssh_clients()
        .into_iter()
        .filter(|(_, args)| args.iter().any(|a| a.starts_with(&forward)))
        .map(|(pid, _)| pid)
        .collect()
}

/// The tunnel's ssh `pid` is gone (not running, not an unreaped zombie), nothing forwards
/// `local_port` any more, and the port refuses connections.
pub fn assert_tunnel_closed(pid: u32, local_port: u16) {
    assert!(
        !PathBuf::from(format!("/proc/{pid}")).exists(),
        "ssh {pid} is still there (running or unreaped)"
    );
    assert!(
        ssh_pids_for(local_port).is_empty(),
        "an ssh still forwards port {local_port}"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", local_port)).is_err(),
        "the local port still accepts connections after close"
    );
}
