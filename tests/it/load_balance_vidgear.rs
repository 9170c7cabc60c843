// SPDX-License-Identifier: MPL-2.0
//! Issue 22: a multi-client req-rep sink in front of real vidgear receivers (workers whose
//! application takes a set time per frame, tests/python/netgear_worker.py), handing frames
//! out in turn or load-balanced; receivers that start late, die or come up at the end;
//! `netgear-return` naming the frame it answers. Counts, order and message fields only.
//!
//! A vidgear receiver answers a frame as soon as it reads it and queues up to 96 for its
//! application, dropping the queue when the termination comes; a worker reports what its
//! application took and what was still queued, which together are what reached it.

use crate::common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const W: usize = 32;
const H: usize = 8;
/// The timestamp step of the test frames.
const PTS_STEP_MS: u64 = 10;

/// What one vidgear worker took: its application's frames, then those vidgear still held.
struct Report {
    consumed: Vec<u64>,
    queued: Vec<u64>,
    terminated: bool,
}

impl Report {
    /// Every frame that reached the worker, in the order it arrived.
    fn reached(&self) -> Vec<u64> {
        [self.consumed.as_slice(), self.queued.as_slice()].concat()
    }
}

/// A running tests/python/netgear_worker.py.
struct Worker {
    port: u16,
    peer: Peer,
    consumed: Vec<u64>,
}

impl Worker {
    /// Starts a worker taking `delay_ms` per frame and returning its port with each reply;
    /// waits until it is bound.
    fn start(port: u16, delay_ms: u64) -> Worker {
        let worker = Worker::spawn(port, delay_ms);
        worker.peer.wait_ready(Duration::from_secs(30));
        worker
    }

    fn spawn(port: u16, delay_ms: u64) -> Worker {
        let args = flag_args(&[
            ("port", port.to_string()),
            ("delay", format!("{}", delay_ms as f64 / 1000.0)),
            ("return", port.to_string()),
        ]);
        Worker {
            port,
            peer: Peer::script("netgear_worker.py", &args),
            consumed: Vec::new(),
        }
    }

    /// Whether the worker printed READY by now (without waiting).
    fn is_ready(&self) -> bool {
        self.peer.printed_line().as_deref() == Some("READY")
    }

    /// How many frames its application has taken so far (without waiting).
    fn consumed_so_far(&mut self) -> usize {
        while let Some(line) = self.peer.printed_line() {
            self.consumed.extend(got_index(&line));
        }
        self.consumed.len()
    }

    /// Reads `GOT` lines until the closing report.
    fn report(&mut self, timeout: Duration) -> Report {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .peer
                .line(left)
                .unwrap_or_else(|| panic!("worker on {} printed no report", self.port));
            if let Some(idx) = got_index(&line) {
                self.consumed.push(idx);
                continue;
            }
            self.peer.wait_exit();
            let v: Value = serde_json::from_str(&line).expect("a JSON report");
            let list = |key: &str| -> Vec<u64> {
                v[key]
                    .as_array()
                    .map(|a| a.iter().map(|x| x.as_u64().unwrap()).collect())
                    .unwrap_or_default()
            };
            let report = Report {
                consumed: list("consumed"),
                queued: list("queued"),
                terminated: v["terminated"] == true,
            };
            assert_eq!(
                report.consumed, self.consumed,
                "GOT lines and report differ"
            );
            return report;
        }
    }

    /// Kills the worker; returns what its application had taken.
    fn kill(&mut self) -> Vec<u64> {
        self.peer.kill();
        while let Some(line) = self.peer.line(Duration::from_millis(500)) {
            self.consumed.extend(got_index(&line));
        }
        self.consumed.clone()
    }
}

fn got_index(line: &str) -> Option<u64> {
    line.strip_prefix("GOT ")?.split(' ').next()?.parse().ok()
}

/// `appsrc ! netgearsink multi-client=true pattern=1` to `ports`, raw BGR.
fn multi_client_sender(ports: &[u16], load_balance: bool) -> Sender {
    let sender = Sender::raw(
        VideoFormat::Bgr,
        W as u32,
        H as u32,
        &[
            ("ports", &port_list(ports)),
            ("address", "127.0.0.1"),
            ("multi-client", "true"),
            ("pattern", "1"),
            ("jpeg-compression", "false"),
            ("load-balance", if load_balance { "true" } else { "false" }),
        ],
    );
    sender.play();
    sender
}

