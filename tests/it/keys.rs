// SPDX-License-Identifier: MPL-2.0
//! Key files: atomic generation when elements start together on a fresh cert-dir, and
//! strict validation (invalid files fail start naming the file and the reason; nothing
//! that exists is ever regenerated unless overwrite-cert says so).

use crate::common::*;
use gst_video::VideoFormat;
use netgear_protocol::keys::{KeyDirs, KeyError, KeyWarning};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

fn dirs_of(dir: &Path) -> KeyDirs {
    KeyDirs::new(dir.to_str().unwrap()).unwrap()
}

/// A fresh, valid set; returns its dirs.
fn fresh_set(tag: &str) -> KeyDirs {
    dirs_of(&our_keys(tag))
}

/// The text of all four key files, to see whether anything was rewritten.
fn snapshot(dirs: &KeyDirs) -> Vec<(PathBuf, Option<String>)> {
    let files = [
        dirs.public.join("server.key"),
        dirs.public.join("client.key"),
        dirs.private.join("server.key_secret"),
        dirs.private.join("client.key_secret"),
    ];
    files
        .into_iter()
        .map(|f| {
            // Only regular files are read: the test puts FIFOs and devices in place.
            let text = match fs::symlink_metadata(&f) {
                Ok(m) if m.is_file() => fs::read_to_string(&f).ok(),
                Ok(m) => Some(format!("{:?}", m.file_type())),
                Err(_) => None,
            };
            (f, text)
        })
        .collect()
}

/// Loading fails with a message naming `file` and containing `reason`; nothing changes.
fn assert_refused(dirs: &KeyDirs, file: &Path, reason: &str) {
    let before = snapshot(dirs);
    let error = dirs
        .load(false)
        .and_then(|set| set.server_keys().and(set.client_keys()))
        .expect_err("an invalid set was accepted");
    let text = error.to_string();
    assert!(text.contains(file.to_str().unwrap()), "{text}");
    assert!(text.contains(reason), "expected '{reason}' in: {text}");
    assert!(
        !text.contains("secret-key = "),
        "no key text in errors: {text}"
    );
    assert_eq!(
        snapshot(dirs),
        before,
        "an invalid set must not be rewritten"
    );
}

fn edit(path: &Path, change: impl FnOnce(String) -> String) {
    let text = fs::read_to_string(path).unwrap();
    fs::write(path, change(text)).unwrap();
}

fn secret_line(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    text.lines()
        .find(|l| l.trim().starts_with("secret-key"))
        .unwrap()
        .to_owned()
}

