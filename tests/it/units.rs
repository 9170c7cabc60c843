// SPDX-License-Identifier: MPL-2.0
//! What a vidgear user guesses: `request-timeout` in vidgear's seconds fails at start on both
//! elements with an error that says it is in milliseconds (the property takes the value, so
//! no GLib warning hides it), in-process and in gst-launch-1.0; and the Python example run
//! by the venv's python says it needs Debian's python3-gi and the system python3.

use crate::common::*;
use gst::glib;
use gst::prelude::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What gst-launch-1.0 printed (stdout and stderr) and how it ended.
pub struct Launched {
    pub code: Option<i32>,
    pub text: String,
    pub took: Duration,
}

/// Runs gst-launch-1.0 with the plugin and `args` to its end; killed (and the test
/// failed) after `timeout`.
pub fn gst_launch(args: &[String], timeout: Duration) -> Launched {
    let plugin_path = plugin_dir();
    let start = Instant::now();
    let mut child = Command::new("gst-launch-1.0")
        .args(args)
        .env("GST_PLUGIN_PATH", plugin_path)
        .env_remove("GST_DEBUG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gst-launch-1.0 (gstreamer1.0-tools)");
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > timeout {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = start.elapsed();
    let out = child.wait_with_output().expect("output");
    assert!(took <= timeout, "gst-launch-1.0 {args:?} did not end");
    Launched {
        code: out.status.code(),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        took,
    }
}

/// gst-launch-1.0's arguments for a pipeline description split at spaces.
pub fn launch_args(description: &str) -> Vec<String> {
    description.split(' ').map(str::to_owned).collect()
}

fn seconds_error(value: u32) -> String {
    format!(
        "request-timeout={value} is in milliseconds ({value} ms), below the 100 ms minimum; \
         vidgear's request_timeout={value} (seconds) is request-timeout={}",
        value * 1000
    )
}

#[test]
fn request_timeout_in_seconds_fails_at_start_on_both_elements() {
    init();
    let port = free_port();
    for (description, value) in [
        (
            format!(
                "videotestsrc ! netgearsink name=e address=127.0.0.1 port={port} request-timeout=4"
            ),
            4,
        ),
        (
            format!(
                "netgearsrc name=e address=127.0.0.1 port={port} request-timeout=10 ! fakesink"
            ),
            10,
        ),
        (
            format!("netgearsrc name=e port={port} request-timeout=99 ! fakesink"),
            99,
        ),
    ] {
        // The property takes the value as it is (a ParamSpec minimum kept 4000).
        let element = launch(&description).by_name("e").expect("element");
        assert_eq!(element.property::<u32>("request-timeout"), value);
        let error = start_error(&description);
        assert!(
            error.contains(&seconds_error(value)),
            "{description}: {error}"
        );
    }
    let error = start_error(&format!(
        "netgearsrc port={port} request-timeout=0 ! fakesink"
    ));
    assert!(
        error.contains("request-timeout=0 is in milliseconds (0 ms), below the 100 ms minimum"),
        "{error}"
    );
}

#[test]
fn request_timeout_of_100_ms_starts() {
    init();
    let port = free_port();
    let pipeline = launch(&format!(
        "netgearsrc address=127.0.0.1 port={port} request-timeout=100 max-retries=0 ! fakesink"
    ));
    assert!(pipeline.set_state(gst::State::Playing).is_ok());
    let outcome = wait_end(&pipeline, Duration::from_millis(500));
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(matches!(outcome, Outcome::TimedOut), "{outcome:?}");
}

/// gst-launch-1.0 shows why: the source no longer ends the stream after 92 ms of a 10 ms
/// timeout, the sink no longer warns (GLib) and keeps 4000 ms.
#[test]
fn gst_launch_says_request_timeout_is_in_milliseconds() {
    let port = free_port();
    let cases = [
        (
            format!("netgearsrc address=127.0.0.1 port={port} request-timeout=10 ! fakesink"),
            10,
        ),
        (
            format!(
                "videotestsrc num-buffers=1 ! netgearsink address=127.0.0.1 port={port} request-timeout=4"
            ),
            4,
        ),
    ];
    for (description, value) in cases {
        let out = gst_launch(&launch_args(&description), Duration::from_secs(20));
        assert_ne!(out.code, Some(0), "{description}: {}", out.text);
        assert!(out.text.contains(&seconds_error(value)), "{}", out.text);
        assert!(!out.text.contains("GLib-GObject-WARNING"), "{}", out.text);
        assert!(!out.text.contains("Got EOS"), "{}", out.text);
        assert!(out.took < Duration::from_secs(10), "took {:?}", out.took);
    }
}

/// In a venv (no gi), the Python example says what it needs instead of a traceback.
#[test]
fn the_python_example_in_a_venv_says_to_use_the_system_python3() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/python/numpy_frames.py");
    let out = Command::new(python())
        .arg(example)
        .output()
        .expect("run the example with the venv's python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("Traceback"), "{stderr}");
    assert!(
        stderr.contains("needs Debian's python3-gi")
            && stderr.contains("run it with the system /usr/bin/python3, not a venv's python"),
        "{stderr}"
    );
}

/// gst-launch-1.0 prints GStreamer's own text for a wrong enum nick (`could not set
/// property`), which no element can change; what is ours is the blurb gst-inspect-1.0
/// shows, which names every value of each enum with its number (vidgear's numbers).
#[test]
fn enum_blurbs_list_every_value_with_its_number() {
    init();
    for factory in ["netgearsink", "netgearsrc"] {
        let element = gst::ElementFactory::make(factory).build().unwrap();
        for pspec in element.list_properties().iter() {
            let Some(spec) = pspec.downcast_ref::<glib::ParamSpecEnum>() else {
                continue;
            };
            let blurb = pspec.blurb().unwrap_or_default();
            for value in spec.enum_class().values() {
                let named = format!("{} ({}", value.nick(), value.value());
                assert!(
                    blurb.contains(&named),
                    "{factory} {}: {blurb}",
                    pspec.name()
                );
            }
        }
    }
}