/// Frame `idx`: its index in the first 4 bytes; with `stamped`, PTS idx × 10 ms and offset
/// idx, else neither.
fn push_frame(sender: &Sender, idx: u64, stamped: bool) {
    let mut data = vec![0u8; W * H * 3];
    data[..4].copy_from_slice(&(idx as u32).to_le_bytes());
    let mut buffer = gst::Buffer::from_mut_slice(data);
    if stamped {
        let b = buffer.get_mut().expect("writable");
        b.set_pts(gst::ClockTime::from_mseconds(idx * PTS_STEP_MS));
        b.set_offset(idx);
    }
    sender.appsrc.push_buffer(buffer).expect("frame taken");
}

/// Pushes frames `0..n`, one every `gap` (zero: as fast as the sink takes them), calling
/// `between(idx)` before each.
fn push_frames(sender: &Sender, n: u64, gap: Duration, mut between: impl FnMut(u64)) {
    let start = Instant::now();
    for idx in 0..n {
        between(idx);
        let due = start + gap * idx as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        push_frame(sender, idx, true);
    }
}

/// Every frame `0..n` answered by exactly one worker; returns the offsets each port
/// answered, in the order of its replies (the order the sink sent them to it: a receiver
/// has one frame in flight at most).
fn each_answered_once(sender: &Sender, n: u64) -> BTreeMap<u16, Vec<u64>> {
    let mut per_port: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    for r in sender.posted.named("netgear-return") {
        let offset = r.get::<u64>("offset").expect("offset on netgear-return");
        let pts = r.get::<u64>("pts").expect("pts on netgear-return");
        assert_eq!(pts, offset * PTS_STEP_MS * 1_000_000, "{r}");
        let port = r.get::<u32>("port").expect("port on netgear-return") as u16;
        let data = r.get::<String>("data").expect("data");
        assert_eq!(data, port.to_string(), "a worker returns its port");
        per_port.entry(port).or_default().push(offset);
    }
    let mut all: Vec<u64> = per_port.values().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>(), "each frame answered once");
    per_port
}

/// A live worker got exactly the frames the sink had answered for it, in sending order.
fn assert_reached(port: u16, report: &Report, answered: &BTreeMap<u16, Vec<u64>>) {
    assert!(report.terminated, "worker {port} was not terminated");
    let expected = answered.get(&port).cloned().unwrap_or_default();
    assert_eq!(report.reached(), expected, "worker {port}");
}

fn order_name(load_balance: bool) -> &'static str {
    if load_balance {
        "load-balanced"
    } else {
        "round robin"
    }
}

#[test]
fn load_balanced_workers_get_frames_in_proportion_to_their_speed() {
    let ports = free_ports(3);
    // 100, 33 and 10 frames per second.
    let delays = [10, 30, 100];
    let mut workers: Vec<Worker> = ports
        .iter()
        .zip(delays)
        .map(|(p, d)| Worker::start(*p, d))
        .collect();
    let sender = multi_client_sender(&ports, true);
    let n = 800;
    push_frames(&sender, n, Duration::ZERO, |_| {});
    sender.finish_expect_eos(Duration::from_secs(60));
    let answered = each_answered_once(&sender, n);
    let mut counts = Vec::new();
    for worker in &mut workers {
        let report = worker.report(Duration::from_secs(30));
        assert_reached(worker.port, &report, &answered);
        counts.push(report.reached().len());
    }
    // Each worker's 96-frame queue fills first; after that, frames follow speed.
    assert!(
        counts[0] > counts[1] && counts[1] > counts[2],
        "faster workers get more: {counts:?}"
    );
    assert!(counts[0] >= 2 * counts[2], "{counts:?}");
    let stats = sender.stats();
    assert_eq!(stats.get::<u64>("frames").unwrap(), n, "{stats}");
    assert_eq!(stats.get::<u64>("receivers-down").unwrap(), 0, "{stats}");
}

#[test]
fn round_robin_keeps_the_strict_turn() {
    let ports = free_ports(3);
    let mut workers: Vec<Worker> = ports.iter().map(|p| Worker::start(*p, 0)).collect();
    let sender = multi_client_sender(&ports, false);
    // Every socket connects before the first frame: the turn starts at the first port.
    std::thread::sleep(Duration::from_millis(1500));
    let n = 30;
    push_frames(&sender, n, Duration::from_millis(10), |_| {});
    sender.finish_expect_eos(Duration::from_secs(20));
    let answered = each_answered_once(&sender, n);
    for (k, worker) in workers.iter_mut().enumerate() {
        let report = worker.report(Duration::from_secs(20));
        assert_reached(worker.port, &report, &answered);
        let turn: Vec<u64> = (0..n).filter(|i| *i as usize % 3 == k).collect();
        assert_eq!(answered[&worker.port], turn, "worker {k} in turn");
    }
}

