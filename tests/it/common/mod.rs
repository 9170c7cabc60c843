// SPDX-License-Identifier: MPL-2.0
//! Helpers shared by the integration tests: pipelines that feed `netgearsink` from
//! appsrc or drain `netgearsrc` into appsink, the test frame formula (the same as
//! tests/python/netgear_peer.py), free ports, the real vidgear peers, and tests that need a
//! process of their own.

use gst::prelude::*;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst init");
        gstnetgear::plugin_register_static().expect("register plugin");
    });
}

/// A port nobody listens on right now, below Linux's ephemeral range (32768-60999): the
/// client ends of other connections (vidgear's, ZeroMQ's) take ports from that range, and one
/// could take ours between this check and the element's bind. Each port is handed out once
/// per test process; the start differs between processes.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20000;
    const SPAN: u32 = 12000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let seed = std::process::id().wrapping_mul(2654435761) % SPAN;
    let _ = NEXT.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN);
}

/// A fresh ipc path prefix (the endpoint becomes `ipc://PREFIX:PORT`).
pub fn ipc_prefix(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("netgear-test-{}-{tag}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir.join("feed").to_string_lossy().into_owned()
}

/// The test frame, packed as numpy would hold it: `value = idx*7 + y*3 + x*5 + c*11`.
pub fn test_frame(
    idx: usize,
    width: usize,
    height: usize,
    channels: usize,
    u16_samples: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height * channels * if u16_samples { 2 } else { 1 });
    for y in 0..height {
        for x in 0..width {
            for c in 0..channels {
                let v = idx * 7 + y * 3 + x * 5 + c * 11;
                if u16_samples {
                    out.extend_from_slice(&((v % 65536) as u16).to_le_bytes());
                } else {
                    out.push((v % 256) as u8);
                }
            }
        }
    }
    out
}

/// Continuous content for JPEG tests (netgear_peer.py's smooth_frame).
pub fn smooth_frame(idx: usize, width: usize, height: usize, channels: usize) -> Vec<u8> {
    let tri = |t: usize| {
        let t = t % 256;
        if t < 128 {
            t * 2
        } else {
            (255 - t) * 2
        }
    };
    let mut out = Vec::with_capacity(width * height * channels);
    for y in 0..height {
        for x in 0..width {
            for c in 0..channels {
                out.push(((tri(x * 2 + idx * 7) + tri(y * 3 + c * 40)) / 2) as u8);
            }
        }
    }
    out
}

/// Peak signal-to-noise ratio of two equally long 8-bit images, in dB.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "images differ in size");
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

/// The index of a uint8 test frame, from its first byte.
pub fn frame_index(packed: &[u8]) -> usize {
    (usize::from(packed[0]) * 183) % 256
}

/// Lays packed rows out as GStreamer stores them (rows padded to the format's stride).
pub fn to_gst_layout(packed: &[u8], info: &gst_video::VideoInfo) -> Vec<u8> {
    let row = packed.len() / info.height() as usize;
    let stride = info.stride()[0] as usize;
    let mut out = vec![0u8; info.size()];
    for (src, dst) in packed.chunks(row).zip(out.chunks_mut(stride)) {
        dst[..row].copy_from_slice(src);
    }
    out
}

/// Packs a GStreamer buffer's rows tight again.
pub fn from_gst_layout(data: &[u8], info: &gst_video::VideoInfo) -> Vec<u8> {
    let finfo = info.format_info();
    let row = info.width() as usize * finfo.pixel_stride()[0] as usize;
    let stride = info.stride()[0] as usize;
    data.chunks(stride)
        .take(info.height() as usize)
        .flat_map(|r| r[..row].to_vec())
        .collect()
}

pub fn video_info(format: gst_video::VideoFormat, width: u32, height: u32) -> gst_video::VideoInfo {
    init();
    gst_video::VideoInfo::builder(format, width, height)
        .fps(gst::Fraction::new(30, 1))
        .build()
        .expect("video info")
}

/// How a pipeline ended.
#[derive(Debug)]
pub enum Outcome {
    Eos,
    Error(String),
    TimedOut,
}

