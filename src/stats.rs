// SPDX-License-Identifier: MPL-2.0
//! Counters behind the read-only `stats` property. Atomics, so the property can be read
//! while the streaming thread is blocked on the network.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    /// Frames sent (and acknowledged, in patterns 0/1) or received and pushed.
    pub frames: AtomicU64,
    /// Payload bytes of those frames as they crossed the wire.
    pub bytes: AtomicU64,
    /// Replies that did not come in time.
    pub retries: AtomicU64,
    /// Sockets closed and opened again (sink: reconnect; source: rebind after silence).
    pub reconnects: AtomicU64,
    /// Frames lost on our side (interrupted sends, frames downstream could not take).
    pub dropped: AtomicU64,
    /// Messages from the network that were rejected.
    pub malformed: AtomicU64,
    /// Source: frames dropped as not newer than one delivered from their stream (a copy
    /// our sink sent again after a lost connection, or one an abandoned connection delayed).
    pub duplicates: AtomicU64,
    /// Replies carrying data from a bidirectional / multi-client receiver.
    pub returns: AtomicU64,
    /// Termination messages sent or received.
    pub terminations: AtomicU64,
    /// Secure mode: clients the receiver's authentication turned away.
    pub refused: AtomicU64,
    /// Peers whose handshake succeeded (connections made, or accepted).
    pub connects: AtomicU64,
    /// Handshaken peers that went away.
    pub disconnects: AtomicU64,
    /// Handshakes that failed (wrong keys, wrong mechanism, refused by authentication).
    pub handshake_failures: AtomicU64,
    /// Receiver without CURVE: connections closed before their handshake (port checks).
    pub probes: AtomicU64,
    /// Multi-client req-rep: times a receiver stopped answering and was skipped.
    pub receivers_down: AtomicU64,
    /// Source: frames decoded on the decoder thread while the next one was received.
    pub parallel_decodes: AtomicU64,
    /// Sink: frames encoded in bands on the encoder threads at once.
    pub band_encodes: AtomicU64,
    /// Source: JPEGs with restart markers decoded band by band on every core.
    pub band_decodes: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for c in self.counters() {
            c.1.store(0, Ordering::Relaxed);
        }
    }

    fn counters(&self) -> [(&'static str, &AtomicU64); 18] {
        [
            ("frames", &self.frames),
            ("bytes", &self.bytes),
            ("retries", &self.retries),
            ("reconnects", &self.reconnects),
            ("dropped", &self.dropped),
            ("malformed", &self.malformed),
            ("duplicates", &self.duplicates),
            ("returns", &self.returns),
            ("terminations", &self.terminations),
            ("refused", &self.refused),
            ("connects", &self.connects),
            ("disconnects", &self.disconnects),
            ("handshake-failures", &self.handshake_failures),
            ("probes", &self.probes),
            ("receivers-down", &self.receivers_down),
            ("parallel-decodes", &self.parallel_decodes),
            ("band-encodes", &self.band_encodes),
            ("band-decodes", &self.band_decodes),
        ]
    }

    pub fn to_structure(&self, name: &str) -> gst::Structure {
        let mut s = gst::Structure::new_empty(name);
        for (key, counter) in self.counters() {
            s.set(key, counter.load(Ordering::Relaxed));
        }
        s
    }
}
