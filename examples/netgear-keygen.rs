// SPDX-License-Identifier: MPL-2.0
//! Makes a vidgear-compatible CURVE key set for secure mode:
//!
//!   cargo run --example netgear-keygen -- DIR [--force]
//!
//! writes DIR/.vidgear/keys/public_keys/{server,client}.key and
//! DIR/.vidgear/keys/private_keys/{server,client}.key_secret (mode 0600). Give the same set
//! to both machines: `cert-dir=DIR` on our elements, `custom_cert_location=DIR` in vidgear.
//! An existing set is checked and kept unless --force; a partial or invalid set is an
//! error naming the file, as it is for the elements.
use netgear_protocol::keys::KeyDirs;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let force = args.iter().any(|a| a == "--force");
    let Some(dir) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: netgear-keygen DIR [--force]");
        std::process::exit(2);
    };
    let result = KeyDirs::new(dir).and_then(|dirs| dirs.load(force).map(|set| (dirs, set)));
    match result {
        Ok((dirs, set)) => {
            let verb = if set.generated {
                "made"
            } else {
                "kept the existing, valid"
            };
            println!(
                "{verb} key set:\n  {}\n  {}",
                dirs.public.display(),
                dirs.private.display()
            );
            for warning in &set.warnings {
                eprintln!("netgear-keygen: warning: {warning}");
            }
        }
        Err(e) => {
            eprintln!("netgear-keygen: {e}");
            std::process::exit(1);
        }
    }
}