/// Waits for EOS or an error on a pipeline's bus.
pub fn wait_end(pipeline: &gst::Pipeline, timeout: Duration) -> Outcome {
    let bus = pipeline.bus().expect("bus");
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(left.as_millis() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) else {
            break;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return Outcome::Eos,
            gst::MessageView::Error(e) => {
                return Outcome::Error(format!("{} ({:?})", e.error(), e.debug()))
            }
            _ => {}
        }
    }
    Outcome::TimedOut
}

/// `appsrc ! netgearsink` with the given sink properties.
pub struct Sender {
    pub pipeline: gst::Pipeline,
    pub posted: Posted,
    pub appsrc: gst_app::AppSrc,
    pub sink: gst::Element,
    pub info: Option<gst_video::VideoInfo>,
}

impl Sender {
    pub fn new(caps: &gst::Caps, props: &[(&str, &str)]) -> Sender {
        init();
        let pipeline = gst::Pipeline::new();
        let appsrc = gst_app::AppSrc::builder()
            .caps(caps)
            .format(gst::Format::Time)
            .is_live(false)
            .block(true)
            .max_bytes(64 << 20)
            .build();
        let sink = gst::ElementFactory::make("netgearsink")
            .build()
            .expect("netgearsink");
        sink.set_property("sync", false);
        for (k, v) in props {
            sink.set_property_from_str(k, v);
        }
        pipeline
            .add_many([appsrc.upcast_ref(), &sink])
            .expect("add");
        appsrc.link(&sink).expect("link");
        let info = gst_video::VideoInfo::from_caps(caps).ok();
        let posted = Posted::record(&pipeline);
        Sender {
            pipeline,
            posted,
            appsrc,
            sink,
            info,
        }
    }

    pub fn raw(
        format: gst_video::VideoFormat,
        width: u32,
        height: u32,
        props: &[(&str, &str)],
    ) -> Sender {
        let info = video_info(format, width, height);
        Sender::new(&info.to_caps().expect("caps"), props)
    }

    pub fn play(&self) {
        self.pipeline
            .set_state(gst::State::Playing)
            .expect("playing");
    }

    /// Pushes packed rows, laid out as GStreamer would.
    pub fn push_packed(&self, packed: &[u8], idx: u64) -> Result<gst::FlowSuccess, gst::FlowError> {
        let info = self.info.as_ref().expect("raw caps");
        self.push_bytes(to_gst_layout(packed, info), idx)
    }

