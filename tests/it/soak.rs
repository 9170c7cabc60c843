// SPDX-License-Identifier: MPL-2.0
//! The soak run in short (3000 frames); scripts/soak runs 100 000.

#[test]
fn short_soak_keeps_memory_and_descriptors_flat() {
    // cargo test builds the examples next to the test binaries.
    let soak = crate::common::build_dir().join("examples/netgear-soak");
    assert!(soak.exists(), "{} was not built", soak.display());
    let out = std::process::Command::new(&soak)
        .args(["--frames", "3000"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "soak failed: {report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("\"frames\": 3000"), "{report}");
}
