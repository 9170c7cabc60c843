// SPDX-License-Identifier: MPL-2.0
//! With JPEG on, `netgearsink` announces colour frames as BGR (gray as GRAY) whatever
//! packed layout it encoded from, so a real vidgear receiver's `recv()` returns (h, w, 3)
//! BGR arrays; `jpeg-colorspace` overrides it and is checked against what vidgear decodes.

use crate::common::*;
use gst::prelude::*;
use serde_json::Value;
use std::time::Duration;

/// Sends five frames of `pattern` in `format` through `netgearsink extra` to vidgear.
fn send_to_vidgear(pattern: &str, format: &str, extra: &str) -> Value {
    init();
    let port = free_port();
    let mut peer = Peer::script(
        "netgear_pixels.py",
        &flag_args(&[("port", port.to_string())]),
    );
    peer.wait_ready(Duration::from_secs(20));
    let description = format!(
        "videotestsrc pattern={pattern} num-buffers=5 ! \
         video/x-raw,format={format},width=64,height=48,framerate=30/1 ! \
         netgearsink address=127.0.0.1 port={port} sync=false {extra}"
    );
    let pipeline = launch(&description);
    pipeline.set_state(gst::State::Playing).expect("playing");
    let outcome = wait_end(&pipeline, Duration::from_secs(20));
    pipeline.set_state(gst::State::Null).expect("null");
    assert!(matches!(outcome, Outcome::Eos), "{format}: {outcome:?}");
    peer.report(Duration::from_secs(30))
}

fn means(report: &Value) -> Vec<f64> {
    report["means"]
        .as_array()
        .expect("means")
        .iter()
        .map(|v| v.as_f64().expect("a mean"))
        .collect()
}

fn assert_close(got: &[f64], expected: &[f64], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: {got:?}");
    for (g, e) in got.iter().zip(expected) {
        assert!(
            (g - e).abs() <= 8.0,
            "{what}: got {got:?}, expected {expected:?}"
        );
    }
}

#[test]
fn vidgear_receives_bgr_from_every_colour_layout() {
    for format in ["xBGR", "RGBx", "RGB", "BGRx", "RGBA", "ARGB"] {
        let report = send_to_vidgear("red", format, "");
        assert_eq!(report["frames"], 5, "{format}: {report}");
        assert_eq!(report["terminated"], true, "{format}");
        assert_eq!(
            report["shapes"],
            serde_json::json!(["([48, 64, 3], 'uint8')"]),
            "{format}"
        );
        // Red, in OpenCV's B, G, R order.
        assert_close(&means(&report), &[0.0, 0.0, 255.0], format);
    }
}

#[test]
fn vidgear_receives_green_and_blue_in_bgr_order() {
    let report = send_to_vidgear("blue", "xBGR", "");
    assert_close(&means(&report), &[255.0, 0.0, 0.0], "blue from xBGR");
    let report = send_to_vidgear("green", "RGB", "");
    assert_close(&means(&report), &[0.0, 255.0, 0.0], "green from RGB");
}

#[test]
fn gray_input_arrives_as_a_2d_gray_array() {
    let report = send_to_vidgear("white", "GRAY8", "");
    assert_eq!(report["shapes"], serde_json::json!(["([48, 64], 'uint8')"]));
    // videotestsrc's white in GRAY8 is 235 (video range).
    assert_close(&means(&report), &[235.0], "white GRAY8");
}

#[test]
fn jpeg_colorspace_overrides_the_bgr_rule() {
    let report = send_to_vidgear("red", "xBGR", "jpeg-colorspace=rgb");
    assert_eq!(
        report["shapes"],
        serde_json::json!(["([48, 64, 3], 'uint8')"])
    );
    assert_close(&means(&report), &[255.0, 0.0, 0.0], "red as RGB");
    let report = send_to_vidgear("red", "RGB", "jpeg-colorspace=BGRA");
    assert_eq!(
        report["shapes"],
        serde_json::json!(["([48, 64, 4], 'uint8')"])
    );
    assert_close(&means(&report), &[0.0, 0.0, 255.0, 255.0], "red as BGRA");
}

#[test]
fn an_unknown_jpeg_colorspace_fails_the_start() {
    let port = free_port();
    let text = start_error(&format!(
        "videotestsrc num-buffers=5 ! netgearsink port={port} jpeg-colorspace=YUV"
    ));
    assert!(
        text.contains("jpeg-colorspace=\"YUV\" is not a colorspace vidgear decodes to: use one of BGR, RGB, BGRX, RGBX, XBGR, XRGB, BGRA, RGBA, ABGR, ARGB, GRAY"),
        "{text}"
    );
}
