// SPDX-License-Identifier: MPL-2.0
//! Sends a test pattern from `netgearsink` to `netgearsrc` in one process and prints what
//! arrived. `cargo run --example loopback -- [PORT]`
use gst::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    gst::init()?;
    gstnetgear::plugin_register_static()?;
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(5555);
    let receiver = gst::parse::launch(&format!(
        "netgearsrc address=127.0.0.1 port={port} pattern=req-rep ! fakesink name=out"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let sender = gst::parse::launch(&format!(
        "videotestsrc num-buffers=100 ! video/x-raw,format=BGR,width=641,height=480 \
         ! netgearsink address=127.0.0.1 port={port} pattern=req-rep jpeg-compression=false sync=false"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    receiver.set_state(gst::State::Playing)?;
    sender.set_state(gst::State::Playing)?;
    for pipeline in [&sender, &receiver] {
        let bus = pipeline.bus().ok_or("no bus")?;
        if let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            if let gst::MessageView::Error(e) = msg.view() {
                return Err(format!("{}", e.error()).into());
            }
        }
    }
    let src = receiver.iterate_sources().next()?.ok_or("no source")?;
    println!("received: {}", src.property::<gst::Structure>("stats"));
    sender.set_state(gst::State::Null)?;
    receiver.set_state(gst::State::Null)?;
    Ok(())
}