#[test]
fn a_fresh_dir_gets_one_set_and_keeps_it() {
    let dirs = dirs_of(&temp_dir("fresh"));
    let first = dirs.load(false).unwrap();
    assert!(first.generated && first.warnings.is_empty());
    let kept = snapshot(&dirs);
    let second = dirs.load(false).unwrap();
    assert!(!second.generated);
    assert_eq!(snapshot(&dirs), kept);
    assert_eq!(first.server_keys().unwrap(), second.server_keys().unwrap());
    let mode = fs::metadata(dirs.private.join("server.key_secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(second.allowed_clients().unwrap().len(), 2);
    assert!(
        dirs.load(true).unwrap().generated,
        "overwrite makes a new set"
    );
    assert_ne!(snapshot(&dirs), kept);
    // No temporary files are left behind.
    for dir in [&dirs.public, &dirs.private] {
        let names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}

#[test]
fn reads_certificates_as_pyzmq_writes_them() {
    let dirs = fresh_set("pyzmq");
    fs::write(
        dirs.private.join("server.key_secret"),
        "#   ****  Generated on 2024-01-01 by pyzmq  ****\n#   ZeroMQ CURVE **Secret** Certificate\n\nmetadata\ncurve\n    public-key = \"Z0XTG!:9*W}-$dBe74qU0-FMwFOiyM30XyP*^y#x\"\n    secret-key = \"ZxmX2d<e3muNds#Pj2K8&<J@n/O2<=wLz091m!uu\"\n",
    )
    .unwrap();
    let set = dirs.load(false).unwrap();
    // The secret belongs to its public key, but not to public_keys/server.key.
    let error = set.server_keys().unwrap_err();
    assert!(matches!(error, KeyError::PairMismatch { .. }), "{error}");
    fs::write(
        dirs.public.join("server.key"),
        "metadata\ncurve\n    public-key = 'Z0XTG!:9*W}-$dBe74qU0-FMwFOiyM30XyP*^y#x'\n",
    )
    .unwrap();
    dirs.load(false).unwrap().server_keys().unwrap();
}

#[test]
fn invalid_key_text_fails_naming_the_file_and_reason() {
    let dirs = fresh_set("text");
    let server_secret = dirs.private.join("server.key_secret");
    let original = fs::read_to_string(&server_secret).unwrap();
    let line = secret_line(&server_secret);
    let restore = || fs::write(&server_secret, &original).unwrap();

    // One character outside Z85 (libzmq's decoder would have been ignored).
    let at = line.find("= \"").unwrap() + 3;
    let mut broken = line.clone();
    broken.replace_range(at..at + 1, "~");
    edit(&server_secret, |t| t.replace(&line, &broken));
    assert_refused(
        &dirs,
        &server_secret,
        "outside the Z85 alphabet at position 0",
    );
    restore();

    edit(&server_secret, |t| t + &line + "\n");
    assert_refused(
        &dirs,
        &server_secret,
        "has a second secret-key line (line 9)",
    );
    restore();

    edit(&server_secret, |t| {
        t.replace(&line, "    secret-key = \"abc\"")
    });
    assert_refused(&dirs, &server_secret, "is 3 characters long");
    restore();

    edit(&server_secret, |t| t.replace(&line, ""));
    assert_refused(&dirs, &server_secret, "has no secret-key line");
    restore();

    let client_public = dirs.public.join("client.key");
    let client_line = secret_line(&dirs.private.join("client.key_secret"));
    edit(&client_public, |t| t + &client_line + "\n");
    assert_refused(&dirs, &client_public, "holds a secret-key");
    dirs.load(true).unwrap();
}

/// The server's secret replaced by the client's: caught by the certificate's own public-key
/// line (only the secret line copied), or by public_keys/server.key (whole file copied).
#[test]
fn a_secret_of_the_wrong_key_is_refused() {
    let dirs = fresh_set("swap");
    let server_secret = dirs.private.join("server.key_secret");
    let client_secret = dirs.private.join("client.key_secret");
    let client_line = secret_line(&client_secret);
    let server_line = secret_line(&server_secret);
    edit(&server_secret, |t| t.replace(&server_line, &client_line));
    assert_refused(
        &dirs,
        &server_secret,
        "has a secret-key that does not belong to its public-key",
    );
    fs::copy(&client_secret, &server_secret).unwrap();
    let set = dirs.load(false).unwrap();
    set.client_keys().unwrap();
    let error = set.server_keys().unwrap_err().to_string();
    assert!(
        error.contains(server_secret.to_str().unwrap())
            && error.contains(dirs.public.join("server.key").to_str().unwrap())
            && error.contains("is not the one in"),
        "{error}"
    );
}

#[test]
fn links_fifos_devices_and_directories_are_refused_not_replaced() {
    let dirs = fresh_set("special");
    let target = dirs.public.join("client.key");
    let kept = fs::read(&target).unwrap();
    type MakeEntry = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, MakeEntry)> = vec![
        (
            "is a dangling symbolic link",
            Box::new(|p| std::os::unix::fs::symlink(p.with_file_name("gone"), p).unwrap()),
        ),
        (
            "is a symbolic link loop",
            Box::new(|p| std::os::unix::fs::symlink(p, p).unwrap()),
        ),
        (
            "is a FIFO, not a regular file",
            Box::new(|p| {
                let ok = std::process::Command::new("mkfifo")
                    .arg(p)
                    .status()
                    .unwrap();
                assert!(ok.success());
            }),
        ),
        (
            "is a character device, not a regular file",
            Box::new(|p| std::os::unix::fs::symlink("/dev/zero", p).unwrap()),
        ),
        (
            "is a directory, not a regular file",
            Box::new(|p| fs::create_dir(p).unwrap()),
        ),
        (
            "is larger than 8192 bytes",
            Box::new(|p| fs::write(p, "#".repeat(9000)).unwrap()),
        ),
    ];
    for (reason, make) in cases {
        fs::remove_file(&target).unwrap();
        make(&target);
        // A FIFO must not block: load in a thread and give it a few seconds.
        let (tx, rx) = std::sync::mpsc::channel();
        let (d, t, r) = (dirs.clone(), target.clone(), reason.to_owned());
        std::thread::spawn(move || {
            assert_refused(&d, &t, &r);
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("loading blocked or failed ({reason})"));
        if target.is_dir() {
            fs::remove_dir(&target).unwrap();
            fs::write(&target, "").unwrap();
        }
    }
    fs::remove_file(&target).unwrap();
    fs::write(&target, &kept).unwrap();
    dirs.load(false).unwrap();
}

#[test]
fn a_partial_set_is_an_error_not_a_new_set() {
    let dirs = fresh_set("partial");
    let client_public = dirs.public.join("client.key");
    fs::remove_file(&client_public).unwrap();
    let before = snapshot(&dirs);
    let error = dirs.load(false).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, KeyError::Incomplete { .. }));
    assert!(text.contains(client_public.to_str().unwrap()), "{text}");
    assert!(text.contains("overwrite-cert=true"), "{text}");
    assert_eq!(snapshot(&dirs), before, "nothing was regenerated");
    fs::remove_file(dirs.private.join("server.key_secret")).unwrap();
    let text = dirs.load(false).unwrap_err().to_string();
    assert!(
        text.contains("server.key_secret") && text.contains("client.key"),
        "{text}"
    );
    assert!(dirs.load(true).unwrap().generated);
    assert!(dirs.complete());
}

#[test]
fn secrets_readable_by_others_are_warned_about() {
    let dirs = fresh_set("modes");
    let secret = dirs.private.join("client.key_secret");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    let set = dirs.load(false).unwrap();
    assert_eq!(
        set.warnings,
        [KeyWarning::ReadableSecret {
            path: secret.clone(),
            mode: 0o644
        }]
    );
    assert!(set.warnings[0].to_string().contains("chmod 600"));
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(dirs.load(false).unwrap().warnings.is_empty());
}

/// What one generator saw: the text of the four files and the keys it loaded.
fn generate_and_read(dir: &Path) -> String {
    let dirs = dirs_of(dir);
    let set = dirs.load(false).expect("load on a shared fresh dir");
    let server = set.server_keys().expect("server keys");
    let client = set.client_keys().expect("client keys");
    assert!(matches!(
        client,
        netgear_protocol::keys::CurveKeys::Client { .. }
    ));
    let files: Vec<String> = snapshot(&dirs)
        .into_iter()
        .map(|(_, t)| t.expect("every file written"))
        .collect();
    // The keys loaded are those in the files (compared through CurveKeys equality).
    let again = dirs.load(false).unwrap();
    assert!(again.server_keys().unwrap() == server && again.client_keys().unwrap() == client);
    files.join("")
}

/// Every generator of a round saw the same set.
fn assert_one_set(round: usize, seen: &[String]) {
    assert!(
        seen.iter().all(|s| *s == seen[0]),
        "round {round}: sets differ"
    );
}

#[test]
fn threads_starting_together_share_one_set() {
    for round in 0..20 {
        let dir = temp_dir(&format!("threads-{round}"));
        let n = 2 + round % 3;
        let barrier = Arc::new(Barrier::new(n));
        let seen: Vec<String> = (0..n)
            .map(|_| {
                let (dir, barrier) = (dir.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    generate_and_read(&dir)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_one_set(round, &seen);
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Run as a child process by the next test: loads the set in NETGEAR_KEYS_CHILD_DIR and
/// prints what it loaded.
#[test]
fn child_generator() {
    if let Some(dir) = std::env::var_os("NETGEAR_KEYS_CHILD_DIR") {
        println!(
            "SET {}",
            generate_and_read(Path::new(&dir)).replace('\n', "|")
        );
    }
}

#[test]
fn processes_starting_together_share_one_set() {
    for round in 0..20 {
        let dir = temp_dir(&format!("procs-{round}"));
        let children: Vec<_> = (0..2 + round % 3)
            .map(|_| {
                this_binary_running(module_path!(), "child_generator")
                    .env("NETGEAR_KEYS_CHILD_DIR", &dir)
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let seen: Vec<String> = children
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().unwrap();
                assert!(out.status.success(), "round {round}: a generator failed");
                let text = String::from_utf8(out.stdout).unwrap();
                text.lines()
                    .find_map(|l| l.split_once("SET ").map(|(_, set)| set))
                    .expect("the child's set")
                    .to_owned()
            })
            .collect();
        assert_one_set(round, &seen);
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Both elements started at once on a fresh cert-dir: one set, and frames pass.
#[test]
fn secure_pair_started_together_on_a_fresh_dir_passes_frames() {
    const W: usize = 32;
    const H: usize = 24;
    for round in 0..3 {
        let certs = temp_dir(&format!("pair-{round}"));
        let port = free_port().to_string();
        let dir = certs.to_str().unwrap();
        let common = [
            ("port", port.as_str()),
            ("address", "127.0.0.1"),
            ("pattern", "1"),
            ("secure-mode", "ironhouse"),
            ("cert-dir", dir),
        ];
        let src_refs = common.to_vec();
        let mut sink_refs = common.to_vec();
        sink_refs.push(("jpeg-compression", "false"));
        let receiver = Receiver::new(&src_refs);
        let sender = Sender::raw(VideoFormat::Bgr, W as u32, H as u32, &sink_refs);
        let barrier = Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                barrier.wait();
                receiver.play();
            });
            barrier.wait();
            sender.play();
        });
        for i in 0..10 {
            sender
                .push_packed(&test_frame(i, W, H, 3, false), i as u64)
                .unwrap();
        }
        sender.finish();
        let (frames, eos) = receiver.collect(Duration::from_secs(10));
        assert!(eos, "round {round}: no EOS");
        assert_eq!(frames.len(), 10, "round {round}: every frame");
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.packed(), test_frame(i, W, H, 3, false));
        }
        assert_eq!(receiver.stats().get::<u64>("refused").unwrap(), 0);
    }
}

#[test]
fn elements_fail_start_naming_the_invalid_file() {
    let dirs = fresh_set("element");
    let certs = dirs
        .public
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let server_secret = dirs.private.join("server.key_secret");
    let line = secret_line(&server_secret);
    edit(&server_secret, |t| t + &line + "\n");
    let port = free_port();
    let text = start_error(&format!(
        "netgearsrc secure-mode=ironhouse cert-dir={} port={port} address=127.0.0.1 ! fakesink",
        certs.display()
    ));
    assert!(text.contains(server_secret.to_str().unwrap()), "{text}");
    assert!(text.contains("has a second secret-key line"), "{text}");
    edit(&server_secret, |t| {
        t.replacen(&(line.clone() + "\n"), "", 1)
    });
    dirs.load(false).unwrap();

    let client_public = dirs.public.join("client.key");
    fs::remove_file(&client_public).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &client_public).unwrap();
    let text = start_error(&format!(
        "videotestsrc ! netgearsink secure-mode=stonehouse cert-dir={} port={port} address=127.0.0.1",
        certs.display()
    ));
    assert!(text.contains(client_public.to_str().unwrap()), "{text}");
    assert!(text.contains("character device"), "{text}");
}
