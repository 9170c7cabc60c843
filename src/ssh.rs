// SPDX-License-Identifier: MPL-2.0
//! SSH tunnel mode (vidgear's `ssh_tunnel_mode`): a sender reaches a receiver that only an
//! SSH host can reach, through a local port forward run by the system OpenSSH client, so
//! the user's `~/.ssh/config`, agent and `known_hosts` apply as they do for `ssh` itself.
//!
//! The tunnel is `ssh -N -L 127.0.0.1:LOCAL:REMOTE_HOST:REMOTE_PORT [user@]host`, owned by
//! its [`Tunnel`]: killed and reaped on close or drop, killed by the kernel if the owning
//! process dies (so no `ssh` outlives a crashed pipeline), and never interactive: keys
//! or agent with `BatchMode=yes`, or a password answered by a private `SSH_ASKPASS`
//! helper that reads it from ssh's environment (never from a command line).
//!
//! Host keys: nothing here weakens OpenSSH's checks. An SSH host missing from
//! `known_hosts` fails with ssh's own "Host key verification failed." unless the user's
//! configuration (or [`TunnelConfig::options`], e.g. `StrictHostKeyChecking=accept-new`)
//! says otherwise.

use crate::config::{Protocol, Role};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The environment variable the askpass helper reads the password from.
const SECRET_VAR: &str = "NETGEAR_SSH_SECRET";
/// How many of ssh's most recent stderr lines an error quotes.
const KEPT_LINES: usize = 12;
/// Longest stderr line kept (ssh's messages are short; anything longer is cut).
const MAX_LINE: usize = 400;
/// How many not yet collected stderr lines [`Tunnel::messages`] holds.
const MAX_PENDING: usize = 64;
/// How often a failed start is retried with a fresh local port (another process may take
/// the port between our probe and ssh's bind).
const PORT_ATTEMPTS: usize = 3;

/// The SSH host of a tunnel, `[user@]host[:port]` as vidgear's `ssh_tunnel_mode` takes it.
/// `host` may be a `~/.ssh/config` alias; an IPv6 address is written `[::1]` when a port
/// follows (a bare `::1` is taken as a host without port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Why a `[user@]host[:port]` text is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecError {
    Empty,
    EmptyUser,
    EmptyHost,
    BadUser(String),
    BadHost(String),
    BadPort(String),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::Empty => write!(f, "the SSH host is empty: expected [user@]host[:port]"),
            SpecError::EmptyUser => write!(f, "nothing before '@': expected user@host[:port]"),
            SpecError::EmptyHost => write!(f, "no host name: expected [user@]host[:port]"),
            SpecError::BadUser(u) => write!(f, "'{u}' is not a user name"),
            SpecError::BadHost(h) => write!(f, "'{h}' is not a host name or address"),
            SpecError::BadPort(p) => write!(f, "'{p}' is not a port number (1-65535)"),
        }
    }
}

impl std::error::Error for SpecError {}

/// Letters ssh takes in a host name, alias or IPv4 address (no spaces, no option-like
/// leading '-', nothing a shell or ssh would interpret).
fn is_host_name(text: &str) -> bool {
    !text.starts_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// An IPv6 address, with an optional `%zone`.
fn is_ipv6(text: &str) -> bool {
    let address = text.split_once('%').map_or(text, |(a, _)| a);
    address.parse::<Ipv6Addr>().is_ok()
}

fn is_user_name(text: &str) -> bool {
    !text.starts_with('-')
        && text
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != ':' && c != '/')
}

fn parse_port(text: &str) -> Result<u16, SpecError> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| SpecError::BadPort(text.to_owned()))
}

/// Splits `host[:port]`, `[v6]:port`, `[v6]` or a bare IPv6 address.
fn split_host_port(text: &str) -> Result<(String, Option<u16>), SpecError> {
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| SpecError::BadHost(text.to_owned()))?;
        if !is_ipv6(inside) {
            return Err(SpecError::BadHost(inside.to_owned()));
        }
        let port = match after.strip_prefix(':') {
            _ if after.is_empty() => None,
            Some(port) => Some(parse_port(port)?),
            None => return Err(SpecError::BadHost(text.to_owned())),
        };
        return Ok((inside.to_owned(), port));
    }
    if is_ipv6(text) {
        return Ok((text.to_owned(), None));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, Some(parse_port(p)?)),
        None => (text, None),
    };
    if host.is_empty() {
        return Err(SpecError::EmptyHost);
    }
    if !is_host_name(host) {
        return Err(SpecError::BadHost(host.to_owned()));
    }
    Ok((host.to_owned(), port))
}

