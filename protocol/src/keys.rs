// SPDX-License-Identifier: MPL-2.0
//! vidgear's CURVE key files: layout, atomic generation, strict validation.
//!
//! Key layout, as vidgear's `generate_auth_certificates` makes it:
//! `DIR/.vidgear/keys/public_keys/{server,client}.key` and
//! `DIR/.vidgear/keys/private_keys/{server,client}.key_secret`, in ZeroMQ's certificate
//! text format with Z85 keys. Secret keys never appear in logs or errors: only paths do.
//!
//! Rules: a key directory with none of the four files gets a fresh set; a complete set is
//! loaded and every file must be a valid certificate; anything in between is an error
//! naming what is missing (never a silent regeneration, which would lock out remote peers).
//! Generation and loading hold an exclusive lock on the `keys` directory, and each file is
//! written under a temporary name and renamed, so elements starting together share one set.

pub mod z85;

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;
use z85::Z85Error;

/// A CURVE key in binary form.
pub type Key = [u8; 32];

/// The CURVE options of a socket.
#[derive(Clone, PartialEq, Eq)]
pub enum CurveKeys {
    Server {
        public: Key,
        secret: Key,
    },
    Client {
        public: Key,
        secret: Key,
        server: Key,
    },
}

impl std::fmt::Debug for CurveKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        match self {
            CurveKeys::Server { .. } => f.write_str("CurveKeys::Server"),
            CurveKeys::Client { .. } => f.write_str("CurveKeys::Client"),
        }
    }
}

/// Real certificates are ~300 bytes; anything far larger is not one.
pub const MAX_KEY_FILE_BYTES: u64 = 8192;

/// Why one key file is not a valid certificate.
#[derive(Debug, Error)]
pub enum FileProblem {
    #[error("is a dangling symbolic link")]
    DanglingLink,
    #[error("is a symbolic link loop")]
    LinkLoop,
    #[error("is a {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is larger than {MAX_KEY_FILE_BYTES} bytes")]
    TooLarge,
    #[error("could not be read: {0}")]
    Read(#[source] io::Error),
    #[error("has a second {field} line (line {line})")]
    Duplicate { field: &'static str, line: usize },
    #[error("has no {0} line")]
    Missing(&'static str),
    #[error("has an invalid {field} on line {line}: it {error}")]
    BadKey {
        field: &'static str,
        line: usize,
        error: Z85Error,
    },
    #[error("has a secret-key that does not belong to its public-key")]
    SecretMismatch,
    #[error("is a public certificate but holds a secret-key")]
    UnexpectedSecret,
}

/// Why the key set could not be made or loaded. Paths only: never key material.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cert-dir is empty and $HOME is not set")]
    NoHome,
    #[error("could not create {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("could not lock {}: {source}", path.display())]
    Lock { path: PathBuf, source: io::Error },
    #[error(
        "the key set under {} is incomplete ({} missing); restore it, or set \
         overwrite-cert=true to make a new set (remote peers then need the new keys)",
        dir.display(), file_names(missing)
    )]
    Incomplete { dir: PathBuf, missing: Vec<PathBuf> },
    #[error("key file {}: {problem}", path.display())]
    File {
        path: PathBuf,
        #[source]
        problem: FileProblem,
    },
    #[error(
        "key file {}: its public key is not the one in {} (was the secret replaced?)",
        secret.display(), public.display()
    )]
    PairMismatch { secret: PathBuf, public: PathBuf },
    #[error("could not make a CURVE key pair: {0}")]
    Generate(#[source] zmq::Error),
    #[error("could not write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("could not list {}: {source}", path.display())]
    List { path: PathBuf, source: io::Error },
}

/// Something to tell the user that does not stop start.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyWarning {
    #[error(
        "secret key file {} is readable by group or others (mode {mode:03o}); chmod 600 it",
        path.display()
    )]
    ReadableSecret { path: PathBuf, mode: u32 },
}

fn file_names(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// The key directories under a `cert-dir` (empty: `$HOME`), as vidgear lays them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDirs {
    pub public: PathBuf,
    pub private: PathBuf,
}

impl KeyDirs {
    pub fn new(cert_dir: &str) -> Result<KeyDirs, KeyError> {
        let base = if cert_dir.is_empty() {
            PathBuf::from(std::env::var_os("HOME").ok_or(KeyError::NoHome)?)
        } else {
            PathBuf::from(cert_dir)
        };
        // A path that already ends in .vidgear gets no second one.
        let vidgear = if base.file_name().is_some_and(|n| n == ".vidgear") {
            base
        } else {
            base.join(".vidgear")
        };
        let keys = vidgear.join("keys");
        Ok(KeyDirs {
            public: keys.join("public_keys"),
            private: keys.join("private_keys"),
        })
    }

