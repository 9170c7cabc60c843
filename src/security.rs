//! Secure mode: ZeroMQ CURVE with vidgear's key files, and the ZAP handler that decides
//! which clients a receiver accepts (rust-zmq has no authenticator of its own).
//!
//! Key layout, as vidgear's `generate_auth_certificates` makes it:
//! `DIR/.vidgear/keys/public_keys/{server,client}.key` and
//! `DIR/.vidgear/keys/private_keys/{server,client}.key_secret`, in ZeroMQ's certificate
//! text format with Z85 keys. Secret keys never appear in logs or errors: only paths do.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A CURVE key in binary form.
pub type Key = [u8; 32];

/// Where libzmq looks for the ZAP handler of a context (RFC 27).
const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";

/// The key directories under a `cert-dir` (empty: `$HOME`), as vidgear lays them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDirs {
    pub public: PathBuf,
    pub private: PathBuf,
}

impl KeyDirs {
    pub fn new(cert_dir: &str) -> Result<KeyDirs, String> {
        let base = if cert_dir.is_empty() {
            PathBuf::from(std::env::var_os("HOME").ok_or("cert-dir is empty and $HOME is not set")?)
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

    fn files(&self) -> [PathBuf; 4] {
        [
            self.public.join("server.key"),
            self.public.join("client.key"),
            self.private.join("server.key_secret"),
            self.private.join("client.key_secret"),
        ]
    }

    /// Whether the four key files are there. As in vidgear, a missing file makes a new set;
    /// a file that is there but unreadable is an error (naming it) when it is loaded, never
    /// silently replaced.
    pub fn complete(&self) -> bool {
        self.files().iter().all(|f| f.is_file())
    }

    /// Makes a fresh, matching server and client key set (replacing what is there).
    pub fn generate(&self) -> Result<(), String> {
        for dir in [&self.public, &self.private] {
            fs::create_dir_all(dir)
                .map_err(|e| format!("could not create {}: {e}", dir.display()))?;
        }
        fs::set_permissions(&self.private, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("could not restrict {}: {e}", self.private.display()))?;
        for name in ["server", "client"] {
            let pair = zmq::CurveKeyPair::new()
                .map_err(|e| format!("could not make a CURVE key pair: {e}"))?;
            let public = z85(&pair.public_key)?;
            let secret = z85(&pair.secret_key)?;
            write_certificate(&self.public.join(format!("{name}.key")), &public, None)?;
            write_certificate(
                &self.private.join(format!("{name}.key_secret")),
                &public,
                Some(&secret),
            )?;
        }
        Ok(())
    }

    /// Generates the set unless it is complete (or `overwrite`); says whether it did.
    pub fn ensure(&self, overwrite: bool) -> Result<bool, String> {
        if !overwrite && self.complete() {
            return Ok(false);
        }
        self.generate()?;
        Ok(true)
    }

    /// Keys of the receiver (the CURVE server).
    pub fn server_keys(&self) -> Result<CurveKeys, String> {
        let (public, secret) = read_secret(&self.private.join("server.key_secret"))?;
        Ok(CurveKeys::Server { public, secret })
    }

    /// Keys of the sender (a CURVE client): its own pair and the server's public key.
    pub fn client_keys(&self) -> Result<CurveKeys, String> {
        let (public, secret) = read_secret(&self.private.join("client.key_secret"))?;
        let server = read_public(&self.public.join("server.key"))?;
        Ok(CurveKeys::Client {
            public,
            secret,
            server,
        })
    }

    /// The client keys IronHouse accepts: every certificate in `public_keys/` (as pyzmq's
    /// authenticator loads them for vidgear).
    pub fn allowed_clients(&self) -> Result<HashSet<Key>, String> {
        let entries = fs::read_dir(&self.public)
            .map_err(|e| format!("could not read {}: {e}", self.public.display()))?;
        let mut keys = HashSet::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "key") {
                keys.insert(read_public(&path)?);
            }
        }
        Ok(keys)
    }
}

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

impl CurveKeys {
    /// Applies the keys to a socket before it binds or connects.
    pub fn apply(&self, socket: &zmq::Socket) -> zmq::Result<()> {
        match self {
            CurveKeys::Server { public, secret } => {
                socket.set_curve_server(true)?;
                socket.set_curve_publickey(public)?;
                socket.set_curve_secretkey(secret)
            }
            CurveKeys::Client {
                public,
                secret,
                server,
            } => {
                socket.set_curve_serverkey(server)?;
                socket.set_curve_publickey(public)?;
                socket.set_curve_secretkey(secret)
            }
        }
    }
}

fn z85(key: &[u8]) -> Result<String, String> {
    zmq::z85_encode(key).map_err(|e| format!("could not encode a key: {e}"))
}