impl FromStr for SshHost {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<SshHost, SpecError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SpecError::Empty);
        }
        // The host part never holds '@', so the last one ends the user (as in ssh).
        let (user, rest) = match text.rsplit_once('@') {
            Some(("", _)) => return Err(SpecError::EmptyUser),
            Some((u, r)) if is_user_name(u) => (Some(u.to_owned()), r),
            Some((u, _)) => return Err(SpecError::BadUser(u.to_owned())),
            None => (None, text),
        };
        if rest.is_empty() {
            return Err(SpecError::EmptyHost);
        }
        let (host, port) = split_host_port(rest)?;
        Ok(SshHost { user, host, port })
    }
}

impl fmt::Display for SshHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match (self.port, self.host.contains(':')) {
            (Some(port), true) => write!(f, "[{}]:{port}", self.host),
            (Some(port), false) => write!(f, "{}:{port}", self.host),
            (None, _) => write!(f, "{}", self.host),
        }
    }
}

/// A password that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

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
}

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

/// vidgear's refusals for SSH tunnel mode, and ipc, which has no port to forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelClash {
    Receiver,
    MultiServer,
    MultiClient,
    Ipc,
}

impl fmt::Display for TunnelClash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = "a tunnel forwards one port to one receiver";
        match self {
            TunnelClash::Receiver => write!(
                f,
                "an SSH tunnel is for the sending side only: the receiver binds, the sender reaches it through the tunnel"
            ),
            TunnelClash::MultiServer => {
                write!(f, "ssh-tunnel cannot be combined with multi-server=true: {why}")
            }
            TunnelClash::MultiClient => {
                write!(f, "ssh-tunnel cannot be combined with multi-client=true: {why}")
            }
            TunnelClash::Ipc => write!(
                f,
                "ssh-tunnel needs protocol=tcp: an ipc socket is a local file, not a port to forward"
            ),
        }
    }
}

impl std::error::Error for TunnelClash {}

/// Refuses what vidgear refuses with `ssh_tunnel_mode` set: the receiving side (vidgear
/// logs and ignores it there; we refuse, as a property that does nothing is a defect),
/// multi-server and multi-client mode; and ipc (vidgear builds a broken forward from the
/// path).
pub fn check_tunnel_modes(
    role: Role,
    protocol: Protocol,
    multi_server: bool,
    multi_client: bool,
) -> Result<(), TunnelClash> {
    if role == Role::Receiver {
        return Err(TunnelClash::Receiver);
    }
    if multi_server {
        return Err(TunnelClash::MultiServer);
    }
    if multi_client {
        return Err(TunnelClash::MultiClient);
    }
    if protocol != Protocol::Tcp {
        return Err(TunnelClash::Ipc);
    }
    Ok(())
}

/// The remote end of the forward as `-L` wants it (IPv6 in brackets).
fn forward_target(remote_host: &str) -> Result<String, TunnelError> {
    let host = remote_host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if is_ipv6(bare) {
        Ok(format!("[{bare}]"))
    } else if !bare.is_empty() && bare != "*" && is_host_name(bare) {
        Ok(bare.to_owned())
    } else {
        Err(TunnelError::BadRemote(remote_host.to_owned()))
    }
}

/// A port on 127.0.0.1 that nobody listens on right now.
fn free_local_port() -> Result<u16, TunnelError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(TunnelError::Local)?;
    Ok(listener.local_addr().map_err(TunnelError::Local)?.port())
}

/// A private (0700) directory holding the askpass helper, removed on drop.
struct AskpassHelper {
    dir: PathBuf,
    script: PathBuf,
}

/// Prints the secret for password and passphrase prompts only: anything else (a host key
/// confirmation) is refused, as BatchMode would. `printf` is a shell builtin, so the
/// password is never in a command line.
const ASKPASS_SCRIPT: &str = "#!/bin/sh\n\
case \"$1\" in\n\
  *[Pp]assword*|*[Pp]assphrase*) printf '%s\\n' \"$NETGEAR_SSH_SECRET\" ;;\n\
  *) exit 1 ;;\n\
esac\n";