#[test]
fn a_worker_that_starts_late_is_fed_once_up() {
    for load_balance in [false, true] {
        let order = order_name(load_balance);
        let ports = free_ports(3);
        let mut workers: Vec<Worker> = ports[..2].iter().map(|p| Worker::start(*p, 5)).collect();
        let sender = multi_client_sender(&ports, load_balance);
        let n = 400;
        let mut late: Option<Worker> = None;
        let mut up_at = None;
        let mut early = 0;
        push_frames(&sender, n, Duration::from_millis(10), |idx| {
            if idx == 150 {
                early = workers.iter_mut().map(Worker::consumed_so_far).sum();
                late = Some(Worker::spawn(ports[2], 5));
            }
            if up_at.is_none() && late.as_ref().is_some_and(Worker::is_ready) {
                up_at = Some(idx);
            }
        });
        let up_at = up_at.unwrap_or_else(|| panic!("{order}: the late worker never bound"));
        // Not held up by the missing one: most of the first 150 frames were taken already.
        assert!(
            early >= 50,
            "{order}: {early} of 150 frames taken before it started"
        );
        sender.finish_expect_eos(Duration::from_secs(30));
        workers.push(late.expect("started"));
        let answered = each_answered_once(&sender, n);
        for worker in &mut workers {
            let report = worker.report(Duration::from_secs(20));
            assert_reached(worker.port, &report, &answered);
        }
        for port in &ports[..2] {
            assert!(
                answered[port][0] < 10,
                "{order}: {port} fed from the start: {:?}",
                &answered[port][..3]
            );
        }
        let fed_late = answered.get(&ports[2]).cloned().unwrap_or_default();
        assert!(
            fed_late.len() as u64 >= (n - up_at) / 6,
            "{order}: the late worker (up at frame {up_at}) got {} frames",
            fed_late.len()
        );
        // Fed within a second of coming up (a frame or two may have waited in the sink).
        let first = fed_late[0];
        assert!(
            first + 3 >= up_at && first < up_at + 100,
            "{order}: up at frame {up_at}, first fed frame {first}"
        );
        let connected = sender.posted.named("netgear-connected");
        assert!(
            connected
                .iter()
                .any(|m| m.get::<u32>("port").ok() == Some(u32::from(ports[2]))),
            "{order}: no netgear-connected for the late worker"
        );
    }
}

#[test]
fn a_worker_killed_mid_stream_is_skipped_and_the_others_keep_going() {
    for load_balance in [false, true] {
        let order = order_name(load_balance);
        let ports = free_ports(3);
        let mut workers: Vec<Worker> = ports.iter().map(|p| Worker::start(*p, 5)).collect();
        let sender = multi_client_sender(&ports, load_balance);
        let n = 300;
        let mut took_before_death = Vec::new();
        let survivors = |workers: &mut Vec<Worker>| -> usize {
            workers[0].consumed_so_far() + workers[2].consumed_so_far()
        };
        let (mut at_death, mut after) = (0, 0);
        push_frames(&sender, n, Duration::from_millis(10), |idx| {
            if idx == 100 {
                took_before_death = workers[1].kill();
                at_death = survivors(&mut workers);
            }
            if idx == 200 {
                after = survivors(&mut workers) - at_death;
            }
        });
        // Not held up by the dead one: most of the 100 frames since were taken already.
        assert!(
            after >= 40,
            "{order}: {after} of 100 frames taken after the death"
        );
        sender.finish_expect_eos(Duration::from_secs(30));
        // The frame in flight at the dead worker, if any, went to another.
        let answered = each_answered_once(&sender, n);
        for k in [0, 2] {
            let report = workers[k].report(Duration::from_secs(20));
            assert_reached(ports[k], &report, &answered);
            assert!(
                answered[&ports[k]].last().is_some_and(|i| *i > 200),
                "{order}"
            );
        }
        let dead = &answered[&ports[1]];
        assert!(
            dead.starts_with(&took_before_death),
            "{order}: the dead worker took {took_before_death:?} of {dead:?}"
        );
        assert!(dead.iter().all(|i| *i <= 100), "{order}: {dead:?}");
        let disconnected = sender.posted.named("netgear-disconnected");
        assert!(
            disconnected
                .iter()
                .any(|m| m.get::<u32>("port").ok() == Some(u32::from(ports[1]))),
            "{order}: no netgear-disconnected for the dead worker"
        );
        let name = format!(":{}", ports[1]);
        assert!(
            sender.posted.warnings().iter().any(|w| w.contains(&name)),
            "{order}: {:?}",
            sender.posted.warnings()
        );
        let stats = sender.stats();
        assert!(stats.get::<u64>("receivers-down").unwrap() >= 1, "{stats}");
    }
}

