// SPDX-License-Identifier: MPL-2.0
//! The sink's companion thread: it owns the network side and runs the jobs the streaming
//! thread hands over (send a frame and wait for its reply, send the termination), one at
//! a time and in order, so `render` returns as soon as its frame is handed over and the
//! next frame is prepared while this one travels.
//!
//! The hand-off holds at most `capacity` jobs besides the one running: memory stays
//! bounded and a slow receiver still slows the sender. A job that fails for good makes
//! the companion sticky-failed: later hand-offs return that error (the element error was
//! posted by the job), and jobs still queued are discarded, never sent. `unlock` drops the
//! queued jobs and wakes a streaming thread waiting for room; the job running is
//! interrupted by the network waker, which the element wakes itself.
//!
//! A worker may leave work in flight after a job (a load-balanced sink's frames awaiting
//! replies): while no job waits, the thread lets it finish that work, and a hand-off rings
//! a doorbell the worker watches, so the next job starts at once.

use crate::sync::{lock, wait};
use crate::transport::Waker;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// The network side: what the companion thread owns and runs jobs with.
pub trait Worker: Send + 'static {
    type Job: Send + 'static;
    /// Runs one job. `Err(Flushing)`: interrupted, not an error of the stream;
    /// any other error is kept and returned by every later hand-off.
    fn run(&mut self, job: Self::Job) -> Result<(), gst::FlowError>;
    /// A job that will never run (flushed, or queued behind a failed one).
    fn discard(&mut self, job: Self::Job);
    /// Whether work started by earlier jobs is still in flight.
    fn in_flight(&self) -> bool {
        false
    }
    /// Carries on with the work in flight until it is done or `doorbell` rings (a job
    /// waits). Errors as for `run`.
    fn idle(&mut self, _doorbell: &Waker) -> Result<(), gst::FlowError> {
        Ok(())
    }
}

struct Slot<J> {
    queue: VecDeque<J>,
    running: bool,
    failed: Option<gst::FlowError>,
    flushing: bool,
    quit: bool,
    /// The worker is in `idle`: a hand-off rings the doorbell.
    idling: bool,
    /// An element error is being posted: hand-offs wait for it.
    posting: bool,
}

struct Shared<J> {
    slot: Mutex<Slot<J>>,
    /// Signalled on every change: a job queued or finished, unlock, quit.
    changed: Condvar,
    capacity: usize,
    /// Ends the worker's `idle` when a job is queued.
    doorbell: Waker,
}

impl<J> Shared<J> {
    fn lock(&self) -> MutexGuard<'_, Slot<J>> {
        lock(&self.slot)
    }

    fn wait<'a>(&'a self, slot: MutexGuard<'a, Slot<J>>) -> MutexGuard<'a, Slot<J>> {
        wait(&self.changed, slot)
    }
}

/// The companion thread and its hand-off.
pub struct Companion<W: Worker> {
    shared: Arc<Shared<W::Job>>,
    thread: Mutex<Option<JoinHandle<W>>>,
}

