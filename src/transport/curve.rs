// SPDX-License-Identifier: MPL-2.0
//! CURVE on ZeroMQ sockets: a key set applied to a socket, and the ZAP handler that
//! decides which clients a receiver accepts (rust-zmq has no authenticator of its own).
//! The key files themselves are read and written by `netgear_protocol::keys`.

use netgear_protocol::addresses::AllowedAddresses;
use netgear_protocol::keys::{CurveKeys, Key};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Where libzmq looks for the ZAP handler of a context (RFC 27).
const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";

/// Applies the keys to a socket before it binds or connects.
pub fn apply_keys(keys: &CurveKeys, socket: &zmq::Socket) -> zmq::Result<()> {
    match keys {
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

/// Which client keys a receiver accepts.
#[derive(Debug, Clone)]
pub enum KeyRule {
    /// StoneHouse: any client that knows the server's public key.
    AnyKey,
    /// IronHouse: only these client public keys.
    Listed(HashSet<Key>),
}

impl KeyRule {
    fn allows(&self, key: &[u8]) -> bool {
        match self {
            KeyRule::AnyKey => key.len() == 32,
            KeyRule::Listed(keys) => <&Key>::try_from(key).is_ok_and(|k| keys.contains(k)),
        }
    }
}

/// Which clients a receiver lets in: by address first, then by key.
#[derive(Debug, Clone)]
pub struct ClientPolicy {
    pub keys: KeyRule,
    pub addresses: AllowedAddresses,
}

impl ClientPolicy {
    /// StoneHouse from any address.
    pub fn any_key() -> Self {
        ClientPolicy {
            keys: KeyRule::AnyKey,
            addresses: AllowedAddresses::any(),
        }
    }

    /// IronHouse with these client keys, from any address.
    pub fn listed(keys: HashSet<Key>) -> Self {
        ClientPolicy {
            keys: KeyRule::Listed(keys),
            addresses: AllowedAddresses::any(),
        }
    }

    /// The same policy, letting in only these addresses.
    pub fn with_addresses(self, addresses: AllowedAddresses) -> Self {
        ClientPolicy { addresses, ..self }
    }
}

/// Why the ZAP handler turned a client away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a ZAP 1.0 request.
    #[error("bad ZAP request")]
    BadRequest,
    /// The peer's address is not in the allow-list.
    #[error("address {0} is not in allowed-addresses")]
    Address(String),
    /// The client used another mechanism than CURVE (NULL or PLAIN).
    #[error("it used the {0} mechanism, not CURVE")]
    NotCurve(String),
    /// IronHouse: the client's key is not in `public_keys/`.
    #[error("its public key is not in public_keys/ (IronHouse)")]
    KeyNotListed,
    /// StoneHouse: no usable client key.
    #[error("it did not authenticate")]
    BadKey,
}

/// Called with the peer's address and the reason when a client is refused.
pub type OnRefused = Box<dyn Fn(&str, &Refusal) + Send>;

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

/// Decides one ZAP request: address first, then mechanism, then key.
fn decide(request: &[Vec<u8>], policy: &ClientPolicy, address: &str) -> Result<(), Refusal> {
    if request.first().map(Vec::as_slice) != Some(b"1.0") {
        return Err(Refusal::BadRequest);
    }
    if !policy.addresses.allows(address) {
        return Err(Refusal::Address(address.to_owned()));
    }
    let mechanism = request.get(5).map(Vec::as_slice).unwrap_or_default();
    if mechanism != b"CURVE" {
        return Err(Refusal::NotCurve(
            String::from_utf8_lossy(mechanism)
                .chars()
                .take(20)
                .collect(),
        ));
    }
    if request.get(6).is_some_and(|key| policy.keys.allows(key)) {
        Ok(())
    } else if matches!(policy.keys, KeyRule::Listed(_)) {
        Err(Refusal::KeyNotListed)
    } else {
        Err(Refusal::BadKey)
    }
}

/// Builds the ZAP reply to one request (RFC 27): version, request id, status, text, user, metadata.
fn answer(request: &[Vec<u8>], policy: &ClientPolicy, on_refused: &OnRefused) -> Vec<Vec<u8>> {
    let request_id = request.get(1).cloned().unwrap_or_default();
    let address: String = request
        .get(3)
        .map(|a| String::from_utf8_lossy(a).chars().take(64).collect())
        .unwrap_or_default();
    let (code, text): (&[u8], Vec<u8>) = match decide(request, policy, &address) {
        Ok(()) => (b"200", b"OK".to_vec()),
        Err(refusal) => {
            on_refused(&address, &refusal);
            let code: &[u8] = if refusal == Refusal::BadRequest {
                b"500"
            } else {
                b"400"
            };
            (code, refusal.to_string().into_bytes())
        }
    };
    vec![
        b"1.0".to_vec(),
        request_id,
        code.to_vec(),
        text,
        Vec::new(),
        Vec::new(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{free_port, python_stdout};
    use netgear_protocol::keys::KeyDirs;
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    fn request(address: &str, mechanism: &str, key: &[u8]) -> Vec<Vec<u8>> {
        vec![
            b"1.0".to_vec(),
            b"id".to_vec(),
            Vec::new(),
            address.as_bytes().to_vec(),
            Vec::new(),
            mechanism.as_bytes().to_vec(),
            key.to_vec(),
        ]
    }

    type Log = Arc<Mutex<Vec<String>>>;

    fn logging() -> (Log, OnRefused) {
        let refused = Log::default();
        let log = refused.clone();
        let on_refused: OnRefused =
            Box::new(move |a, why| log.lock().unwrap().push(format!("{a}: {why}")));
        (refused, on_refused)
    }

    #[test]
    fn zap_answers_follow_the_policy() {
        let (refused, on_refused) = logging();
        let listed = [7u8; 32];
        let iron = ClientPolicy::listed([listed].into_iter().collect());
        let ok = |r: &Vec<Vec<u8>>| r[2] == b"200" && r[1] == b"id";
        assert!(ok(&answer(
            &request("10.0.0.9", "CURVE", &listed),
            &iron,
            &on_refused
        )));
        let stone = ClientPolicy::any_key();
        assert!(ok(&answer(
            &request("10.0.0.9", "CURVE", &[8; 32]),
            &stone,
            &on_refused
        )));
        let reply = answer(&request("10.0.0.9", "CURVE", &[8; 32]), &iron, &on_refused);
        assert_eq!((reply[2].as_slice(), reply.len()), (&b"400"[..], 6));
        assert_eq!(
            answer(&request("10.0.0.9", "NULL", &[]), &stone, &on_refused)[2],
            b"400"
        );
        assert_eq!(
            answer(&request("10.0.0.9", "CURVE", &[1]), &stone, &on_refused)[2],
            b"400"
        );
        assert_eq!(answer(&[b"2.0".to_vec()], &stone, &on_refused)[2], b"500");
        assert_eq!(
            refused.lock().unwrap().as_slice(),
            [
                "10.0.0.9: its public key is not in public_keys/ (IronHouse)",
                "10.0.0.9: it used the NULL mechanism, not CURVE",
                "10.0.0.9: it did not authenticate",
                ": bad ZAP request"
            ]
        );
    }

    #[test]
    fn zap_checks_the_address_before_the_key() {
        let (refused, on_refused) = logging();
        let listed = [7u8; 32];
        let allowed = AllowedAddresses::parse("127.0.0.1,10.0.0.0/8,::1").unwrap();
        let iron = ClientPolicy::listed([listed].into_iter().collect()).with_addresses(allowed);
        for ok in ["127.0.0.1", "10.1.2.3", "::1", "::ffff:10.9.9.9"] {
            assert_eq!(
                answer(&request(ok, "CURVE", &listed), &iron, &on_refused)[2],
                b"200"
            );
        }
        // A listed key from another address is refused, and the reason says why.
        let reply = answer(&request("127.0.0.2", "CURVE", &listed), &iron, &on_refused);
        assert_eq!(reply[2], b"400");
        assert_eq!(reply[3], b"address 127.0.0.2 is not in allowed-addresses");
        // The address is checked first: an unlisted key from an unlisted address says so.
        answer(&request("::2", "CURVE", &[9; 32]), &iron, &on_refused);
        answer(&request("", "CURVE", &listed), &iron, &on_refused);
        assert_eq!(
            refused.lock().unwrap().as_slice(),
            [
                "127.0.0.2: address 127.0.0.2 is not in allowed-addresses",
                "::2: address ::2 is not in allowed-addresses",
                ": address  is not in allowed-addresses"
            ]
        );
    }

    /// A CURVE REQ client with the set's client keys, connecting from `source`.
    const PEER: &str = r#"
import sys, zmq, zmq.auth
certs, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
public, secret = zmq.auth.load_certificate(certs + "/.vidgear/keys/private_keys/client.key_secret")
server, _ = zmq.auth.load_certificate(certs + "/.vidgear/keys/public_keys/server.key")
s = zmq.Context().socket(zmq.REQ)
s.curve_publickey, s.curve_secretkey, s.curve_serverkey = public, secret, server
s.linger = 0
s.connect("tcp://%s:0;127.0.0.1:%d" % (source, port))
s.send(b"hello from " + source.encode())
print("REPLY " + s.recv().decode() if s.poll(3000) else "NOREPLY", flush=True)
"#;

    /// Runs the peer from `source` against a REP socket guarded by `allowed`; returns what
    /// the peer printed, what the server received and what the handler refused.
    fn connect_from(
        certs: &Path,
        allowed: &str,
        source: &str,
    ) -> (String, Vec<String>, Vec<String>) {
        let set = KeyDirs::new(certs.to_str().unwrap())
            .unwrap()
            .load(false)
            .unwrap();
        let policy = ClientPolicy::listed(set.allowed_clients().unwrap())
            .with_addresses(AllowedAddresses::parse(allowed).unwrap());
        let refused = Arc::new(Mutex::new(Vec::new()));
        let log = refused.clone();
        let on_refused: OnRefused = Box::new(move |peer, why| {
            log.lock().unwrap().push(format!("{peer}: {why}"));
        });
        let context = zmq::Context::new();
        let _zap = ZapHandler::start(&context, policy, on_refused).unwrap();
        let socket = context.socket(zmq::REP).unwrap();
        apply_keys(&set.server_keys().unwrap(), &socket).unwrap();
        let port = free_port();
        socket.bind(&format!("tcp://127.0.0.1:{port}")).unwrap();

        let (certs, source) = (certs.to_owned(), source.to_owned());
        let peer = std::thread::spawn(move || {
            let (certs, port) = (certs.to_str().unwrap(), port.to_string());
            python_stdout(&["-c", PEER, certs, &port, &source])
                .trim()
                .to_owned()
        });
        let mut received = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(8);
        while !peer.is_finished() && Instant::now() < deadline {
            if socket.poll(zmq::POLLIN, 100).unwrap() > 0 {
                received.push(String::from_utf8(socket.recv_bytes(0).unwrap()).unwrap());
                socket.send("welcome", 0).unwrap();
            }
        }
        let printed = peer.join().unwrap();
        let refused = refused.lock().unwrap().clone();
        (printed, received, refused)
    }

    #[test]
    fn a_peer_outside_the_list_is_refused_before_its_key_is_checked() {
        let certs = std::env::temp_dir().join(format!("netgear-allow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&certs);
        KeyDirs::new(certs.to_str().unwrap())
            .unwrap()
            .generate()
            .unwrap();

        let (printed, received, refused) =
            connect_from(&certs, "127.0.0.1,10.0.0.0/8", "127.0.0.2");
        assert_eq!(printed, "NOREPLY");
        assert!(received.is_empty(), "{received:?}");
        assert!(!refused.is_empty());
        assert!(
            refused
                .iter()
                .all(|r| r == "127.0.0.2: address 127.0.0.2 is not in allowed-addresses"),
            "{refused:?}"
        );

        let (printed, received, refused) =
            connect_from(&certs, "127.0.0.1,10.0.0.0/8", "127.0.0.1");
        assert_eq!(printed, "REPLY welcome");
        assert_eq!(received, ["hello from 127.0.0.1"]);
        assert!(refused.is_empty(), "{refused:?}");

        // A range that holds the peer lets it in; an empty list lets in anyone.
        for allowed in ["127.0.0.0/30", ""] {
            let (printed, _, refused) = connect_from(&certs, allowed, "127.0.0.2");
            assert_eq!(printed, "REPLY welcome", "{allowed}");
            assert!(refused.is_empty(), "{allowed}: {refused:?}");
        }
    }
}
