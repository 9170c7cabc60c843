// SPDX-License-Identifier: MPL-2.0
//! `netgearsrc`'s decode-ahead: when frames wait for us, a large JPEG decodes on a thread
//! of its own while the receiver takes the next message; that one, if it comes within a
//! decode's time and needs the same output, is answered and made into a buffer meanwhile
//! (decoded on the streaming thread), and its result is the next receive's.
//!
//! The receiver drives it: `should_overlap`, then `hand_over`, its own receive of the next
//! message (kept with `keep_ahead`), then `finish`; `take_ahead` at the next receive.

use crate::config::Pattern;
use crate::frames::{frame_decoder, FrameDecoder, FrameError, FrameReader, Output, OutputKey};
use netgear_protocol::jpeg::JpegError;
use netgear_protocol::PayloadKind;
use std::time::{Duration, Instant};

/// Smaller JPEGs decode in less time than handing them to another thread saves.
const MIN_OVERLAP_PIXELS: usize = 640 * 480;

enum Phase<Next> {
    /// The next frame may go to the decoder thread.
    Idle,
    /// A frame is on the decoder thread: frames handled meanwhile decode here.
    Decoding,
    /// What the message taken ahead led to, for the next receive.
    Ahead(Next),
}

/// The overlap's state; `Next` is what handling the message taken ahead led to.
pub struct DecodeAhead<Next> {
    /// A core to spare, and one frame per answer (patterns 0/1): overlapping can pay off
    /// and skips nothing.
    possible: bool,
    /// Started when first needed.
    decoder: Option<FrameDecoder>,
    /// How long the last receive waited.
    waited: Duration,
    /// How long the last frame decoded here took to become a buffer.
    took: Duration,
    phase: Phase<Next>,
}

/// Where a frame given to `hand_over` decodes.
pub enum Handed {
    /// On the decoder thread: `finish` gives its buffer.
    Decoding,
    /// Here already: no thread to spare, or no JPEG to decode.
    Done(Result<gst::Buffer, FrameError>),
}

impl<Next> DecodeAhead<Next> {
    pub fn new(pattern: Pattern) -> Self {
        let cores = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        DecodeAhead {
            possible: cores && pattern.is_acknowledged(),
            decoder: None,
            waited: Duration::ZERO,
            took: Duration::ZERO,
            phase: Phase::Idle,
        }
    }

    /// The result of the message taken ahead, if one was.
    pub fn take_ahead(&mut self) -> Option<Next> {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Ahead(next) => Some(next),
            phase => {
                self.phase = phase;
                None
            }
        }
    }

    /// How long the receive that got the current message waited.
    pub fn set_waited(&mut self, waited: Duration) {
        self.waited = waited;
    }

    /// Whether frames wait for us (the next one was there before we finished the last):
    /// only then is decoding overlapped with receiving, so a live stream slower than one
    /// decoder gains no latency.
    pub fn should_overlap(&self, output: &Output) -> bool {
        let large = matches!(
            output.key,
            OutputKey::Decoded { width, height, .. } if width * height >= MIN_OVERLAP_PIXELS
        );
        large && self.possible && matches!(self.phase, Phase::Idle) && self.waited < self.took / 4
    }

    /// Decodes on this thread, measuring how long it takes. Only these decodes are
    /// measured: an overlapped one would count the wait for the next frame too and keep
    /// itself going.
    pub fn decode_here(
        &mut self,
        decode: impl FnOnce() -> Result<gst::Buffer, FrameError>,
    ) -> Result<gst::Buffer, FrameError> {
        let started = Instant::now();
        let buffer = decode();
        self.took = started.elapsed();
        buffer
    }

    /// Gives the frame to the decoder thread, started if need be.
    pub fn hand_over(
        &mut self,
        reader: &mut FrameReader,
        output: &Output,
        kind: &PayloadKind,
        payload: zmq::Message,
    ) -> Result<Handed, FrameError> {
        if self.decoder.is_none() {
            self.decoder = frame_decoder().ok();
        }
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(Handed::Done(reader.fill(output, kind, payload)));
        };
        let job = match reader.prepare_decode(output, kind, payload)? {
            Ok(job) => job,
            Err(payload) => return Ok(Handed::Done(reader.fill(output, kind, payload))),
        };
        decoder.submit(job).map_err(|_| decoder_lost())?;
        self.phase = Phase::Decoding;
        Ok(Handed::Decoding)
    }

    /// How long the next message may take to come while a frame decodes: one decode.
    pub fn window(&self) -> Duration {
        self.took
    }

    /// Keeps what the message taken ahead led to, for the next receive.
    pub fn keep_ahead(&mut self, next: Next) {
        self.phase = Phase::Ahead(next);
    }

    /// The buffer of the frame on the decoder thread.
    pub fn finish(&mut self) -> Result<gst::Buffer, FrameError> {
        if matches!(self.phase, Phase::Decoding) {
            self.phase = Phase::Idle;
        }
        // A decode is bounded CPU work: this wait ends without unlock()'s help.
        match self.decoder.as_mut().and_then(|d| d.next_result()) {
            Some(Ok(decoded)) => decoded,
            _ => Err(decoder_lost()),
        }
    }
}

fn decoder_lost() -> FrameError {
    FrameError::Jpeg(JpegError::Library("the decoder thread failed".into()))
}