#[test]
fn a_frame_in_flight_at_a_worker_that_dies_goes_to_another() {
    let ports = free_ports(3);
    let mut workers: Vec<Worker> = [0, 200, 0]
        .iter()
        .zip(&ports)
        .map(|(delay, p)| Worker::start(*p, *delay))
        .collect();
    let sender = multi_client_sender(&ports, true);
    let n = 700;
    let mut took_before_death = Vec::new();
    push_frames(&sender, n, Duration::from_millis(2), |idx| {
        if idx == 600 {
            // Once the slow worker's vidgear queue is full, the frame sent to it next waits
            // unread, unanswered, in its socket: that is the frame in flight at its death.
            let slow = &mut workers[1];
            let deadline = Instant::now() + Duration::from_secs(20);
            while answered_by_port(&sender, slow.port) < slow.consumed_so_far() + 96 {
                assert!(
                    Instant::now() < deadline,
                    "the slow worker's queue never filled"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            took_before_death = slow.kill();
        }
    });
    sender.finish_expect_eos(Duration::from_secs(30));
    let answered = each_answered_once(&sender, n);
    for k in [0, 2] {
        let report = workers[k].report(Duration::from_secs(20));
        assert_reached(ports[k], &report, &answered);
    }
    let dead = &answered[&ports[1]];
    assert!(dead.starts_with(&took_before_death), "{dead:?}");
    let stats = sender.stats();
    // The unanswered frame was sent again, and answered once.
    assert!(stats.get::<u64>("retries").unwrap() >= 1, "{stats}");
    assert_eq!(stats.get::<u64>("receivers-down").unwrap(), 1, "{stats}");
    assert_eq!(stats.get::<u64>("frames").unwrap(), n, "{stats}");
}

/// How many `netgear-return` messages came from `port` so far.
fn answered_by_port(sender: &Sender, port: u16) -> usize {
    let port = u32::from(port);
    let returns = sender.posted.named("netgear-return");
    returns
        .iter()
        .filter(|r| r.get::<u32>("port").ok() == Some(port))
        .count()
}

#[test]
fn the_termination_reaches_every_worker_up_at_end_of_stream() {
    for load_balance in [false, true] {
        let order = order_name(load_balance);
        let ports = free_ports(2);
        let mut first = Worker::start(ports[0], 0);
        let sender = multi_client_sender(&ports, load_balance);
        push_frames(&sender, 10, Duration::from_millis(10), |_| {});
        let mut second = Worker::start(ports[1], 0);
        // Its socket connects again within libzmq's reconnect interval.
        std::thread::sleep(Duration::from_millis(1000));
        sender.finish_expect_eos(Duration::from_secs(20));
        let answered = each_answered_once(&sender, 10);
        assert_reached(ports[0], &first.report(Duration::from_secs(20)), &answered);
        let report = second.report(Duration::from_secs(20));
        assert!(report.terminated, "{order}: the worker that got no frame");
        assert!(report.reached().is_empty(), "{order}");
    }
}

#[test]
fn our_sources_work_as_load_balanced_workers() {
    let ports = free_ports(3);
    let sources = multi_client_sources(&ports[..2], |p| p.to_string());
    let mut worker = Worker::start(ports[2], 20);
    let sender = multi_client_sender(&ports, true);
    let n = 200;
    push_frames(&sender, n, Duration::ZERO, |_| {});
    sender.finish_expect_eos(Duration::from_secs(30));
    let answered = each_answered_once(&sender, n);
    for (source, port) in sources.iter().zip(&ports) {
        let (frames, eos) = source.collect(Duration::from_secs(5));
        assert!(eos, "source {port} was not terminated");
        let got: Vec<u64> = frames
            .iter()
            .map(|f| u64::from(u32::from_le_bytes(f.data[..4].try_into().unwrap())))
            .collect();
        assert!(!got.is_empty(), "source {port} got no frame");
        assert_eq!(got, answered[port], "source {port}");
    }
    assert_reached(ports[2], &worker.report(Duration::from_secs(20)), &answered);
}

/// A vidgear bidirectional receiver on `port`, returning its port with every reply.
fn bidirectional_peer(port: u16, pattern: &str) -> Peer {
    let peer = Peer::modes(&script_args(
        "bi-recv",
        &[
            ("port", port.to_string()),
            ("pattern", pattern.to_string()),
            ("return", port.to_string()),
        ],
    ));
    peer.wait_ready(Duration::from_secs(20));
    peer
}

#[test]
fn netgear_return_names_the_frame_it_answers_in_every_mode() {
    // (pattern, multi-client, load-balance): bidirectional pair and req-rep, and
    // multi-client in both orders. Even frames carry a PTS and an offset, odd ones neither.
    let cases = [
        ("0", false, false),
        ("1", false, false),
        ("1", true, false),
        ("1", true, true),
    ];
    for (pattern, multi_client, load_balance) in cases {
        let case =
            format!("pattern {pattern}, multi-client {multi_client}, load-balance {load_balance}");
        let port = free_port();
        let _worker = multi_client.then(|| Worker::start(port, 0));
        let _peer = (!multi_client).then(|| bidirectional_peer(port, pattern));
        let port_text = port.to_string();
        let (flag, endpoint) = match multi_client {
            true => ("multi-client", "ports"),
            false => ("bidirectional", "port"),
        };
        let sender = Sender::raw(
            VideoFormat::Bgr,
            W as u32,
            H as u32,
            &[
                ("pattern", pattern),
                (flag, "true"),
                (endpoint, &port_text),
                ("load-balance", if load_balance { "true" } else { "false" }),
                ("address", "127.0.0.1"),
                ("jpeg-compression", "false"),
            ],
        );
        sender.play();
        // vidgear's bidirectional receiver returns its data only once its first recv()
        // call has stored it.
        std::thread::sleep(Duration::from_millis(500));
        for idx in 0..6 {
            push_frame(&sender, idx, idx % 2 == 0);
        }
        sender.finish_expect_eos(Duration::from_secs(20));
        let returns = sender.posted.named("netgear-return");
        assert_eq!(returns.len(), 6, "{case}");
        for (idx, r) in (0u64..).zip(&returns) {
            assert_eq!(r.get::<String>("data").unwrap(), port_text, "{case}");
            if idx % 2 == 0 {
                assert_eq!(r.get::<u64>("offset").unwrap(), idx, "{case}: {r}");
                let pts = r.get::<u64>("pts").unwrap();
                assert_eq!(pts, idx * PTS_STEP_MS * 1_000_000, "{case}: {r}");
            } else {
                assert!(!r.has_field("pts") && !r.has_field("offset"), "{case}: {r}");
            }
            assert_eq!(r.has_field("port"), multi_client, "{case}: {r}");
        }
    }
}

#[test]
fn load_balance_outside_multi_client_req_rep_fails_to_start() {
    init();
    let cases: [(&[(&str, &str)], &str); 2] = [
        (
            &[("pattern", "1")],
            "load-balance=true needs multi-client=true and pattern=req-rep (1), not multi-client=false",
        ),
        (
            &[("pattern", "2"), ("multi-client", "true"), ("ports", "5566,5567")],
            "not pattern=pub-sub (2)",
        ),
    ];
    for (props, expected) in cases {
        let pipeline = gst::Pipeline::new();
        let sink = gst::ElementFactory::make("netgearsink").build().unwrap();
        sink.set_property("load-balance", true);
        for (k, v) in props {
            sink.set_property_from_str(k, v);
        }
        let src = gst::ElementFactory::make("fakesrc").build().unwrap();
        pipeline.add_many([&src, &sink]).unwrap();
        src.link(&sink).unwrap();
        assert!(pipeline.set_state(gst::State::Paused).is_err(), "{props:?}");
        let Outcome::Error(text) = wait_end(&pipeline, Duration::from_secs(2)) else {
            panic!("{props:?}: no error message")
        };
        assert!(text.contains(expected), "{props:?}: {text}");
        let _ = pipeline.set_state(gst::State::Null);
    }
}