impl AskpassHelper {
    /// In `$XDG_RUNTIME_DIR` when there is one (private, rarely mounted noexec), else the
    /// temporary directory.
    fn create() -> Result<AskpassHelper, TunnelError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let mut last = io::Error::other("no attempt");
        for _ in 0..8 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!("netgear-ssh-{}-{n}-{nanos:x}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return AskpassHelper::write_script(dir),
                Err(e) => last = e,
            }
        }
        Err(TunnelError::Askpass(last))
    }

    fn write_script(dir: PathBuf) -> Result<AskpassHelper, TunnelError> {
        let script = dir.join("askpass");
        let helper = AskpassHelper { dir, script };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&helper.script)
            .map_err(TunnelError::Askpass)?;
        io::Write::write_all(&mut file, ASKPASS_SCRIPT.as_bytes()).map_err(TunnelError::Askpass)?;
        Ok(helper)
    }
}

impl Drop for AskpassHelper {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// ssh's stderr: the last lines (for errors) and those not yet collected (for logs).
#[derive(Default)]
struct StderrLog {
    recent: VecDeque<String>,
    pending: VecDeque<String>,
    dropped: u64,
}

impl StderrLog {
    fn push(&mut self, line: String) {
        if self.recent.len() == KEPT_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(line.clone());
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
            self.dropped += 1;
        }
        self.pending.push_back(line);
    }

    fn summary(&self) -> String {
        self.recent.iter().cloned().collect::<Vec<_>>().join("; ")
    }
}

/// Reads ssh's stderr line by line (bounded), until ssh and anything it started close it.
fn read_stderr(stderr: ChildStderr, log: Arc<Mutex<StderrLog>>, done: mpsc::Sender<()>) {
    let mut reader = BufReader::new(stderr);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.by_ref().take(64 * 1024).read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&raw);
        let line: String = text.trim().chars().take(MAX_LINE).collect();
        if !line.is_empty() {
            if let Ok(mut log) = log.lock() {
                log.push(line);
            }
        }
    }
    let _ = done.send(());
}

/// One running `ssh`. A keeper thread spawns it and lives as long as it does: the child
/// asks the kernel for SIGTERM when that thread ends, which happens when the process dies
/// (a thread that ends early would take ssh with it, hence a thread of our own).
struct SshProcess {
    child: Child,
    keeper: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    log: Arc<Mutex<StderrLog>>,
    stderr_done: mpsc::Receiver<()>,
    status: Option<ExitStatus>,
}

