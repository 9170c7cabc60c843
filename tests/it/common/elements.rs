// SPDX-License-Identifier: MPL-2.0
//! The elements under test in small pipelines: `appsrc ! netgearsink` and
//! `netgearsrc ! appsink`, and the frames that come out.

use super::{frame_buffer, from_gst_layout, to_gst_layout, video_info, wait_end, Outcome, Posted};
use gst::prelude::*;
use std::sync::Once;
use std::time::Duration;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst init");
        gstnetgear::plugin_register_static().expect("register plugin");
    });
}

/// A pipeline from a gst-launch description.
pub fn launch(description: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(description)
        .expect("pipeline description")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
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
        let sink = gst::ElementFactory::make("netgearsink")
            .build()
            .expect("netgearsink");
        for (k, v) in props {
            sink.set_property_from_str(k, v);
        }
        Sender::with_sink(caps, sink)
    }

    /// `appsrc ! sink` for a sink made another way (from a URI, say).
    pub fn with_sink(caps: &gst::Caps, sink: gst::Element) -> Sender {
        init();
        let pipeline = gst::Pipeline::new();
        let appsrc = gst_app::AppSrc::builder()
            .caps(caps)
            .format(gst::Format::Time)
            .is_live(false)
            .block(true)
            .max_bytes(64 << 20)
            .build();
        sink.set_property("sync", false);
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
        self.appsrc.push_buffer(frame_buffer(data, idx))
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

/// One playing raw `netgearsink multi-server=true pattern=1` per server port, each with
/// the `extra` properties too.
pub fn multi_server_senders(
    servers: &[u16],
    format: gst_video::VideoFormat,
    (width, height): (usize, usize),
    extra: &[(&str, &str)],
) -> Vec<Sender> {
    servers
        .iter()
        .map(|p| {
            let port = p.to_string();
            let mut props = vec![
                ("port", port.as_str()),
                ("pattern", "1"),
                ("multi-server", "true"),
                ("jpeg-compression", "false"),
            ];
            props.extend_from_slice(extra);
            let s = Sender::raw(format, width as u32, height as u32, &props);
            s.play();
            s
        })
        .collect()
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
    pub fn from_sample(sample: &gst::Sample) -> Frame {
        let buffer = sample.buffer().expect("buffer");
        Frame {
            caps: sample.caps().expect("caps").to_owned(),
            data: buffer.map_readable().expect("map").to_vec(),
            pts: buffer.pts(),
            meta: gstnetgear::meta::read(buffer),
        }
    }

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

/// Pulls frames from an appsink until EOS, or until `timeout` passes with nothing new;
/// whether it got to EOS.
pub fn collect_frames(appsink: &gst_app::AppSink, timeout: Duration) -> (Vec<Frame>, bool) {
    let mut frames = Vec::new();
    while let Some(frame) = next_frame(appsink, timeout) {
        frames.push(frame);
    }
    (frames, appsink.is_eos())
}

fn next_frame(appsink: &gst_app::AppSink, timeout: Duration) -> Option<Frame> {
    appsink
        .try_pull_sample(gst::ClockTime::from_mseconds(timeout.as_millis() as u64))
        .map(|sample| Frame::from_sample(&sample))
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
        let pipeline = launch(description);
        let src = pipeline.by_name("src").expect("netgearsrc named src");
        let appsink = pipeline
            .by_name("out")
            .expect("appsink named out")
            .downcast::<gst_app::AppSink>()
            .expect("an appsink");
        appsink.set_property("sync", false);
        Receiver::recording(pipeline, src, appsink)
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
        Receiver::recording(pipeline, src, appsink)
    }

    /// The receiver of these parts, recording what its bus posts.
    fn recording(
        pipeline: gst::Pipeline,
        src: gst::Element,
        appsink: gst_app::AppSink,
    ) -> Receiver {
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
        collect_frames(&self.appsink, timeout)
    }

    pub fn next_frame(&self, timeout: Duration) -> Option<Frame> {
        next_frame(&self.appsink, timeout)
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

/// One playing `netgearsrc multi-client=true pattern=1` per client port, each returning
/// `return_data(port)`.
pub fn multi_client_sources(clients: &[u16], return_data: impl Fn(u16) -> String) -> Vec<Receiver> {
    clients
        .iter()
        .map(|p| {
            let r = Receiver::new(&[
                ("port", &p.to_string()),
                ("address", "127.0.0.1"),
                ("pattern", "1"),
                ("multi-client", "true"),
                ("return-data", &return_data(*p)),
            ]);
            r.play();
            r
        })
        .collect()
}
