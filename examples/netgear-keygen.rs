//! Makes a vidgear-compatible CURVE key set for secure mode:
//!
//!   cargo run --example netgear-keygen -- DIR [--force]
//!
//! writes DIR/.vidgear/keys/public_keys/{server,client}.key and
//! DIR/.vidgear/keys/private_keys/{server,client}.key_secret (mode 0600). Give the same set
//! to both machines: `cert-dir=DIR` on our elements, `custom_cert_location=DIR` in vidgear.
//! An existing complete set is kept unless --force.
use gstnetgear::security::KeyDirs;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let force = args.iter().any(|a| a == "--force");
    let Some(dir) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: netgear-keygen DIR [--force]");
        std::process::exit(2);
    };
    let result = KeyDirs::new(dir).and_then(|dirs| dirs.ensure(force).map(|made| (dirs, made)));
    match result {
        Ok((dirs, made)) => {
            let verb = if made { "made" } else { "kept the existing" };
            println!(
                "{verb} key set:\n  {}\n  {}",
                dirs.public.display(),
                dirs.private.display()
            );
        }
        Err(e) => {
            eprintln!("netgear-keygen: {e}");
            std::process::exit(1);
        }
    }
}