    fn keys_dir(&self) -> &Path {
        self.public.parent().unwrap_or(&self.public)
    }

    fn server_public(&self) -> PathBuf {
        self.public.join("server.key")
    }

    fn client_public(&self) -> PathBuf {
        self.public.join("client.key")
    }

    fn server_secret(&self) -> PathBuf {
        self.private.join("server.key_secret")
    }

    fn client_secret(&self) -> PathBuf {
        self.private.join("client.key_secret")
    }

    fn files(&self) -> [PathBuf; 4] {
        [
            self.server_public(),
            self.client_public(),
            self.server_secret(),
            self.client_secret(),
        ]
    }

    /// Whether all four key files are there (as directory entries, valid or not).
    pub fn complete(&self) -> bool {
        self.files().iter().all(|f| entry_exists(f))
    }

    /// Makes a fresh, matching server and client key set, replacing what is there.
    pub fn generate(&self) -> Result<(), KeyError> {
        self.create_dirs()?;
        let _lock = self.lock()?;
        self.write_set()
    }

    /// Loads the set, making one first if none of its files exist (or `overwrite`).
    /// A partial set, or any invalid file of the set, is an error naming the files.
    pub fn load(&self, overwrite: bool) -> Result<KeySet, KeyError> {
        self.create_dirs()?;
        let _lock = self.lock()?;
        let missing: Vec<PathBuf> = self
            .files()
            .into_iter()
            .filter(|f| !entry_exists(f))
            .collect();
        let generated = overwrite || missing.len() == 4;
        if generated {
            self.write_set()?;
        } else if !missing.is_empty() {
            return Err(KeyError::Incomplete {
                dir: self.keys_dir().to_owned(),
                missing,
            });
        }
        let mut set = self.read_set()?;
        set.generated = generated;
        Ok(set)
    }