    pub fn push_bytes(&self, data: Vec<u8>, idx: u64) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut buffer = gst::Buffer::from_mut_slice(data);
        {
            let b = buffer.get_mut().expect("writable");
            b.set_pts(gst::ClockTime::from_mseconds(idx * 33));
        }
        self.appsrc.push_buffer(buffer)
    }

    pub fn finish(&self) {
        let _ = self.appsrc.end_of_stream();
    }

    /// Ends the stream and waits for the sink's EOS (termination sent, replies in).
    pub fn finish_expect_eos(&self, timeout: Duration) {
        self.finish();
        match wait_end(&self.pipeline, timeout) {
            Outcome::Eos => {}
            other => panic!("sender ended with {other:?}"),
        }
    }

    pub fn stats(&self) -> gst::Structure {
        self.sink.property::<gst::Structure>("stats")
    }

    pub fn stop(&self) {
        self.pipeline.set_state(gst::State::Null).expect("null");
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// One buffer out of `netgearsrc`, with the caps it came with.
#[derive(Debug, Clone)]
pub struct Frame {
    pub caps: gst::Caps,
    pub data: Vec<u8>,
    pub pts: Option<gst::ClockTime>,
    /// The buffer's NetGearMeta.
    pub meta: Option<gstnetgear::meta::NetGearInfo>,
}

impl Frame {
    fn from_sample(sample: &gst::Sample) -> Frame {
        let buffer = sample.buffer().expect("buffer");
        Frame {
            caps: sample.caps().expect("caps").to_owned(),
            data: buffer.map_readable().expect("map").to_vec(),
            pts: buffer.pts(),
            meta: gstnetgear::meta::read(buffer),
        }
    }
}

impl Frame {
    pub fn info(&self) -> gst_video::VideoInfo {
        gst_video::VideoInfo::from_caps(&self.caps).expect("raw caps")
    }

    /// The frame's rows packed tight, as numpy holds them.
    pub fn packed(&self) -> Vec<u8> {
        from_gst_layout(&self.data, &self.info())
    }

    pub fn format(&self) -> gst_video::VideoFormat {
        self.info().format()
    }
}

/// `netgearsrc ! appsink` with the given source properties.
pub struct Receiver {
    pub pipeline: gst::Pipeline,
    pub posted: Posted,
    pub src: gst::Element,
    pub appsink: gst_app::AppSink,
}

impl Receiver {
    pub fn new(props: &[(&str, &str)]) -> Receiver {
        Receiver::with_caps(props, None)
    }

    /// A receiver described as a gst-launch line with `netgearsrc name=src` and `appsink name=out`.
    pub fn launch(description: &str) -> Receiver {
        init();
        let pipeline = gst::parse::launch(description)
            .expect("pipeline description")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        let src = pipeline.by_name("src").expect("netgearsrc named src");
        let appsink = pipeline
            .by_name("out")
            .expect("appsink named out")
            .downcast::<gst_app::AppSink>()
            .expect("an appsink");
        appsink.set_property("sync", false);
        let posted = Posted::record(&pipeline);
        Receiver {
            pipeline,
            posted,
            src,
            appsink,
        }
    }

    pub fn with_caps(props: &[(&str, &str)], caps: Option<&gst::Caps>) -> Receiver {
        init();
        let pipeline = gst::Pipeline::new();
        let src = gst::ElementFactory::make("netgearsrc")
            .build()
            .expect("netgearsrc");
        for (k, v) in props {
            src.set_property_from_str(k, v);
        }
        let mut builder = gst_app::AppSink::builder().sync(false).max_buffers(0);
        if let Some(c) = caps {
            builder = builder.caps(c);
        }
        let appsink = builder.build();
        pipeline
            .add_many([&src, appsink.upcast_ref()])
            .expect("add");
        src.link(&appsink).expect("link");
        let posted = Posted::record(&pipeline);
        Receiver {
            pipeline,
            posted,
            src,
            appsink,
        }
    }

    /// Starts listening; panics with the bus error if binding fails.
    pub fn play(&self) {
        if self.pipeline.set_state(gst::State::Playing).is_err() {
            panic!(
                "receiver failed to start: {:?}",
                wait_end(&self.pipeline, Duration::from_secs(1))
            );
        }
    }

    /// Pulls frames until EOS, or until `timeout` passes with nothing new.
    pub fn collect(&self, timeout: Duration) -> (Vec<Frame>, bool) {
        let mut frames = Vec::new();
        while let Some(frame) = self.next_frame(timeout) {
            frames.push(frame);
        }
        (frames, self.appsink.is_eos())
    }

    pub fn next_frame(&self, timeout: Duration) -> Option<Frame> {
        self.appsink
            .try_pull_sample(gst::ClockTime::from_mseconds(timeout.as_millis() as u64))
            .map(|sample| Frame::from_sample(&sample))
    }

    pub fn stats(&self) -> gst::Structure {
        self.src.property::<gst::Structure>("stats")
    }

    pub fn stop(&self) {
        self.pipeline.set_state(gst::State::Null).expect("null");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The venv's Python with vidgear (scripts/setup makes it). Missing is a failure, not a skip.
pub fn python() -> PathBuf {
    let path = std::env::var_os("NETGEAR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        path.exists(),
        "no Python with vidgear at {}: run scripts/setup (or set NETGEAR_PYTHON)",
        path.display()
    );
    path
}

/// A running `tests/python/netgear_peer.py`.
pub struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    /// tests/python/netgear_peer.py: plain sender or receiver.
    pub fn start(args: &[String]) -> Peer {
        Peer::script("netgear_peer.py", args)
    }

    /// tests/python/netgear_modes.py: the exclusive modes.
    pub fn modes(args: &[String]) -> Peer {
        Peer::script("netgear_modes.py", args)
    }

    fn script(name: &str, args: &[String]) -> Peer {
        let (child, lines) = spawn_script(name, args);
        Peer { child, lines }
    }

    /// Waits for a receiving peer to say it is bound.
    pub fn wait_ready(&self, timeout: Duration) {
        let line = self
            .lines
            .recv_timeout(timeout)
            .expect("peer never became ready");
        assert_eq!(line, "READY", "unexpected first line from peer");
    }

    /// The peer's closing JSON report.
    pub fn report(&mut self, timeout: Duration) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(timeout)
            .expect("peer printed no report");
        let _ = self.child.wait();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad report {line:?}: {e}"))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Element messages (and warnings, as `gst-warning` with `text`) posted on a pipeline's
/// bus, recorded as they are posted (waiting for EOS pops and drops the others).
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
        self.named("gst-warning")
            .iter()
            .filter_map(|s| s.get::<String>("text").ok())
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

/// Starts tests/python/`name` with the venv's python; its stdout lines arrive on the
/// receiver as they are printed (stderr goes to the test's).
pub fn spawn_script<S: AsRef<std::ffi::OsStr>>(
    name: &str,
    args: &[S],
) -> (Child, mpsc::Receiver<String>) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name);
    let mut child = Command::new(python())
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn python {name}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines)
}