fn key_from_z85(text: &str, path: &Path) -> Result<Key, String> {
    let bad = || format!("{} holds no valid Z85 CURVE key", path.display());
    if text.len() != 40 {
        return Err(bad());
    }
    let bytes = zmq::z85_decode(text).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// Reads the keys of a ZeroMQ certificate file: `(public, secret)`.
fn read_certificate(path: &Path) -> Result<(Option<Key>, Option<Key>), String> {
    let text = fs::read_to_string(path)
        .map_err(|e| format!("could not read key file {}: {e}", path.display()))?;
    let mut public = None;
    let mut secret = None;
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = value
            .trim()
            .trim_matches(|c| c == '"' || c == '\'' || c == ' ' || c == '\t');
        match name.trim() {
            "public-key" => public = Some(key_from_z85(value, path)?),
            "secret-key" => secret = Some(key_from_z85(value, path)?),
            _ => {}
        }
    }
    Ok((public, secret))
}

fn read_public(path: &Path) -> Result<Key, String> {
    read_certificate(path)?
        .0
        .ok_or_else(|| format!("{} has no public-key", path.display()))
}

fn read_secret(path: &Path) -> Result<(Key, Key), String> {
    match read_certificate(path)? {
        (Some(public), Some(secret)) => Ok((public, secret)),
        _ => Err(format!(
            "{} lacks its public-key or secret-key",
            path.display()
        )),
    }
}

