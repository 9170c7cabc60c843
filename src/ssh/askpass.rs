// SPDX-License-Identifier: MPL-2.0
//! The `SSH_ASKPASS` helper that answers ssh's password prompt from ssh's environment, so
//! the password is never in a file or on a command line.

use super::error::TunnelError;
use super::secret::Secret;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable the askpass helper reads the password from.
const SECRET_VAR: &str = "NETGEAR_SSH_SECRET";

/// Prints the secret for password and passphrase prompts only: anything else (a host key
/// confirmation) is refused, as BatchMode would. `printf` is a shell builtin, so the
/// password is never in a command line.
const ASKPASS_SCRIPT: &str = "#!/bin/sh\n\
case \"$1\" in\n\
  *[Pp]assword*|*[Pp]assphrase*) printf '%s\\n' \"$NETGEAR_SSH_SECRET\" ;;\n\
  *) exit 1 ;;\n\
esac\n";

/// A private (0700) directory holding the askpass helper, removed on drop.
pub(super) struct AskpassHelper {
    dir: PathBuf,
    script: PathBuf,
}

impl AskpassHelper {
    /// In `$XDG_RUNTIME_DIR` when there is one (private, rarely mounted noexec), else the
    /// temporary directory.
    pub(super) fn create() -> Result<AskpassHelper, TunnelError> {
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

    /// Makes `command`'s prompts go to this helper, which answers them with `secret`.
    pub(super) fn answer_prompts(&self, command: &mut Command, secret: &Secret) {
        command
            .env("SSH_ASKPASS", &self.script)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env(SECRET_VAR, secret.expose());
    }
}

/// Keeps `command` from any askpass helper, ours or one set in our environment.
pub(super) fn no_prompts(command: &mut Command) {
    command.env_remove("SSH_ASKPASS").env_remove(SECRET_VAR);
}

impl Drop for AskpassHelper {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
        let _ = std::fs::remove_dir(&self.dir);
    }
}