impl<W: Worker> Companion<W> {
    /// Starts the thread `name` with `worker`; at most `capacity` (≥ 1) jobs wait while
    /// one runs.
    pub fn spawn(name: &str, worker: W, capacity: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                queue: VecDeque::new(),
                running: false,
                failed: None,
                flushing: false,
                quit: false,
                idling: false,
                posting: false,
            }),
            changed: Condvar::new(),
            capacity: capacity.max(1),
            doorbell: Waker::new()?,
        });
        let thread = std::thread::Builder::new().name(name.to_owned()).spawn({
            let shared = shared.clone();
            move || companion_loop(&shared, worker)
        })?;
        Ok(Companion {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a job, waiting for room. Returns (and drops the job) the error an earlier
    /// job failed with, or `Flushing` while unlocked.
    pub fn hand_off(&self, job: W::Job) -> Result<(), gst::FlowError> {
        let mut slot = self.shared.lock();
        loop {
            if let Some(error) = slot.failed {
                return Err(error);
            }
            if slot.flushing || slot.quit {
                return Err(gst::FlowError::Flushing);
            }
            if !slot.posting && slot.queue.len() < self.shared.capacity {
                slot.queue.push_back(job);
                if slot.idling {
                    self.shared.doorbell.wake();
                }
                drop(slot);
                self.shared.changed.notify_all();
                return Ok(());
            }
            slot = self.shared.wait(slot);
        }
    }

    /// Waits until every job handed over has run; then the error one failed with, if any.
    pub fn drain(&self) -> Result<(), gst::FlowError> {
        let mut slot = self.shared.lock();
        loop {
            if slot.flushing || slot.quit {
                return Err(gst::FlowError::Flushing);
            }
            if slot.queue.is_empty() && !slot.running {
                return slot.failed.map_or(Ok(()), Err);
            }
            slot = self.shared.wait(slot);
        }
    }

    /// `unlock()`: drops the queued jobs (returned, to be discarded outside the lock) and
    /// makes every wait return `Flushing` until `unlock_stop`.
    pub fn unlock(&self) -> Vec<W::Job> {
        let mut slot = self.shared.lock();
        slot.flushing = true;
        let dropped = slot.queue.drain(..).collect();
        drop(slot);
        self.shared.changed.notify_all();
        dropped
    }

    pub fn unlock_stop(&self) {
        self.shared.lock().flushing = false;
        // The worker may have work in flight to carry on with.
        self.shared.changed.notify_all();
    }

    /// Makes the companion sticky-failed with `error` while `post` posts the element
    /// error: a hand-off meanwhile waits, so the error is on the bus before any render
    /// fails (an upstream element would post its own first) and after it every render
    /// fails.
    pub fn fail(&self, error: gst::FlowError, post: impl FnOnce()) {
        self.shared.lock().posting = true;
        post();
        let mut slot = self.shared.lock();
        slot.posting = false;
        slot.failed.get_or_insert(error);
        drop(slot);
        self.shared.changed.notify_all();
    }

    /// Ends the thread once its running job returns (the caller interrupts that job) and
    /// gives the worker back; queued jobs are discarded.
    pub fn stop(&self) -> Option<W> {
        self.shared.lock().quit = true;
        self.shared.changed.notify_all();
        let thread = lock(&self.thread).take()?;
        thread.join().ok()
    }
}

impl<W: Worker> Drop for Companion<W> {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Takes the oldest job and runs it outside the lock, until told to quit; between jobs,
/// lets the worker carry on with its work in flight.
fn companion_loop<W: Worker>(shared: &Shared<W::Job>, mut worker: W) -> W {
    loop {
        let busy = worker.in_flight();
        let (job, run) = {
            let mut slot = shared.lock();
            loop {
                if slot.quit {
                    let left: Vec<_> = slot.queue.drain(..).collect();
                    drop(slot);
                    left.into_iter().for_each(|job| worker.discard(job));
                    return worker;
                }
                if let Some(job) = slot.queue.pop_front() {
                    // Behind a failed job nothing more is sent.
                    slot.running = slot.failed.is_none();
                    let run = slot.running;
                    drop(slot);
                    // There is room now: wake a hand-off waiting for it.
                    shared.changed.notify_all();
                    break (Some(job), run);
                }
                if busy && !slot.flushing && slot.failed.is_none() {
                    slot.idling = true;
                    drop(slot);
                    let result = worker.idle(&shared.doorbell);
                    finish(shared, result, |slot| slot.idling = false);
                    shared.doorbell.reset();
                    break (None, false);
                }
                slot = shared.wait(slot);
            }
        };
        let Some(job) = job else { continue };
        if !run {
            worker.discard(job);
            shared.changed.notify_all();
            continue;
        }
        let result = worker.run(job);
        finish(shared, result, |slot| slot.running = false);
    }
}

/// After the worker's `run` or `idle`: `done` updates the slot, and an error other than
/// `Flushing` makes the companion sticky-failed.
fn finish<J>(
    shared: &Shared<J>,
    result: Result<(), gst::FlowError>,
    done: impl FnOnce(&mut Slot<J>),
) {
    let mut slot = shared.lock();
    done(&mut slot);
    if let Err(error) = result {
        if error != gst::FlowError::Flushing && slot.failed.is_none() {
            slot.failed = Some(error);
        }
    }
    drop(slot);
    shared.changed.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Records what ran and what was discarded; job 0 fails, a job over 100 sleeps.
    struct Recorder(mpsc::Sender<(bool, u32)>);

    impl Worker for Recorder {
        type Job = u32;
        fn run(&mut self, job: u32) -> Result<(), gst::FlowError> {
            if job > 100 {
                std::thread::sleep(Duration::from_millis(job.into()));
            }
            let _ = self.0.send((true, job));
            match job {
                0 => Err(gst::FlowError::Error),
                _ => Ok(()),
            }
        }
        fn discard(&mut self, job: u32) {
            let _ = self.0.send((false, job));
        }
    }

    #[test]
    fn jobs_run_in_order_and_a_failure_is_sticky() {
        let (tx, rx) = mpsc::channel();
        let companion = Companion::spawn("test-companion", Recorder(tx), 1).unwrap();
        for job in 1..=5 {
            companion.hand_off(job).unwrap();
        }
        assert_eq!(companion.drain(), Ok(()));
        let ran: Vec<_> = rx.try_iter().collect();
        assert_eq!(ran, (1..=5).map(|j| (true, j)).collect::<Vec<_>>());
        companion.hand_off(200).unwrap();
        companion.hand_off(0).unwrap();
        assert_eq!(companion.drain(), Err(gst::FlowError::Error));
        assert_eq!(companion.hand_off(7), Err(gst::FlowError::Error));
        assert!(companion.stop().is_some());
        let ran: Vec<_> = rx.try_iter().collect();
        assert_eq!(ran, vec![(true, 200), (true, 0)]);
    }

    #[test]
    fn unlock_wakes_a_full_hand_off_and_drops_the_queue() {
        let (tx, rx) = mpsc::channel();
        let companion = Arc::new(Companion::spawn("test-companion", Recorder(tx), 1).unwrap());
        companion.hand_off(300).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        companion.hand_off(301).unwrap(); // queued while 300 runs
        let waiter = std::thread::spawn({
            let c = companion.clone();
            move || c.hand_off(302)
        });
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(companion.unlock(), vec![301]);
        assert_eq!(waiter.join().unwrap(), Err(gst::FlowError::Flushing));
        companion.unlock_stop();
        companion.hand_off(3).unwrap();
        assert_eq!(companion.drain(), Ok(()));
        let ran: Vec<_> = rx.try_iter().collect();
        assert_eq!(ran, vec![(true, 300), (true, 3)]);
    }

    /// A hand-off during the post waits for it and then fails: the element error is on
    /// the bus before any render fails.
    #[test]
    fn a_hand_off_during_a_failure_waits_for_the_post_and_fails() {
        let (tx, _rx) = mpsc::channel();
        let companion = Arc::new(Companion::spawn("test-companion", Recorder(tx), 1).unwrap());
        let posted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waiter = std::thread::spawn({
            let (c, posted) = (companion.clone(), posted.clone());
            move || {
                std::thread::sleep(Duration::from_millis(50));
                let result = c.hand_off(1);
                (result, posted.load(std::sync::atomic::Ordering::SeqCst))
            }
        });
        companion.fail(gst::FlowError::Error, || {
            std::thread::sleep(Duration::from_millis(200));
            posted.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert_eq!(waiter.join().unwrap(), (Err(gst::FlowError::Error), true));
    }
}
