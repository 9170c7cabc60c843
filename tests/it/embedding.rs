// SPDX-License-Identifier: MPL-2.0
//! The embedding examples run as tests: the Python application (GObject introspection,
//! the system python3 with python3-gi and numpy) and the Rust application (examples/app.rs)
//! push frames through appsrc → netgearsink → netgearsrc → appsink, byte for byte, with
//! the bidirectional bus messages.

#[allow(dead_code)]
#[path = "../../examples/app.rs"]
mod app;

use crate::common::*;
use std::path::PathBuf;
use std::process::Command;

/// The system Python with gi (NETGEAR_SYSTEM_PYTHON overrides): the venv cannot see
/// Debian's python3-gi. scripts/setup installs it; missing is a failure, not a skip.
fn system_python() -> PathBuf {
    std::env::var_os("NETGEAR_SYSTEM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/python3"))
}

#[test]
fn the_python_example_moves_numpy_frames_through_both_elements() {
    init();
    let port = free_port();
    let dump = std::env::temp_dir().join(format!("netgear-embedding-{port}.raw"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let plugin_dir = plugin_dir();
    let output = Command::new(system_python())
        .arg(root.join("examples/python/numpy_frames.py"))
        .args(["--port", &port.to_string(), "--frames", "8"])
        .args(["--dump".as_ref(), dump.as_os_str()])
        .env("GST_PLUGIN_PATH", plugin_dir)
        .output()
        .expect("run the Python example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON report");
    assert_eq!(report["received"], 8, "{report}");
    assert_eq!(report["shape"], serde_json::json!([37, 63, 3]));
    assert_eq!(report["eos"], true);
    assert_eq!(report["counts"], serde_json::json!([8, 8]));
    assert_eq!(report["messages"][0], serde_json::json!({"from": "python"}));
    assert_eq!(report["returns"][0], serde_json::json!({"seen": true}));
    let bytes = std::fs::read(&dump).expect("dumped frames");
    let _ = std::fs::remove_file(&dump);
    let expected: Vec<u8> = (0..8)
        .flat_map(|i| test_frame(i, 63, 37, 3, false))
        .collect();
    assert!(bytes == expected, "the frames differ from those sent");
}

#[test]
fn the_rust_example_moves_frames_and_bus_messages() {
    init();
    let report = app::run(free_port(), 8).expect("the example runs");
    assert_eq!(report.frames.len(), 8);
    for (idx, frame) in report.frames.iter().enumerate() {
        assert!(*frame == app::make_frame(idx), "frame {idx} differs");
        assert!(*frame == test_frame(idx, app::WIDTH, app::HEIGHT, 3, false));
    }
    assert_eq!(report.messages.len(), 8);
    assert_eq!(report.messages[0], "{\"from\": \"rust\"}");
    assert_eq!(report.returns.len(), 8);
    assert_eq!(report.returns[0], "{\"seen\": true}");
}
