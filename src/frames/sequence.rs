// SPDX-License-Identifier: MPL-2.0
//! The receiver's check of our sink's frame numbering (`protocol::Sequence`): a frame is
//! delivered only if it is newer than the last one delivered from its stream. After a
//! cable pull the sink sends the frame in flight again on a new connection, and an
//! abandoned connection may still deliver its copy; either one that comes second, or an
//! old frame that comes after newer ones, is dropped.

use netgear_protocol::Sequence;
use std::collections::VecDeque;
use std::fmt;

/// How many senders' streams are remembered (multi-server: one per server; a restarted
/// sender starts a new one). Bounded, as stream ids come from the network: the stream
/// heard from longest ago is forgotten first.
const MAX_STREAMS: usize = 64;

/// The last number delivered per stream, the stream heard from last first.
#[derive(Debug, Default)]
pub struct SequenceCheck {
    streams: VecDeque<(u64, u64)>,
}

/// A frame that is not newer than one already delivered from its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeated {
    pub sequence: Sequence,
    /// The number of the last frame delivered from that stream.
    pub last: u64,
}

impl fmt::Display for Repeated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frame {} of stream {:016x}: frame {} was delivered already (a copy sent again, or one delayed)",
            self.sequence.number, self.sequence.stream, self.last
        )
    }
}

impl SequenceCheck {
    /// Whether a frame may be delivered: frames without a number (vidgear's) always may;
    /// a numbered one is remembered as its stream's last if it is newer.
    pub fn admit(&mut self, sequence: Option<Sequence>) -> Result<(), Repeated> {
        let Some(sequence) = sequence else {
            return Ok(());
        };
        let known = self.streams.iter().position(|(s, _)| *s == sequence.stream);
        let last = known.and_then(|i| self.streams.remove(i)).map(|(_, n)| n);
        match last {
            Some(last) if sequence.number <= last => {
                self.streams.push_front((sequence.stream, last));
                Err(Repeated { sequence, last })
            }
            _ => {
                self.streams.truncate(MAX_STREAMS - 1);
                self.streams.push_front((sequence.stream, sequence.number));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u64, number: u64) -> Option<Sequence> {
        Some(Sequence { stream, number })
    }

    #[test]
    fn a_copy_or_an_older_frame_is_refused_and_newer_ones_pass() {
        let mut check = SequenceCheck::default();
        assert!(check.admit(frame(1, 5)).is_ok());
        let copy = check.admit(frame(1, 5)).unwrap_err();
        assert_eq!(copy.last, 5);
        assert!(copy
            .to_string()
            .contains("frame 5 of stream 0000000000000001"));
        assert!(check.admit(frame(1, 9)).is_ok());
        assert_eq!(check.admit(frame(1, 6)).unwrap_err().last, 9);
        assert!(check.admit(frame(1, 10)).is_ok());
    }

    #[test]
    fn frames_without_a_number_and_other_streams_are_not_held_back() {
        let mut check = SequenceCheck::default();
        assert!(check.admit(frame(1, 100)).is_ok());
        assert!(check.admit(None).is_ok());
        assert!(check.admit(None).is_ok());
        // A restarted sender starts again from 0 under a new id.
        assert!(check.admit(frame(2, 0)).is_ok());
        assert!(check.admit(frame(1, 100)).is_err());
        assert!(check.admit(frame(2, 0)).is_err());
    }

    #[test]
    fn streams_are_bounded_and_the_one_heard_from_longest_ago_is_forgotten() {
        let mut check = SequenceCheck::default();
        for stream in 0..MAX_STREAMS as u64 {
            assert!(check.admit(frame(stream, 3)).is_ok());
        }
        // Stream 0 is heard from again, so stream 1 is now the oldest.
        assert!(check.admit(frame(0, 3)).is_err());
        assert!(check.admit(frame(1000, 0)).is_ok());
        assert_eq!(check.streams.len(), MAX_STREAMS);
        assert!(check.admit(frame(1, 3)).is_ok(), "stream 1 was forgotten");
        assert!(check.admit(frame(0, 3)).is_err(), "stream 0 was kept");
    }
}