/// A vidgear sender's frames: `frames` of `width`x`height`x`channels`; with `jpeg` (its
/// colorspace), smooth frames JPEG-compressed, else exact test frames sent raw.
pub fn sender_args(
    width: usize,
    height: usize,
    channels: usize,
    frames: usize,
    jpeg: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut args = vec![
        ("width", width.to_string()),
        ("height", height.to_string()),
        ("channels", channels.to_string()),
        ("frames", frames.to_string()),
    ];
    if let Some(colorspace) = jpeg {
        args.push(("jpeg", colorspace.to_string()));
        args.push(("smooth", String::new()));
    }
    args
}

/// Arguments for a peer script: `mode --key value …` (an empty value: a bare flag).
pub fn script_args(mode: &str, pairs: &[(&str, String)]) -> Vec<String> {
    let mut args = vec![mode.to_owned()];
    for (k, v) in pairs {
        args.push(format!("--{k}"));
        if !v.is_empty() {
            args.push(v.clone());
        }
    }
    args
}

/// Arguments for the peer script with a port and a pattern.
pub fn peer_args(mode: &str, port: u16, pattern: u8, extra: &[(&str, String)]) -> Vec<String> {
    let mut pairs = vec![("port", port.to_string()), ("pattern", pattern.to_string())];
    pairs.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    script_args(mode, &pairs)
}

/// A Python script from tests/python run with the venv's vidgear, read line by line: for
/// the scripts `Peer` does not start (netgear_pixels.py, netgear_paced.py).
pub struct ScriptPeer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ScriptPeer {
    pub fn start(script: &str, args: &[String]) -> ScriptPeer {
        let (child, lines) = spawn_script(script, args);
        ScriptPeer { child, lines }
    }

    /// Waits for the script's first line, READY.
    pub fn wait_ready(&self) {
        let ready = self.lines.recv_timeout(Duration::from_secs(20));
        assert_eq!(ready.as_deref(), Ok("READY"), "script not ready");
    }

    /// The script's closing JSON line.
    pub fn report(mut self) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("script report");
        let _ = self.child.wait();
        serde_json::from_str(&line).expect("JSON report")
    }
}

impl Drop for ScriptPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test's path as the test binary names it: `module_path!()` without the crate.
fn test_path(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, inner)) => format!("{inner}::{name}"),
        None => name.to_owned(),
    }
}

/// This test binary, set to run test `name` of `module` (its `module_path!()`) and
/// nothing else.
pub fn this_binary_running(module: &str, name: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command.args(["--exact", &test_path(module, name)]);
    command.args(["--nocapture", "--test-threads=1"]);
    command
}

/// Set in a test's own process.
const OWN_PROCESS: &str = "NETGEAR_TEST_OWN_PROCESS";

/// Runs `body`, all of a test, in a process of its own (this binary, running only that
/// test): for tests that count the process's threads, descriptors or memory, which other
/// tests running alongside would change. `module` is the test's `module_path!()`.
pub fn in_own_process(module: &str, name: &str, body: impl FnOnce()) {
    if std::env::var_os(OWN_PROCESS).is_some() {
        return body();
    }
    let out = this_binary_running(module, name)
        .env(OWN_PROCESS, "1")
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} in its own process: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