/// Writes a certificate in the format pyzmq writes (and reads); secrets with mode 0600.
fn write_certificate(path: &Path, public: &str, secret: Option<&str>) -> Result<(), String> {
    let banner = if secret.is_some() {
        "#   ZeroMQ CURVE **Secret** Certificate\n#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
    } else {
        "#   ZeroMQ CURVE Public Certificate\n#   Exchange securely, or use a secure mechanism to verify the contents\n#   of this file after exchange.\n\n"
    };
    let mut text = format!("#   ****  Generated by gst-plugin-netgear  ****\n{banner}metadata\ncurve\n    public-key = \"{public}\"\n");
    if let Some(s) = secret {
        text.push_str(&format!("    secret-key = \"{s}\"\n"));
    }
    let mode = if secret.is_some() { 0o600 } else { 0o644 };
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("could not write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("could not write {}: {e}", path.display()))
}

/// Which clients a receiver lets in.
#[derive(Debug, Clone)]
pub enum ClientPolicy {
    /// StoneHouse: any client that knows the server's public key.
    AnyKey,
    /// IronHouse: only these client public keys.
    Listed(HashSet<Key>),
}

impl ClientPolicy {
    fn allows(&self, key: &[u8]) -> bool {
        match self {
            ClientPolicy::AnyKey => key.len() == 32,
            ClientPolicy::Listed(keys) => <&Key>::try_from(key).is_ok_and(|k| keys.contains(k)),
        }
    }
}

/// Called with the peer's address when a client is refused.
pub type OnRefused = Box<dyn Fn(&str) + Send>;

/// Answers libzmq's authentication requests for one context from a thread of its own.
/// Started before the CURVE socket binds; stopped (and joined) when dropped.
pub struct ZapHandler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ZapHandler {
    pub fn start(
        context: &zmq::Context,
        policy: ClientPolicy,
        on_refused: OnRefused,
    ) -> Result<ZapHandler, String> {
        let socket = context
            .socket(zmq::REP)
            .map_err(|e| format!("could not create the authentication socket: {e}"))?;
        socket
            .bind(ZAP_ENDPOINT)
            .map_err(|e| format!("could not start the authentication handler: {e}"))?;
        let _ = socket.set_linger(0);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("netgear-zap".into())
            .spawn(move || serve(socket, policy, on_refused, stopping))
            .map_err(|e| format!("could not start the authentication thread: {e}"))?;
        Ok(ZapHandler {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ZapHandler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How often the handler looks at its stop flag while idle.
const ZAP_POLL_MS: i64 = 50;

fn serve(socket: zmq::Socket, policy: ClientPolicy, on_refused: OnRefused, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match socket.poll(zmq::POLLIN, ZAP_POLL_MS) {
            Ok(0) | Err(zmq::Error::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        let Ok(request) = socket.recv_multipart(zmq::DONTWAIT) else {
            continue;
        };
        let reply = answer(&request, &policy, &on_refused);
        let _ = socket.send_multipart(reply, 0);
    }
}

/// Builds the ZAP reply to one request (RFC 27): version, request id, status, text, user, metadata.
fn answer(request: &[Vec<u8>], policy: &ClientPolicy, on_refused: &OnRefused) -> Vec<Vec<u8>> {
    let request_id = request.get(1).cloned().unwrap_or_default();
    let address = request
        .get(3)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .unwrap_or_default();
    let mechanism = request.get(5).map(Vec::as_slice).unwrap_or_default();
    let (code, text): (&[u8], &[u8]) = if request.first().map(Vec::as_slice) != Some(b"1.0") {
        (b"500", b"bad ZAP version")
    } else if mechanism != b"CURVE" {
        (b"400", b"CURVE required")
    } else if request.get(6).is_some_and(|key| policy.allows(key)) {
        (b"200", b"OK")
    } else {
        (b"400", b"client key not allowed")
    };
    if code != b"200" {
        on_refused(&address);
    }
    vec![
        b"1.0".to_vec(),
        request_id,
        code.to_vec(),
        text.to_vec(),
        Vec::new(),
        Vec::new(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("netgear-security-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
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

    #[test]
    fn generated_keys_read_back_with_private_modes() {
        let dir = temp("gen");
        let dirs = KeyDirs::new(dir.to_str().unwrap()).unwrap();
        assert!(!dirs.complete());
        assert!(dirs.ensure(false).unwrap());
        assert!(dirs.complete());
        assert!(!dirs.ensure(false).unwrap(), "a complete set is kept");
        let secret = dirs.private.join("server.key_secret");
        assert_eq!(
            fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (CurveKeys::Server { public, .. }, CurveKeys::Client { server, .. }) =
            (dirs.server_keys().unwrap(), dirs.client_keys().unwrap())
        else {
            panic!("wrong roles")
        };
        assert_eq!(public, server, "the client knows the server's public key");
        assert_eq!(dirs.allowed_clients().unwrap().len(), 2);
        // An incomplete set is made whole again.
        fs::remove_file(dirs.public.join("client.key")).unwrap();
        assert!(!dirs.complete());
        assert!(dirs.ensure(false).unwrap());
        assert!(dirs.complete());
    }

    #[test]
    fn reads_pyzmq_certificates_and_rejects_bad_ones() {
        let dir = temp("read");
        let path = dir.join("server.key_secret");
        fs::write(
            &path,
            "#   ****  Generated on 2024-01-01 by pyzmq  ****\n#   ZeroMQ CURVE **Secret** Certificate\n\nmetadata\ncurve\n    public-key = \"Z0XTG!:9*W}-$dBe74qU0-FMwFOiyM30XyP*^y#x\"\n    secret-key = \"ZxmX2d<e3muNds#Pj2K8&<J@n/O2<=wLz091m!uu\"\n",
        )
        .unwrap();
        let (public, secret) = read_secret(&path).unwrap();
        assert_eq!(
            z85(&public).unwrap(),
            "Z0XTG!:9*W}-$dBe74qU0-FMwFOiyM30XyP*^y#x"
        );
        assert_eq!(
            z85(&secret).unwrap(),
            "ZxmX2d<e3muNds#Pj2K8&<J@n/O2<=wLz091m!uu"
        );
        fs::write(&path, "curve\n    public-key = \"short\"\n").unwrap();
        let err = read_secret(&path).unwrap_err();
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(!err.contains("short"), "key text must not leak into errors");
        let missing = read_public(&dir.join("nope.key")).unwrap_err();
        assert!(missing.contains("nope.key"), "{missing}");
        assert_eq!(
            format!("{:?}", CurveKeys::Server { public, secret }),
            "CurveKeys::Server"
        );
    }

    #[test]
    fn zap_answers_follow_the_policy() {
        let refused = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = refused.clone();
        let on_refused: OnRefused = Box::new(move |a| log.lock().unwrap().push(a.to_owned()));
        let listed = [7u8; 32];
        let request = |key: &[u8]| {
            vec![
                b"1.0".to_vec(),
                b"id".to_vec(),
                Vec::new(),
                b"10.0.0.9".to_vec(),
                Vec::new(),
                b"CURVE".to_vec(),
                key.to_vec(),
            ]
        };
        let iron = ClientPolicy::Listed([listed].into_iter().collect());
        assert_eq!(answer(&request(&listed), &iron, &on_refused)[2], b"200");
        assert_eq!(answer(&request(&[8u8; 32]), &iron, &on_refused)[2], b"400");
        assert_eq!(
            answer(&request(&[8u8; 32]), &ClientPolicy::AnyKey, &on_refused)[2],
            b"200"
        );
        assert_eq!(
            answer(&[b"2.0".to_vec()], &ClientPolicy::AnyKey, &on_refused)[2],
            b"500"
        );
        assert_eq!(refused.lock().unwrap().as_slice(), ["10.0.0.9", ""]);
    }
}
