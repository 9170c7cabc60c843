// SPDX-License-Identifier: MPL-2.0
//! What a pipeline's bus says: how it ended, its warnings, and the element messages
//! recorded as they are posted.

use super::launch;
use gst::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a pipeline ended.
#[derive(Debug)]
pub enum Outcome {
    Eos,
    Error(String),
    TimedOut,
}

/// How a watched pipeline ended, when (from the start of the watch), and its warnings.
pub struct Watched {
    pub outcome: Outcome,
    pub after: Duration,
    pub warnings: Vec<String>,
}

/// Waits until `start + timeout` for EOS or an error on `pipeline`'s bus, collecting
/// warnings meanwhile.
pub fn watch(pipeline: &gst::Pipeline, start: Instant, timeout: Duration) -> Watched {
    let bus = pipeline.bus().expect("bus");
    let mut warnings = Vec::new();
    let kinds = [
        gst::MessageType::Eos,
        gst::MessageType::Error,
        gst::MessageType::Warning,
    ];
    while let Some(left) = (start + timeout).checked_duration_since(Instant::now()) {
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(left.as_nanos() as u64),
            &kinds,
        ) else {
            break;
        };
        let outcome = match msg.view() {
            gst::MessageView::Warning(w) => {
                warnings.push(format!("{} ({:?})", w.error(), w.debug()));
                continue;
            }
            gst::MessageView::Eos(_) => Outcome::Eos,
            gst::MessageView::Error(e) => {
                Outcome::Error(format!("{} ({:?})", e.error(), e.debug()))
            }
            _ => continue,
        };
        return Watched {
            outcome,
            after: start.elapsed(),
            warnings,
        };
    }
    Watched {
        outcome: Outcome::TimedOut,
        after: start.elapsed(),
        warnings,
    }
}

/// Waits for EOS or an error on a pipeline's bus.
pub fn wait_end(pipeline: &gst::Pipeline, timeout: Duration) -> Outcome {
    watch(pipeline, Instant::now(), timeout).outcome
}

/// The error a pipeline description posts when the change to PAUSED fails, as it must.
pub fn start_error(description: &str) -> String {
    let pipeline = launch(description);
    let started = pipeline.set_state(gst::State::Paused);
    let outcome = wait_end(&pipeline, Duration::from_secs(5));
    let _ = pipeline.set_state(gst::State::Null);
    assert!(started.is_err(), "{description} started");
    match outcome {
        Outcome::Error(text) => text,
        other => panic!("no error message for {description}: {other:?}"),
    }
}

/// The warnings still queued on a pipeline's bus.
pub fn queued_warnings(pipeline: &gst::Pipeline) -> Vec<String> {
    queued_warning_texts(pipeline, |w| format!("{} ({:?})", w.error(), w.debug()))
}

/// The debug texts (as `Option`'s Debug) of the warnings still queued on a pipeline's bus.
pub fn queued_warning_debugs(pipeline: &gst::Pipeline) -> Vec<String> {
    queued_warning_texts(pipeline, |w| format!("{:?}", w.debug()))
}

fn queued_warning_texts(
    pipeline: &gst::Pipeline,
    text: impl Fn(&gst::message::Warning) -> String,
) -> Vec<String> {
    let bus = pipeline.bus().expect("bus");
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(text(w)),
            _ => None,
        })
        .collect()
}

/// Element messages (and warnings, as `gst-warning` with `text` and `debug`) posted on a
/// pipeline's bus, recorded as they are posted (waiting for EOS pops and drops the others).
#[derive(Clone, Default)]
pub struct Posted(Arc<Mutex<Vec<gst::Structure>>>);

impl Posted {
    pub fn record(pipeline: &gst::Pipeline) -> Posted {
        let posted = Posted::default();
        let store = posted.0.clone();
        pipeline
            .bus()
            .expect("bus")
            .set_sync_handler(move |_, msg| {
                let recorded = match msg.view() {
                    gst::MessageView::Element(_) => msg.structure().map(|s| s.to_owned()),
                    // Warnings too: waiting for EOS pops and drops them.
                    gst::MessageView::Warning(w) => Some(
                        gst::Structure::builder("gst-warning")
                            .field("text", format!("{} {:?}", w.error(), w.debug()))
                            .field("debug", w.debug().unwrap_or_default().to_string())
                            .build(),
                    ),
                    _ => None,
                };
                if let (Some(s), Ok(mut v)) = (recorded, store.lock()) {
                    v.push(s);
                }
                gst::BusSyncReply::Pass
            });
        posted
    }

    /// The texts of the recorded warnings.
    pub fn warnings(&self) -> Vec<String> {
        self.warning_fields("text")
    }

    /// The debug texts of the recorded warnings.
    pub fn warning_debugs(&self) -> Vec<String> {
        self.warning_fields("debug")
    }

    fn warning_fields(&self, field: &str) -> Vec<String> {
        self.named("gst-warning")
            .iter()
            .filter_map(|s| s.get::<String>(field).ok())
            .collect()
    }

    /// The recorded messages of one name.
    pub fn named(&self, name: &str) -> Vec<gst::Structure> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.name() == name)
            .cloned()
            .collect()
    }
}
