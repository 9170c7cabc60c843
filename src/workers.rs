// SPDX-License-Identifier: MPL-2.0
//! An ordered worker pool, and the JPEG encoding jobs for it: frame-level parallel work with
//! results handed back strictly in submission order. No GStreamer here (the source's
//! decoding job, which writes into GStreamer buffers, lives in `frames`).
//!
//! Each of N threads owns its state (e.g. an [`Encoder`]) made by `init` in that
//! thread. [`OrderedPool::submit`] blocks only while N jobs are unfinished;
//! [`OrderedPool::next_result`] and [`OrderedPool::try_next`] return results in the order
//! the jobs were submitted. A panicking job comes back as [`PoolError::Panicked`] in its
//! place (the worker makes itself a fresh state and goes on); a waiting caller can be woken
//! from another thread with an [`Interrupter`]; dropping the pool joins its threads.

use crate::jpeg::{Colorspace, EncodeParams, Encoder, Image, JpegError, SharedYuv, YuvScratch};
use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// Input bytes a job shares with its submitter: a `Vec<u8>`, or a mapped GStreamer buffer.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Why a job has no result of its own, or why a wait ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolError {
    /// The job's work panicked (the panic's message): its result is this error.
    Panicked(String),
    /// An [`Interrupter`] woke the waiting caller; the pending jobs stay pending.
    Interrupted,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Panicked(message) => write!(f, "worker panicked: {message}"),
            PoolError::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for PoolError {}

/// What the caller and the workers share, under one lock.
struct State<J, O> {
    /// Jobs not yet taken by a worker, with their sequence numbers.
    queue: VecDeque<(u64, J)>,
    /// One slot per pending job, oldest first: `None` until its worker has finished.
    results: VecDeque<Option<Result<O, PoolError>>>,
    /// Sequence number of `results[0]`.
    first: u64,
    /// Sequence number the next submitted job gets.
    next: u64,
    /// Jobs queued or running (the bound `submit` waits on).
    unfinished: usize,
    interrupted: bool,
    shutdown: bool,
}

struct Shared<J, O> {
    state: Mutex<State<J, O>>,
    /// Signalled when a job is queued or on shutdown.
    jobs: Condvar,
    /// Signalled when a job finishes or on interrupt.
    done: Condvar,
}

impl<J, O> Shared<J, O> {
    fn lock(&self) -> MutexGuard<'_, State<J, O>> {
        // Work runs outside the lock, so a poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wakes a caller waiting in [`OrderedPool::submit`] or [`OrderedPool::next_result`] from
/// another thread (GStreamer's `unlock`), until [`Interrupter::resume`] (`unlock_stop`).
pub struct Interrupter {
    wake: Arc<dyn Fn(bool) + Send + Sync>,
}

impl Interrupter {
    /// Every wait returns [`PoolError::Interrupted`] from now until `resume`.
    pub fn interrupt(&self) {
        (self.wake)(true);
    }

