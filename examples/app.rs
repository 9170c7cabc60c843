// SPDX-License-Identifier: MPL-2.0
//! An application embedding both elements: frames made in Rust go into `netgearsink`
//! through `appsrc`, come out of `netgearsrc` through `appsink` as tightly packed BGR
//! rows (numpy's layout), and vidgear's bidirectional mode carries a JSON message with
//! every frame and JSON data back with every reply, read from the bus as
//! `netgear-message` and `netgear-return`. Either end could be a real vidgear peer.
//!
//! `cargo run --example app -- [PORT] [FRAMES]`
use gst::prelude::*;
use gst_video::prelude::*;
use std::error::Error;
use std::str::FromStr;

/// What the application saw.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: usize,
    /// Every received frame, rows packed tight (h × w × 3 BGR bytes).
    pub frames: Vec<Vec<u8>>,
    /// The `message` of each `netgear-message` (JSON text).
    pub messages: Vec<String>,
    /// The `data` of each `netgear-return` (JSON text).
    pub returns: Vec<String>,
}

pub const WIDTH: usize = 63;
pub const HEIGHT: usize = 37;

/// A BGR test frame, packed: value = idx*7 + y*3 + x*5 + c*11 (mod 256).
pub fn make_frame(idx: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(WIDTH * HEIGHT * 3);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            for c in 0..3 {
                out.push(((idx * 7 + y * 3 + x * 5 + c * 11) % 256) as u8);
            }
        }
    }
    out
}

fn pipeline(description: &str) -> Result<gst::Pipeline, Box<dyn Error>> {
    Ok(gst::parse::launch(description)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline")?)
}

/// Packed rows into a buffer in GStreamer's layout (rows padded to the stride).
fn buffer_from_packed(packed: &[u8], info: &gst_video::VideoInfo) -> gst::Buffer {
    let row = info.width() as usize * 3;
    let stride = info.stride()[0] as usize;
    let mut data = vec![0u8; info.size()];
    for (src, dst) in packed.chunks(row).zip(data.chunks_mut(stride)) {
        dst[..row].copy_from_slice(src);
    }
    gst::Buffer::from_mut_slice(data)
}

/// A sample's rows packed tight again.
fn packed_from_sample(sample: &gst::Sample) -> Result<Vec<u8>, Box<dyn Error>> {
    let info = gst_video::VideoInfo::from_caps(sample.caps().ok_or("no caps")?)?;
    let buffer = sample.buffer().ok_or("no buffer")?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        .map_err(|_| "unmappable frame")?;
    let row = info.width() as usize * info.format_info().pixel_stride()[0] as usize;
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0)?;
    Ok(data
        .chunks(stride)
        .take(info.height() as usize)
        .flat_map(|r| r[..row].to_vec())
        .collect())
}

/// The `field` of every element message called `name` on a pipeline's bus; an error
/// there is returned.
fn element_messages(
    pipeline: &gst::Pipeline,
    name: &str,
    field: &str,
) -> Result<Vec<String>, Box<dyn Error>> {
    let bus = pipeline.bus().ok_or("no bus")?;
    let mut values = Vec::new();
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Error(e) => return Err(e.error().to_string().into()),
            gst::MessageView::Element(_) => {
                if let Some(s) = msg.structure().filter(|s| s.name() == name) {
                    values.push(s.get::<String>(field)?);
                }
            }
            _ => {}
        }
    }
    Ok(values)
}

/// Sends `count` frames from one pipeline to the other over `port` and collects what came
/// out, and the bus messages of both ends.
pub fn run(port: u16, count: usize) -> Result<Report, Box<dyn Error>> {
    gst::init()?;
    // The plugin is linked into the application; no GST_PLUGIN_PATH needed.
    if gst::ElementFactory::find("netgearsrc").is_none() {
        gstnetgear::plugin_register_static()?;
    }
    let caps = format!("video/x-raw,format=BGR,width={WIDTH},height={HEIGHT},framerate=30/1");
    let receiver = pipeline(&format!(
        "netgearsrc address=127.0.0.1 port={port} framerate=30/1 bidirectional=true \
         return-data=\"{{\\\"seen\\\": true}}\" ! appsink name=out sync=false caps={caps}"
    ))?;
    let sender = pipeline(&format!(
        "appsrc name=in format=time caps={caps} ! netgearsink address=127.0.0.1 port={port} \
         jpeg-compression=false bidirectional=true message=\"{{\\\"from\\\": \\\"rust\\\"}}\" sync=false"
    ))?;
    let appsink = receiver
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink")?;
    let appsrc = sender
        .by_name("in")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or("no appsrc")?;
    receiver.set_state(gst::State::Playing)?;
    sender.set_state(gst::State::Playing)?;

    let parsed = gst::Caps::from_str(&caps)?;
    let info = gst_video::VideoInfo::from_caps(&parsed)?;
    for idx in 0..count {
        let mut buffer = buffer_from_packed(&make_frame(idx), &info);
        let b = buffer.get_mut().ok_or("buffer not writable")?;
        b.set_pts(gst::ClockTime::SECOND.mul_div_floor(idx as u64, 30));
        appsrc.push_buffer(buffer)?;
    }
    appsrc.end_of_stream()?;

    let mut report = Report {
        sent: count,
        ..Report::default()
    };
    while let Some(sample) = appsink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        report.frames.push(packed_from_sample(&sample)?);
    }
    report.messages = element_messages(&receiver, "netgear-message", "message")?;
    report.returns = element_messages(&sender, "netgear-return", "data")?;
    sender.set_state(gst::State::Null)?;
    receiver.set_state(gst::State::Null)?;
    Ok(report)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let port = args.next().map(|p| p.parse()).transpose()?.unwrap_or(5555);
    let count = args.next().map(|c| c.parse()).transpose()?.unwrap_or(10);
    let report = run(port, count)?;
    let equal = (0..report.sent).all(|i| report.frames.get(i) == Some(&make_frame(i)));
    println!(
        "sent {}, received {} (equal: {equal}); {} messages, first {:?}; {} returns, first {:?}",
        report.sent,
        report.frames.len(),
        report.messages.len(),
        report.messages.first(),
        report.returns.len(),
        report.returns.first()
    );
    if !equal {
        return Err("the frames received differ from those sent".into());
    }
    Ok(())
}
