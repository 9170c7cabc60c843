// SPDX-License-Identifier: MPL-2.0
//! One running `ssh`: spawned so that it dies with our process, its stderr followed, and
//! stopped and reaped so that none is left behind.

use super::error::TunnelError;
use super::stderr_log::{read_stderr, StderrLog};
use crate::sync::lock;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The thread ssh was spawned from, and the sender whose drop ends it.
type Keeper = (mpsc::Sender<()>, JoinHandle<()>);

/// One running `ssh`. A keeper thread spawns it and lives as long as it does: the child
/// asks the kernel for SIGTERM when that thread ends, which happens when the process dies
/// (a thread that ends early would take ssh with it, hence a thread of our own).
pub(super) struct SshProcess {
    child: Child,
    keeper: Option<Keeper>,
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

/// Spawns `command` from a keeper thread that then waits for its sender to be dropped.
fn spawn_from_keeper(mut command: Command, program: &Path) -> Result<(Child, Keeper), TunnelError> {
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
    match child_rx.recv() {
        Ok(Ok(child)) => Ok((child, (stop_tx, keeper))),
        Ok(Err(e)) => Err(spawn_error(e)),
        Err(_) => Err(spawn_error(io::Error::other("the ssh thread died"))),
    }
}

/// Starts the thread that reads the child's stderr into a log; the receiver hears when
/// that thread has seen the end of it.
fn follow_stderr(
    child: &mut Child,
) -> Result<(Arc<Mutex<StderrLog>>, mpsc::Receiver<()>), TunnelError> {
    let log = Arc::new(Mutex::new(StderrLog::default()));
    let (done_tx, stderr_done) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        let log = log.clone();
        std::thread::Builder::new()
            .name("netgear-ssh-log".into())
            .spawn(move || read_stderr(stderr, log, done_tx))
            .map_err(TunnelError::Local)?;
    }
    Ok((log, stderr_done))
}

impl SshProcess {
    pub(super) fn spawn(mut command: Command, program: &Path) -> Result<SshProcess, TunnelError> {
        bind_to_parent(&mut command);
        let (mut child, keeper) = spawn_from_keeper(command, program)?;
        let (log, stderr_done) = follow_stderr(&mut child)?;
        Ok(SshProcess {
            child,
            keeper: Some(keeper),
            log,
            stderr_done,
            status: None,
        })
    }

    /// The exit status once ssh has ended (reaped), `None` while it runs.
    pub(super) fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// ssh's last lines, after giving the reader a moment to see the end of stderr.
    pub(super) fn last_words(&self) -> String {
        let _ = self.stderr_done.recv_timeout(Duration::from_millis(500));
        lock(&self.log).summary()
    }

    /// What ssh has printed since the last call.
    pub(super) fn messages(&self) -> Vec<String> {
        lock(&self.log).take_pending()
    }

    /// SIGTERM (ssh closes its connection), SIGKILL if it lingers, then reap.
    pub(super) fn stop(&mut self) {
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
