// SPDX-License-Identifier: MPL-2.0
//! What ssh prints on stderr, read line by line within bounds: the last lines for errors,
//! the lines not yet collected for the element's log.

use crate::sync::lock;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::ChildStderr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// How many of ssh's most recent stderr lines an error quotes.
const KEPT_LINES: usize = 12;
/// Longest stderr line kept (ssh's messages are short; anything longer is cut).
const MAX_LINE: usize = 400;
/// How many not yet collected stderr lines [`StderrLog::take_pending`] holds.
const MAX_PENDING: usize = 64;

/// ssh's stderr: the last lines (for errors) and those not yet collected (for logs).
#[derive(Default)]
pub(super) struct StderrLog {
    recent: VecDeque<String>,
    pending: VecDeque<String>,
    dropped: u64,
}

impl StderrLog {
    fn push(&mut self, line: String) {
        if self.recent.len() == KEPT_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(line.clone());
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
            self.dropped += 1;
        }
        self.pending.push_back(line);
    }

    /// The last lines on one line, for an error message.
    pub(super) fn summary(&self) -> String {
        self.recent.iter().cloned().collect::<Vec<_>>().join("; ")
    }

    /// The lines since the last call, led by a note of how many were dropped meanwhile.
    pub(super) fn take_pending(&mut self) -> Vec<String> {
        let mut lines: Vec<String> = self.pending.drain(..).collect();
        if self.dropped > 0 {
            lines.insert(
                0,
                format!("({} earlier ssh messages dropped)", self.dropped),
            );
            self.dropped = 0;
        }
        lines
    }
}

/// Reads ssh's stderr line by line (bounded), until ssh and anything it started close it.
pub(super) fn read_stderr(stderr: ChildStderr, log: Arc<Mutex<StderrLog>>, done: mpsc::Sender<()>) {
    let mut reader = BufReader::new(stderr);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.by_ref().take(64 * 1024).read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&raw);
        let line: String = text.trim().chars().take(MAX_LINE).collect();
        if !line.is_empty() {
            lock(&log).push(line);
        }
    }
    let _ = done.send(());
}