    fn create_dirs(&self) -> Result<(), KeyError> {
        for dir in [&self.public, &self.private] {
            fs::create_dir_all(dir).map_err(|source| KeyError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// An exclusive lock on the `keys` directory, held until the file is dropped.
    fn lock(&self) -> Result<fs::File, KeyError> {
        let path = self.keys_dir().to_owned();
        let locked = fs::File::open(&path).and_then(|dir| dir.lock().map(|()| dir));
        locked.map_err(|source| KeyError::Lock { path, source })
    }

    fn write_set(&self) -> Result<(), KeyError> {
        fs::set_permissions(&self.private, fs::Permissions::from_mode(0o700)).map_err(
            |source| KeyError::Write {
                path: self.private.clone(),
                source,
            },
        )?;
        for (public_path, secret_path) in [
            (self.server_public(), self.server_secret()),
            (self.client_public(), self.client_secret()),
        ] {
            let pair = zmq::CurveKeyPair::new().map_err(KeyError::Generate)?;
            let public = z85::encode_key(&pair.public_key);
            let secret = z85::encode_key(&pair.secret_key);
            write_atomic(&public_path, &certificate_text(&public, None), 0o644)?;
            write_atomic(
                &secret_path,
                &certificate_text(&public, Some(&secret)),
                0o600,
            )?;
        }
        Ok(())
    }

    fn read_set(&self) -> Result<KeySet, KeyError> {
        let server = read_secret(&self.server_secret())?;
        let client = read_secret(&self.client_secret())?;
        let server_public = read_public(&self.server_public())?;
        let client_public = read_public(&self.client_public())?;
        let warnings = [self.server_secret(), self.client_secret()]
            .iter()
            .filter_map(|p| readable_secret_warning(p))
            .collect();
        Ok(KeySet {
            dirs: self.clone(),
            server,
            client,
            server_public,
            client_public,
            generated: false,
            warnings,
        })
    }
}

/// A loaded, validated key set.
pub struct KeySet {
    dirs: KeyDirs,
    server: (Key, Key),
    client: (Key, Key),
    server_public: Key,
    client_public: Key,
    /// This load made the set.
    pub generated: bool,
    /// Problems that do not stop start (e.g. secret files readable by others).
    pub warnings: Vec<KeyWarning>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("KeySet")
            .field("dirs", &self.dirs)
            .field("generated", &self.generated)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// Keys of the receiver (the CURVE server). Its secret must belong to the public key
    /// senders are given (`public_keys/server.key`).
    pub fn server_keys(&self) -> Result<CurveKeys, KeyError> {
        let (public, secret) = self.server;
        if public != self.server_public {
            return Err(KeyError::PairMismatch {
                secret: self.dirs.server_secret(),
                public: self.dirs.server_public(),
            });
        }
        Ok(CurveKeys::Server { public, secret })
    }

    /// Keys of the sender (a CURVE client): its own pair and the server's public key.
    pub fn client_keys(&self) -> Result<CurveKeys, KeyError> {
        let (public, secret) = self.client;
        if public != self.client_public {
            return Err(KeyError::PairMismatch {
                secret: self.dirs.client_secret(),
                public: self.dirs.client_public(),
            });
        }
        Ok(CurveKeys::Client {
            public,
            secret,
            server: self.server_public,
        })
    }

    /// The client keys IronHouse accepts: every `*.key` certificate in `public_keys/`
    /// (as pyzmq's authenticator loads them for vidgear); an invalid one is an error.
    pub fn allowed_clients(&self) -> Result<HashSet<Key>, KeyError> {
        let dir = &self.dirs.public;
        let list = |source| KeyError::List {
            path: dir.clone(),
            source,
        };
        let mut keys = HashSet::new();
        for entry in fs::read_dir(dir).map_err(list)? {
            let path = entry.map_err(list)?.path();
            if path.extension().is_some_and(|e| e == "key") {
                keys.insert(read_public(&path)?);
            }
        }
        Ok(keys)
    }
}

/// A directory entry is there, whatever it is (a dangling link counts: it is an error
/// to report, not a reason to make new keys).
fn entry_exists(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes the file under a temporary name in the same directory, then renames it, so a
/// reader sees the old file or the new one, never a part.
fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<(), KeyError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    written.map_err(|source| {
        let _ = fs::remove_file(&temp);
        KeyError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// A certificate in the format pyzmq writes (and reads).
fn certificate_text(public: &str, secret: Option<&str>) -> String {
    let banner = if secret.is_some() {
        "#   ZeroMQ CURVE **Secret** Certificate\n#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
    } else {
        "#   ZeroMQ CURVE Public Certificate\n#   Exchange securely, or use a secure mechanism to verify the contents\n#   of this file after exchange.\n\n"
    };
    let mut text = format!("#   ****  Generated by gst-plugin-netgear  ****\n{banner}metadata\ncurve\n    public-key = \"{public}\"\n");
    if let Some(s) = secret {
        text.push_str(&format!("    secret-key = \"{s}\"\n"));
    }
    text
}

fn file_error(path: &Path, problem: FileProblem) -> KeyError {
    KeyError::File {
        path: path.to_owned(),
        problem,
    }
}

fn type_name(file_type: fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

fn open_problem(path: &Path, error: io::Error) -> FileProblem {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if error.raw_os_error() == Some(libc::ELOOP) {
        FileProblem::LinkLoop
    } else if is_link && error.kind() == io::ErrorKind::NotFound {
        FileProblem::DanglingLink
    } else {
        FileProblem::Read(error)
    }
}

/// Reads a key file: regular files only (a symlink to one is followed), never more than
/// `MAX_KEY_FILE_BYTES`, and never blocking (a FIFO is refused, not opened for a writer).
pub fn read_key_file(path: &Path) -> Result<Vec<u8>, FileProblem> {
    let not_regular = |m: &fs::Metadata| (!m.is_file()).then(|| type_name(m.file_type()));
    let meta = fs::metadata(path).map_err(|e| open_problem(path, e))?;
    if let Some(kind) = not_regular(&meta) {
        return Err(FileProblem::NotRegular(kind));
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| open_problem(path, e))?;
    // The entry may have changed between the check and the open: check what was opened.
    let meta = file.metadata().map_err(FileProblem::Read)?;
    if let Some(kind) = not_regular(&meta) {
        return Err(FileProblem::NotRegular(kind));
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(FileProblem::Read)?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(FileProblem::TooLarge);
    }
    Ok(bytes)
}

/// The keys of one certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    pub public: Key,
    pub secret: Option<Key>,
}

/// Parses a ZeroMQ certificate as pyzmq reads it (`name = "Z85"` lines, `#` comments),
/// but strictly: each key once, valid Z85 of 40 characters, a secret matching its public.
pub fn parse_certificate(bytes: &[u8]) -> Result<Certificate, FileProblem> {
    let text = String::from_utf8_lossy(bytes);
    let mut public = None;
    let mut secret = None;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        let Some((name, value)) = line.split_once('=').filter(|_| !line.starts_with('#')) else {
            continue;
        };
        let (slot, field) = match name.trim() {
            "public-key" => (&mut public, "public-key"),
            "secret-key" => (&mut secret, "secret-key"),
            _ => continue,
        };
        if slot.is_some() {
            return Err(FileProblem::Duplicate {
                field,
                line: index + 1,
            });
        }
        let value = value.trim_matches(|c| matches!(c, ' ' | '\t' | '"' | '\''));
        let key = z85::decode_key(value).map_err(|error| FileProblem::BadKey {
            field,
            line: index + 1,
            error,
        })?;
        *slot = Some(key);
    }
    let public = public.ok_or(FileProblem::Missing("public-key"))?;
    if let Some(secret) = &secret {
        if public_of(secret).is_some_and(|derived| derived != public) {
            return Err(FileProblem::SecretMismatch);
        }
    }
    Ok(Certificate { public, secret })
}

fn read_certificate(path: &Path) -> Result<Certificate, KeyError> {
    read_key_file(path)
        .and_then(|bytes| parse_certificate(&bytes))
        .map_err(|problem| file_error(path, problem))
}

fn read_public(path: &Path) -> Result<Key, KeyError> {
    let cert = read_certificate(path)?;
    if cert.secret.is_some() {
        return Err(file_error(path, FileProblem::UnexpectedSecret));
    }
    Ok(cert.public)
}

/// `(public, secret)` of a secret certificate.
fn read_secret(path: &Path) -> Result<(Key, Key), KeyError> {
    let cert = read_certificate(path)?;
    let secret = cert
        .secret
        .ok_or_else(|| file_error(path, FileProblem::Missing("secret-key")))?;
    Ok((cert.public, secret))
}

fn readable_secret_warning(path: &Path) -> Option<KeyWarning> {
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| KeyWarning::ReadableSecret {
        path: path.to_owned(),
        mode,
    })
}

extern "C" {
    // In libzmq (≥ 4.2, linked through zmq-sys), which does not re-export it.
    fn zmq_curve_public(
        z85_public_key: *mut std::os::raw::c_char,
        z85_secret_key: *const std::os::raw::c_char,
    ) -> std::os::raw::c_int;
}

/// The public key that belongs to a secret key (`None` if libzmq cannot tell, e.g.
/// built without CURVE).
pub fn public_of(secret: &Key) -> Option<Key> {
    let secret_text = std::ffi::CString::new(z85::encode_key(secret)).ok()?;
    let mut out = [0 as std::os::raw::c_char; 41];
    // SAFETY: libzmq reads the 40 Z85 characters of the NUL-terminated secret and writes
    // 40 characters and a NUL into the 41-byte buffer.
    let rc = unsafe { zmq_curve_public(out.as_mut_ptr(), secret_text.as_ptr()) };
    if rc != 0 {
        return None;
    }
    let text: String = out[..40].iter().map(|c| *c as u8 as char).collect();
    z85::decode_key(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn wrapped_io_and_zmq_errors_stay_reachable_as_sources() {
        let generate = KeyError::Generate(zmq::Error::EMFILE);
        let zmq = generate
            .source()
            .and_then(|s| s.downcast_ref::<zmq::Error>());
        assert_eq!(zmq, Some(&zmq::Error::EMFILE));

        let denied = || io::Error::from(io::ErrorKind::PermissionDenied);
        let read = KeyError::File {
            path: "/keys/server.key_secret".into(),
            problem: FileProblem::Read(denied()),
        };
        let problem = read.source().expect("the file's problem");
        let io = problem.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(
            io.map(io::Error::kind),
            Some(io::ErrorKind::PermissionDenied)
        );

        let create = KeyError::CreateDir {
            path: "/keys".into(),
            source: denied(),
        };
        let io = create.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(
            io.map(io::Error::kind),
            Some(io::ErrorKind::PermissionDenied)
        );
        // The texts still say it all themselves.
        assert!(
            read.to_string()
                .ends_with("could not be read: permission denied"),
            "{read}"
        );
    }

    #[test]
    fn key_dirs_follow_vidgear() {
        let dirs = KeyDirs::new("/data/certs").unwrap();
        assert_eq!(
            dirs.public,
            PathBuf::from("/data/certs/.vidgear/keys/public_keys")
        );
        assert_eq!(
            dirs.private,
            PathBuf::from("/data/certs/.vidgear/keys/private_keys")
        );
        let dirs = KeyDirs::new("/data/certs/.vidgear").unwrap();
        assert_eq!(
            dirs.public,
            PathBuf::from("/data/certs/.vidgear/keys/public_keys")
        );
    }
}
