// SPDX-License-Identifier: MPL-2.0
//! The test process: fresh directories, what it holds (threads, descriptors, memory), and
//! tests run again in a process of their own.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The folder of this build's artifacts (`target/<profile>`): the test binary is in its
/// `deps`.
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the test binary's folder");
    deps.parent().expect("the build folder").to_path_buf()
}

/// Where gst-launch-1.0 and other processes find the plugin: `GST_PLUGIN_PATH`, else the
/// plugin this test binary was built with.
pub fn plugin_dir() -> PathBuf {
    std::env::var_os("GST_PLUGIN_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(build_dir)
}

/// A fresh, empty directory under the system's temporary one, named after `tag`.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "netgear-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").expect("tasks").count()
}

/// The open file descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("descriptors")
        .count()
}

/// The resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4
}

/// A test's path as the test binary names it: `module_path!()` without the crate.
fn test_path(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, inner)) => format!("{inner}::{name}"),
        None => name.to_owned(),
    }
}

/// This test binary, set to run test `name` of `module` (its `module_path!()`) and
/// nothing else.
pub fn this_binary_running(module: &str, name: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command.args(["--exact", &test_path(module, name)]);
    command.args(["--nocapture", "--test-threads=1"]);
    command
}

/// Set in a test's own process.
const OWN_PROCESS: &str = "NETGEAR_TEST_OWN_PROCESS";

/// Runs `body`, all of a test, in a process of its own (this binary, running only that
/// test): for tests that count the process's threads, descriptors or memory, which other
/// tests running alongside would change. `module` is the test's `module_path!()`.
pub fn in_own_process(module: &str, name: &str, body: impl FnOnce()) {
    if std::env::var_os(OWN_PROCESS).is_some() {
        return body();
    }
    let out = this_binary_running(module, name)
        .env(OWN_PROCESS, "1")
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} in its own process: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