/// Makes the child die with its parent and leave our process group (a Ctrl-C in the
/// terminal reaches the application, which then closes the tunnel in order).
fn bind_to_parent(command: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    command.process_group(0);
    // SAFETY: prctl and getppid are async-signal-safe and the closure allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

impl SshProcess {
    fn spawn(mut command: Command, program: &Path) -> Result<SshProcess, TunnelError> {
        bind_to_parent(&mut command);
        let (child_tx, child_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let keeper = std::thread::Builder::new()
            .name("netgear-ssh".into())
            .spawn(move || {
                let _ = child_tx.send(command.spawn());
                // Blocks until the tunnel is closed (the sender is dropped).
                let _ = stop_rx.recv();
            })
            .map_err(TunnelError::Local)?;
        let spawn_error = |source| TunnelError::Spawn {
            program: program.to_owned(),
            source,
        };
        let mut child = match child_rx.recv() {
            Ok(Ok(child)) => child,
            Ok(Err(e)) => return Err(spawn_error(e)),
            Err(_) => return Err(spawn_error(io::Error::other("the ssh thread died"))),
        };
        let log = Arc::new(Mutex::new(StderrLog::default()));
        let (done_tx, stderr_done) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::Builder::new()
                .name("netgear-ssh-log".into())
                .spawn(move || read_stderr(stderr, log, done_tx))
                .map_err(TunnelError::Local)?;
        }
        Ok(SshProcess {
            child,
            keeper: Some((stop_tx, keeper)),
            log,
            stderr_done,
            status: None,
        })
    }

    /// The exit status once ssh has ended (reaped), `None` while it runs.
    fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// ssh's last lines, after giving the reader a moment to see the end of stderr.
    fn last_words(&self) -> String {
        let _ = self.stderr_done.recv_timeout(Duration::from_millis(500));
        self.log.lock().map(|l| l.summary()).unwrap_or_default()
    }

    /// SIGTERM (ssh closes its connection), SIGKILL if it lingers, then reap.
    fn stop(&mut self) {
        if self.exited().is_none() {
            if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: the child is not reaped yet, so the pid is still ours.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if self.exited().is_none() {
                let _ = self.child.kill();
                self.status = self.child.wait().ok();
            }
        }
        if let Some((stop, keeper)) = self.keeper.take() {
            drop(stop);
            let _ = keeper.join();
        }
    }
}

impl Drop for SshProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A local port forward through ssh, owned by its creator: closed on [`Tunnel::close`]
/// or drop, never left behind.
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
        if let Some(bad) = config.options.iter().find(|o| !is_option(o)) {
            return Err(TunnelError::BadOption(bad.clone()));
        }
        if let Some(path) = &config.keyfile {
            std::fs::File::open(path).map_err(|source| TunnelError::KeyFile {
                path: path.clone(),
                source,
            })?;
        }
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
        let Some(process) = &self.process else {
            return Vec::new();
        };
        let Ok(mut log) = process.log.lock() else {
            return Vec::new();
        };
        let mut lines: Vec<String> = log.pending.drain(..).collect();
        if log.dropped > 0 {
            lines.insert(0, format!("({} earlier ssh messages dropped)", log.dropped));
            log.dropped = 0;
        }
        lines
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

    /// Stops ssh and waits for it: no process is left behind.
    pub fn close(mut self) {
        self.shutdown();
    }

    /// The ssh command line, for debug logs (it never holds the password).
    pub fn command_line(&self) -> String {
        let command = self.command(self.local_port);
        std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn shutdown(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
        self.askpass = None;
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
        let local = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(status) = process.exited() {
                return Err(TunnelError::Failed {
                    message: process.last_words(),
                    status: status.code(),
                });
            }
            if TcpStream::connect_timeout(&local, Duration::from_millis(200)).is_ok() {
                self.local_port = port;
                self.process = Some(process);
                return Ok(());
            }
            if Instant::now() >= deadline {
                process.stop();
                return Err(TunnelError::TimedOut {
                    after: self.timeout,
                    message: process.last_words(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn command(&self, port: u16) -> Command {
        let config = &self.config;
        let mut command = Command::new(&config.program);
        command.args(["-N", "-T", "-n"]);
        for option in &config.options {
            command.arg("-o").arg(option);
        }
        for option in self.own_options() {
            command.arg("-o").arg(option);
        }
        if let Some(keyfile) = &config.keyfile {
            command.arg("-i").arg(keyfile);
        }
        if let Some(user) = &config.host.user {
            command.arg("-l").arg(user);
        }
        if let Some(port) = config.host.port {
            command.arg("-p").arg(port.to_string());
        }
        let forward = format!("127.0.0.1:{port}:{}:{}", self.target, self.remote_port);
        command
            .arg("-L")
            .arg(forward)
            .arg("--")
            .arg(&config.host.host);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match (&config.password, &self.askpass) {
            (Some(secret), Some(helper)) => {
                command
                    .env("SSH_ASKPASS", &helper.script)
                    .env("SSH_ASKPASS_REQUIRE", "force")
                    .env(SECRET_VAR, secret.expose());
            }
            _ => {
                command.env_remove("SSH_ASKPASS").env_remove(SECRET_VAR);
            }
        }
        command
    }

    /// Non-interactive and quick to fail; the tunnel process is ours alone (no control
    /// master, no fork to the background, whatever ~/.ssh/config says).
    fn own_options(&self) -> Vec<String> {
        let connect = self.timeout.as_secs().clamp(1, 3600);
        let batch = if self.config.password.is_some() {
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
        if self.config.password.is_some() {
            // One try: a wrong password fails now, with ssh's "Permission denied".
            options.push("NumberOfPasswordPrompts=1".to_owned());
        }
        options
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `Key=Value` (or `Key Value`) with a plain option name, as `ssh -o` takes it.
fn is_option(text: &str) -> bool {
    let name = text.split(['=', ' ']).next().unwrap_or("");
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric())
        && text.len() > name.len() + 1
        && !text.contains(['\n', '\r'])
}

/// ssh's words when the local end of a forward cannot be bound.
fn is_port_taken(message: &str) -> bool {
    message.contains("Address already in use") || message.contains("cannot listen to port")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> Result<SshHost, SpecError> {
        text.parse()
    }

    fn ok(user: Option<&str>, h: &str, port: Option<u16>) -> Result<SshHost, SpecError> {
        Ok(SshHost {
            user: user.map(str::to_owned),
            host: h.to_owned(),
            port,
        })
    }

    #[test]
    fn specs_that_parse() {
        assert_eq!(host("example.org"), ok(None, "example.org", None));
        assert_eq!(host("pi@10.0.0.5"), ok(Some("pi"), "10.0.0.5", None));
        assert_eq!(
            host("pi@10.0.0.5:2222"),
            ok(Some("pi"), "10.0.0.5", Some(2222))
        );
        assert_eq!(host(" gateway:22 "), ok(None, "gateway", Some(22)));
        assert_eq!(host("me@[::1]:2200"), ok(Some("me"), "::1", Some(2200)));
        assert_eq!(host("[fe80::1%eth0]"), ok(None, "fe80::1%eth0", None));
        assert_eq!(host("::1"), ok(None, "::1", None));
        assert_eq!(
            host("a.b@c@jump_host"),
            ok(Some("a.b@c"), "jump_host", None)
        );
    }

    #[test]
    fn specs_that_do_not() {
        assert_eq!(host(""), Err(SpecError::Empty));
        assert_eq!(host("   "), Err(SpecError::Empty));
        assert_eq!(host("@host"), Err(SpecError::EmptyUser));
        assert_eq!(host("pi@"), Err(SpecError::EmptyHost));
        assert_eq!(host(":22"), Err(SpecError::EmptyHost));
        assert_eq!(host("pi@host:"), Err(SpecError::BadPort(String::new())));
        assert_eq!(host("host:0"), Err(SpecError::BadPort("0".into())));
        assert_eq!(host("host:65536"), Err(SpecError::BadPort("65536".into())));
        assert_eq!(host("host:ssh"), Err(SpecError::BadPort("ssh".into())));
        assert_eq!(
            host("-oProxyCommand=x"),
            Err(SpecError::BadHost("-oProxyCommand=x".into()))
        );
        assert_eq!(host("-l@host"), Err(SpecError::BadUser("-l".into())));
        assert_eq!(host("my host"), Err(SpecError::BadHost("my host".into())));
        assert_eq!(host("a:b:c"), Err(SpecError::BadPort("c".into())));
        assert_eq!(
            host("[nothex]:22"),
            Err(SpecError::BadHost("nothex".into()))
        );
        assert_eq!(host("[::1]22"), Err(SpecError::BadHost("[::1]22".into())));
        assert_eq!(host("pi@host/x"), Err(SpecError::BadHost("host/x".into())));
    }

    #[test]
    fn specs_print_back() {
        for text in ["pi@10.0.0.5:2222", "gateway", "me@[::1]:2200", "::1"] {
            assert_eq!(host(text).unwrap().to_string(), text);
        }
        let message = SpecError::BadPort("x".into()).to_string();
        assert_eq!(message, "'x' is not a port number (1-65535)");
    }

    #[test]
    fn clashes_like_vidgear() {
        let tcp = Protocol::Tcp;
        assert_eq!(check_tunnel_modes(Role::Sender, tcp, false, false), Ok(()));
        assert_eq!(
            check_tunnel_modes(Role::Receiver, tcp, false, false),
            Err(TunnelClash::Receiver)
        );
        assert_eq!(
            check_tunnel_modes(Role::Sender, tcp, true, false),
            Err(TunnelClash::MultiServer)
        );
        assert_eq!(
            check_tunnel_modes(Role::Sender, tcp, false, true),
            Err(TunnelClash::MultiClient)
        );
        assert_eq!(
            check_tunnel_modes(Role::Sender, Protocol::Ipc, false, false),
            Err(TunnelClash::Ipc)
        );
        let text = TunnelClash::MultiClient.to_string();
        assert!(text.contains("multi-client=true"), "{text}");
    }

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

    #[test]
    fn secrets_stay_hidden() {
        let mut config = TunnelConfig::new(host("u@h").unwrap());
        config.password = Some(Secret::new("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn command_line_without_password() {
        let mut config = TunnelConfig::new(host("u@h:2022").unwrap());
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
