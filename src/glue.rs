// SPDX-License-Identifier: MPL-2.0
//! GStreamer glue both elements share: the wake-up behind `unlock()`/`unlock_stop()`,
//! element messages, and a rate limit for bus warnings.

use crate::sync::lock;
use crate::transport::{EventHandler, LinkEvent, Waker};
use gst::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The waker of the running link, so `unlock()` can interrupt whatever network wait the
/// streaming thread is in, without touching the element's state lock.
#[derive(Default)]
pub struct Interrupt(Mutex<Option<Arc<Waker>>>);

impl Interrupt {
    pub fn arm(&self, waker: Arc<Waker>) {
        *lock(&self.0) = Some(waker);
    }

    pub fn disarm(&self) {
        *lock(&self.0) = None;
    }

    /// `unlock()`: every current and later wait returns `Interrupted` until `unlock_stop`.
    pub fn unlock(&self) {
        if let Some(w) = lock(&self.0).as_ref() {
            w.wake();
        }
    }

    /// `unlock_stop()`: waits block again.
    pub fn unlock_stop(&self) {
        if let Some(w) = lock(&self.0).as_ref() {
            w.reset();
        }
    }
}

/// Posts an element message `name` with `fields`, and `port` where it is known.
pub fn post_element_message(
    element: &gst::Element,
    name: &str,
    fields: impl FnOnce(gst::structure::Builder) -> gst::structure::Builder,
    port: Option<u16>,
) {
    let mut builder = fields(gst::Structure::builder(name));
    if let Some(p) = port {
        builder = builder.field("port", u32::from(p));
    }
    let message = gst::message::Element::builder(builder.build())
        .src(element)
        .build();
    // Fails only without a bus (an element outside a pipeline): nobody to tell.
    let _ = element.post_message(message);
}

/// Turns the link's events into calls of `handle` on the element (weakly held, so the link
/// does not keep the element alive). Called on the thread using the link, no lock held.
pub fn link_events<E: IsA<gst::Element> + Send + Sync>(
    element: &E,
    handle: impl Fn(&E, LinkEvent) + Send + Sync + 'static,
) -> EventHandler {
    let weak = element.downgrade();
    EventHandler::new(Arc::new(move |event| {
        if let Some(element) = weak.upgrade() {
            handle(&element, event);
        }
    }))
}

/// Posts `netgear-connected` / `netgear-disconnected` (fields `endpoint`, and `peer` and
/// `port` where known) for the events that are connection changes; logs the others.
pub fn post_link_event(element: &gst::Element, cat: gst::DebugCategory, event: &LinkEvent) {
    let Some(name) = event.message_name() else {
        gst::debug!(cat, obj = element, "{event}");
        return;
    };
    gst::info!(cat, obj = element, "{event}");
    let endpoint = event.endpoint().to_owned();
    let peer = event.peer().map(str::to_owned);
    let fields = move |b: gst::structure::Builder| {
        let b = b.field("endpoint", endpoint);
        match peer {
            Some(p) => b.field("peer", p),
            None => b,
        }
    };
    post_element_message(element, name, fields, event.port());
}

/// Lets a flood of bad network input post at most one bus warning per interval (every
/// one is still counted and logged).
#[derive(Default)]
pub struct WarningLimiter(Mutex<Option<Instant>>);

/// The interval between two bus warnings about the network.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(1);

impl WarningLimiter {
    /// Whether a bus warning may be posted now.
    pub fn due(&self) -> bool {
        let now = Instant::now();
        let mut last = lock(&self.0);
        let due = last.is_none_or(|t| now.duration_since(t) >= WARNING_INTERVAL);
        if due {
            *last = Some(now);
        }
        due
    }

    pub fn reset(&self) {
        *lock(&self.0) = None;
    }
}