    pub fn resume(&self) {
        (self.wake)(false);
    }
}

impl Clone for Interrupter {
    fn clone(&self) -> Self {
        Interrupter {
            wake: Arc::clone(&self.wake),
        }
    }
}

/// N worker threads with their own state; results in submission order.
pub struct OrderedPool<J, O> {
    shared: Arc<Shared<J, O>>,
    threads: Vec<JoinHandle<()>>,
}

impl<J: Send + 'static, O: Send + 'static> OrderedPool<J, O> {
    /// Starts `workers` (at least one) threads named `name-N`; each makes its state with
    /// `init` in its own thread and runs `work(&mut state, job)` for each job it takes.
    pub fn new<S, I, W>(name: &str, workers: usize, init: I, work: W) -> std::io::Result<Self>
    where
        S: 'static,
        I: Fn() -> S + Send + Sync + 'static,
        W: Fn(&mut S, J) -> O + Send + Sync + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                results: VecDeque::new(),
                first: 0,
                next: 0,
                unfinished: 0,
                interrupted: false,
                shutdown: false,
            }),
            jobs: Condvar::new(),
            done: Condvar::new(),
        });
        let mut pool = OrderedPool {
            shared,
            threads: Vec::new(),
        };
        let init = Arc::new(init);
        let work = Arc::new(work);
        for index in 0..workers.max(1) {
            let (shared, init, work) = (pool.shared.clone(), init.clone(), work.clone());
            // On error `pool` drops here and joins the threads already started.
            let thread = std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || worker_loop(&shared, &*init, &*work))?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Jobs submitted whose results have not been handed out yet.
    pub fn pending(&self) -> usize {
        self.shared.lock().results.len()
    }

    /// Queues a job; blocks while `workers()` jobs are unfinished (queued or running).
    /// Finished results wait for `next_result`/`try_next` (or [`Results::take`]) and never
    /// block a submit. Returns the job's sequence number. `Err(Interrupted)` (the job
    /// dropped) only when it would have to wait.
    pub fn submit(&mut self, job: J) -> Result<u64, PoolError> {
        let mut state = self.shared.lock();
        while state.unfinished >= self.threads.len() {
            if state.interrupted {
                return Err(PoolError::Interrupted);
            }
            state = self.wait(state);
        }
        let seq = state.next;
        state.next += 1;
        state.unfinished += 1;
        state.queue.push_back((seq, job));
        state.results.push_back(None);
        drop(state);
        self.shared.jobs.notify_one();
        Ok(seq)
    }

    /// The oldest job's result, waiting for it; `None` when no job is pending;
    /// `Some(Err(Interrupted))` when interrupted while waiting (the job stays pending).
    pub fn next_result(&mut self) -> Option<Result<O, PoolError>> {
        let mut state = self.shared.lock();
        loop {
            match state.results.front() {
                None => return None,
                Some(Some(_)) => return take_front(&mut state),
                Some(None) if state.interrupted => return Some(Err(PoolError::Interrupted)),
                Some(None) => state = self.wait(state),
            }
        }
    }

    /// The oldest job's result if it has finished; never waits.
    pub fn try_next(&mut self) -> Option<Result<O, PoolError>> {
        let mut state = self.shared.lock();
        match state.results.front() {
            Some(Some(_)) => take_front(&mut state),
            _ => None,
        }
    }

    /// Drops every pending job: queued ones are not run, running ones' results discarded.
    pub fn flush(&mut self) {
        let mut state = self.shared.lock();
        let dropped = state.queue.len();
        state.queue.clear();
        state.unfinished -= dropped;
        state.first = state.next;
        state.results.clear();
        drop(state);
        self.shared.done.notify_all();
    }

    /// A handle that takes results on another thread than the one that submits.
    pub fn results(&self) -> Results<J, O> {
        Results {
            shared: self.shared.clone(),
        }
    }

    /// A handle that wakes this pool's waiting caller from another thread.
    pub fn interrupter(&self) -> Interrupter {
        let shared = self.shared.clone();
        Interrupter {
            wake: Arc::new(move |on| {
                shared.lock().interrupted = on;
                shared.done.notify_all();
            }),
        }
    }

    fn wait<'a>(&'a self, state: MutexGuard<'a, State<J, O>>) -> MutexGuard<'a, State<J, O>> {
        self.shared
            .done
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The results side of a pool, for a consumer on another thread than the submitter: it
/// asks for a job by the sequence number `submit` gave it, so results of jobs nobody asks
/// for any more (their frames were flushed) are discarded on the way instead of being
/// mistaken for later ones.
pub struct Results<J, O> {
    shared: Arc<Shared<J, O>>,
}

impl<J, O> Results<J, O> {
    /// The result of job `seq`, waiting for it; results of older jobs still pending are
    /// dropped. `None`: that job's result is gone (taken, flushed or never submitted).
    /// `Some(Err(Interrupted))` when interrupted or the pool shuts down while waiting.
    pub fn take(&self, seq: u64) -> Option<Result<O, PoolError>> {
        let mut state = self.shared.lock();
        while state.first < seq && !state.results.is_empty() {
            state.results.pop_front();
            state.first += 1;
        }
        if state.first != seq {
            return None;
        }
        loop {
            match state.results.front() {
                None => return None,
                Some(Some(_)) => return take_front(&mut state),
                Some(None) if state.interrupted || state.shutdown => {
                    return Some(Err(PoolError::Interrupted))
                }
                Some(None) => {
                    state = self
                        .shared
                        .done
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        }
    }
}

fn take_front<J, O>(state: &mut State<J, O>) -> Option<Result<O, PoolError>> {
    let result = state.results.pop_front().flatten();
    state.first += 1;
    result
}

impl<J, O> Drop for OrderedPool<J, O> {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.jobs.notify_all();
        self.shared.done.notify_all();
        for thread in self.threads.drain(..) {
            // A worker never panics out of its loop (jobs run under catch_unwind).
            let _ = thread.join();
        }
    }
}

/// One worker: take the oldest queued job, run it outside the lock, file its result.
fn worker_loop<J, O, S>(
    shared: &Shared<J, O>,
    init: &dyn Fn() -> S,
    work: &dyn Fn(&mut S, J) -> O,
) {
    let mut worker_state: Option<S> = None;
    loop {
        let (seq, job) = {
            let mut state = shared.lock();
            loop {
                if state.shutdown {
                    return;
                }
                if let Some(job) = state.queue.pop_front() {
                    break job;
                }
                state = shared
                    .jobs
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            let worker_state = worker_state.get_or_insert_with(init);
            work(worker_state, job)
        }));
        let result = result.map_err(|panic| {
            // The state may be half-updated: the next job gets a fresh one.
            worker_state = None;
            PoolError::Panicked(panic_message(&*panic))
        });
        let mut state = shared.lock();
        state.unfinished -= 1;
        // A flush may have dropped this job's slot in the meantime.
        if let Some(slot) = seq
            .checked_sub(state.first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| state.results.get_mut(i))
        {
            *slot = Some(result);
        }
        drop(state);
        shared.done.notify_all();
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// One raw frame to encode.
pub struct EncodeJob {
    pub image: JobImage,
    pub params: EncodeParams,
}

/// The pixels of a job.
pub enum JobImage {
    /// `height` rows of `pitch` bytes in `colorspace`'s layout.
    Packed {
        pixels: SharedBytes,
        width: usize,
        height: usize,
        pitch: usize,
        colorspace: Colorspace,
    },
    /// Y'CbCr planes, encoded without colour conversion.
    Yuv(SharedYuv),
}

/// The JPEG of one frame, or why it could not be encoded.
pub type EncodeResult = Result<Vec<u8>, JpegError>;

/// A worker's encoder, and the buffers it encodes into and from (kept across frames).
pub struct EncodeWorker {
    encoder: Result<Encoder, JpegError>,
    scratch: Vec<u8>,
    planes: YuvScratch,
}

impl EncodeWorker {
    pub fn new() -> EncodeWorker {
        EncodeWorker {
            encoder: Encoder::new(),
            scratch: Vec::new(),
            planes: YuvScratch::default(),
        }
    }

    pub fn encode(&mut self, job: EncodeJob) -> EncodeResult {
        let encoder = self.encoder.as_mut().map_err(|e| e.clone())?;
        match &job.image {
            JobImage::Packed {
                pixels,
                width,
                height,
                pitch,
                colorspace,
            } => {
                let image = Image {
                    pixels: (**pixels).as_ref(),
                    width: *width,
                    height: *height,
                    pitch: *pitch,
                    colorspace: *colorspace,
                };
                encoder.encode(image, job.params, &mut self.scratch)?;
            }
            JobImage::Yuv(planes) => {
                let image = planes.image();
                encoder.encode_yuv(&image, job.params, &mut self.planes, &mut self.scratch)?;
            }
        }
        // An exact-size copy: the scratch keeps its worst-case capacity for the next frame.
        Ok(self.scratch.clone())
    }
}

impl Default for EncodeWorker {
    fn default() -> Self {
        EncodeWorker::new()
    }
}

/// `workers` threads encoding frames to JPEG, in order.
pub fn jpeg_encoder_pool(workers: usize) -> std::io::Result<OrderedPool<EncodeJob, EncodeResult>> {
    OrderedPool::new(
        "netgear-jpegenc",
        workers,
        EncodeWorker::new,
        EncodeWorker::encode,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    /// A pool whose job `i` sleeps a pseudo-random 0..4 ms and returns `i`.
    fn sleepy_pool(workers: usize) -> OrderedPool<u64, u64> {
        OrderedPool::new(
            "test",
            workers,
            || (),
            |_: &mut (), i: u64| {
                let ms = (i.wrapping_mul(2_654_435_761) >> 7) % 5;
                std::thread::sleep(std::time::Duration::from_millis(ms));
                i
            },
        )
        .unwrap()
    }

    #[test]
    fn results_keep_submission_order_under_random_durations() {
        let mut pool = sleepy_pool(3);
        let mut got = Vec::new();
        for i in 0..60 {
            pool.submit(i).unwrap();
            while let Some(r) = pool.try_next() {
                got.push(r.unwrap());
            }
        }
        while let Some(r) = pool.next_result() {
            got.push(r.unwrap());
        }
        assert_eq!(got, (0..60).collect::<Vec<_>>());
        assert_eq!(pool.pending(), 0);
        assert!(pool.next_result().is_none() && pool.try_next().is_none());
    }

    #[test]
    fn results_taken_by_number_skip_the_ones_nobody_asks_for() {
        let mut pool = sleepy_pool(2);
        let results = pool.results();
        let seqs: Vec<u64> = (10..14).map(|i| pool.submit(i).unwrap()).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3]);
        assert_eq!(results.take(1), Some(Ok(11)), "job 0's result is skipped");
        assert_eq!(results.take(0), None, "gone");
        assert_eq!(results.take(3), Some(Ok(13)));
        assert_eq!(results.take(4), None, "never submitted");
        assert_eq!(pool.pending(), 0);
    }

    /// How many jobs ran at the same time, at most, with `workers` threads.
    fn most_at_once(workers: usize) -> usize {
        let (active, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, m) = (active.clone(), most.clone());
        let mut pool = OrderedPool::new(
            "test",
            workers,
            || (),
            move |_: &mut (), i: u64| {
                let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(2));
                a.fetch_sub(1, Ordering::SeqCst);
                i
            },
        )
        .unwrap();
        for i in 0..12 {
            pool.submit(i).unwrap();
        }
        let got: Vec<u64> = std::iter::from_fn(|| pool.next_result())
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, (0..12).collect::<Vec<_>>());
        most.load(Ordering::SeqCst)
    }

    #[test]
    fn one_worker_runs_jobs_in_series_and_n_never_more_than_n() {
        assert_eq!(most_at_once(1), 1);
        assert!(most_at_once(2) <= 2);
    }

    #[test]
    fn errors_and_panics_come_back_in_place_and_the_pool_goes_on() {
        let inits = Arc::new(AtomicUsize::new(0));
        let counted = inits.clone();
        let init = move || counted.fetch_add(1, Ordering::SeqCst);
        let mut pool = OrderedPool::new("test", 1, init, |_: &mut usize, i: u32| {
            assert_ne!(i, 5, "job five fails");
            if i % 2 == 1 {
                Err(format!("odd {i}"))
            } else {
                Ok(i)
            }
        })
        .unwrap();
        for i in 0..8 {
            pool.submit(i).unwrap();
        }
        let got: Vec<_> = std::iter::from_fn(|| pool.next_result()).collect();
        assert_eq!(got.len(), 8);
        for (i, r) in got.into_iter().enumerate() {
            match (i, r) {
                (5, Err(PoolError::Panicked(m))) => assert!(m.contains("job five fails"), "{m}"),
                (i, Ok(Err(e))) if i % 2 == 1 => assert_eq!(e, format!("odd {i}")),
                (i, Ok(Ok(v))) => assert_eq!(v as usize, i),
                (i, r) => panic!("job {i}: {r:?}"),
            }
        }
        // The worker replaced the state the panic may have broken.
        assert_eq!(inits.load(Ordering::SeqCst), 2);
    }

    /// Counts the worker states that were dropped, i.e. whose thread ended.
    struct Tracked(Arc<AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn drop_joins_every_thread_and_frees_their_state() {
        let (made, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (m, e) = (made.clone(), ended.clone());
        let init = move || {
            m.fetch_add(1, Ordering::SeqCst);
            Tracked(e.clone())
        };
        let mut pool = OrderedPool::new("test", 3, init, |_: &mut Tracked, i: u8| i).unwrap();
        for i in 0..3 {
            pool.submit(i).unwrap();
        }
        assert_eq!(pool.next_result(), Some(Ok(0)));
        drop(pool); // two results never collected
                    // Each state lives in its thread's loop: all dropped means all loops ended, and
                    // the closures the threads held are gone too.
        assert!(made.load(Ordering::SeqCst) >= 1);
        assert_eq!(ended.load(Ordering::SeqCst), made.load(Ordering::SeqCst));
        assert_eq!(Arc::strong_count(&ended), 1);
        assert_eq!(Arc::strong_count(&made), 1);
    }

    /// A one-worker pool whose jobs wait until the test lets them go.
    fn gated_pool() -> (OrderedPool<u8, u8>, mpsc::Sender<()>) {
        let (go, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let pool = OrderedPool::new(
            "test",
            1,
            || (),
            move |_: &mut (), i: u8| {
                let _ = gate.lock().unwrap().recv();
                i
            },
        )
        .unwrap();
        (pool, go)
    }

    #[test]
    fn an_interrupter_wakes_a_waiting_caller_until_resume() {
        let (mut pool, go) = gated_pool();
        pool.submit(1).unwrap();
        let interrupter = pool.interrupter();
        let waker = std::thread::spawn({
            let interrupter = interrupter.clone();
            move || interrupter.interrupt()
        });
        // The job cannot finish before `go`: only the interrupt ends these waits.
        assert_eq!(pool.next_result(), Some(Err(PoolError::Interrupted)));
        waker.join().unwrap();
        assert_eq!(
            pool.submit(2),
            Err(PoolError::Interrupted),
            "one job is in flight"
        );
        interrupter.resume();
        go.send(()).unwrap();
        assert_eq!(pool.next_result(), Some(Ok(1)));
        pool.submit(3).unwrap();
        go.send(()).unwrap();
        assert_eq!(pool.next_result(), Some(Ok(3)));
        assert_eq!(pool.next_result(), None);
    }

    #[test]
    fn flush_drops_pending_jobs_and_late_results() {
        let (mut pool, go) = gated_pool();
        pool.submit(1).unwrap();
        pool.flush();
        assert_eq!(pool.pending(), 0);
        go.send(()).unwrap();
        pool.submit(2).unwrap();
        go.send(()).unwrap();
        assert_eq!(
            pool.next_result(),
            Some(Ok(2)),
            "the flushed job's result is not seen"
        );
        assert_eq!(pool.next_result(), None);
    }

    fn frame(idx: usize, width: usize, height: usize) -> Vec<u8> {
        (0..width * height * 3)
            .map(|i| ((i / 3 % width + i / 3 / width + idx * 9 + i % 3 * 40) % 200) as u8)
            .collect()
    }

    /// Six 96x40 BGR frames through a two-worker encoder pool, checked against the encoder.
    fn pooled_jpegs() -> Vec<Vec<u8>> {
        let bgr = Colorspace::from_name("BGR").unwrap();
        let params = EncodeParams {
            quality: 90,
            fast_dct: true,
        };
        let (w, h) = (96, 40);
        let mut encoders = jpeg_encoder_pool(2).unwrap();
        let mut serial = EncodeWorker::new();
        let mut expected = Vec::new();
        for idx in 0..6 {
            let pixels: SharedBytes = Arc::new(frame(idx, w, h));
            let job = || EncodeJob {
                image: JobImage::Packed {
                    pixels: pixels.clone(),
                    width: w,
                    height: h,
                    pitch: w * 3,
                    colorspace: bgr,
                },
                params,
            };
            expected.push(serial.encode(job()).unwrap());
            encoders.submit(job()).unwrap();
        }
        let jpegs: Vec<Vec<u8>> = std::iter::from_fn(|| encoders.next_result())
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(jpegs, expected);
        jpegs
    }

    #[test]
    fn encoder_pool_encodes_like_the_encoder_in_order() {
        assert_eq!(pooled_jpegs().len(), 6);
    }
}
