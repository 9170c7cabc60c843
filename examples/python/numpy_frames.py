#!/usr/bin/python3
# SPDX-License-Identifier: MPL-2.0
# The system python3 on purpose: a venv's python has no python3-gi (see below).
"""numpy frames through GStreamer's NetGear elements, from Python via GObject introspection.

Runs with the SYSTEM python3, not a venv's python (the project's .venv with vidgear has no
GObject introspection): it needs Debian's python3-gi, gir1.2-gstreamer-1.0,
gir1.2-gst-plugins-base-1.0 and python3-numpy (`sudo apt-get install python3-gi
gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 python3-numpy`; scripts/setup installs
them). From the repository, after `cargo build --release`:

    GST_PLUGIN_PATH=target/release /usr/bin/python3 examples/python/numpy_frames.py [--port P]

One pipeline pushes numpy arrays into `netgearsink` through `appsrc`; another pulls them out
of `netgearsrc` through `appsink` as numpy arrays again (rows unpadded), the way a vidgear
user holds frames. Either end can be a real vidgear peer instead.

Both ends run in vidgear's bidirectional mode: a JSON message travels with every frame and
JSON data comes back with every reply. Prints one JSON line: frames sent and received,
whether every received frame equals the one sent, and the bus messages of both ends. With --dump FILE, the received
frames' bytes are written there too, one after another.
"""

import argparse
import json
import sys

try:
    import gi
    import numpy as np
except ImportError as missing:
    # A venv's python sees neither Debian's python3-gi nor its numpy.
    print(
        f"{sys.argv[0]}: {missing}: this example needs Debian's python3-gi, "
        "gir1.2-gstreamer-1.0, gir1.2-gst-plugins-base-1.0 and python3-numpy; "
        "run it with the system /usr/bin/python3, not a venv's python "
        f"(this is {sys.executable})",
        file=sys.stderr,
    )
    sys.exit(2)

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gst, GstApp, GstVideo  # noqa: E402


def make_frame(idx, height, width):
    """A BGR test frame: value = idx*7 + y*3 + x*5 + c*11 (mod 256)."""
    y = np.arange(height).reshape(height, 1, 1)
    x = np.arange(width).reshape(1, width, 1)
    c = np.arange(3).reshape(1, 1, 3)
    return ((idx * 7 + y * 3 + x * 5 + c * 11) % 256).astype(np.uint8)


def push_frame(appsrc, info, frame, idx, fps):
    """One (h, w, 3) uint8 BGR array into appsrc, stamped as frame idx at fps. GStreamer
    pads rows to a multiple of 4 bytes: rows are copied into that layout where needed."""
    height, width, channels = frame.shape
    stride = info.stride[0]
    if stride != width * channels:
        padded = np.zeros((height, stride), np.uint8)
        padded[:, : width * channels] = frame.reshape(height, width * channels)
        frame = padded
    buffer = Gst.Buffer.new_wrapped(frame.tobytes())
    buffer.pts = idx * Gst.SECOND // fps
    buffer.duration = Gst.SECOND // fps
    return appsrc.emit("push-buffer", buffer)


def frame_from_sample(sample):
    """An appsink sample as an (h, w, channels) numpy array, rows without padding."""
    info = GstVideo.VideoInfo.new_from_caps(sample.get_caps())
    buffer = sample.get_buffer()
    ok, mapped = buffer.map(Gst.MapFlags.READ)
    if not ok:
        raise RuntimeError("could not map a buffer")
    try:
        channels = info.finfo.n_components
        stride = info.stride[0]
        rows = np.frombuffer(mapped.data, np.uint8, count=stride * info.height)
        rows = rows.reshape(info.height, stride)[:, : info.width * channels]
        return rows.reshape(info.height, info.width, channels).copy()
    finally:
        buffer.unmap(mapped)


def element_messages(pipeline, name, field):
    """The JSON values of the element messages called name waiting on a pipeline's bus;
    an error waiting there is raised."""
    values = []
    bus = pipeline.get_bus()
    while True:
        msg = bus.pop()
        if msg is None:
            return values
        if msg.type == Gst.MessageType.ERROR:
            raise RuntimeError(msg.parse_error()[0].message)
        s = msg.get_structure()
        if msg.type == Gst.MessageType.ELEMENT and s.get_name() == name:
            values.append(json.loads(s.get_string(field)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=5555)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--width", type=int, default=63)
    p.add_argument("--height", type=int, default=37)
    p.add_argument("--dump", default="")
    args = p.parse_args()
    Gst.init(None)
    fps = 30

    receiver = Gst.parse_launch(
        f"netgearsrc address=127.0.0.1 port={args.port} framerate={fps}/1 bidirectional=true "
        'return-data="{\\"seen\\": true}" '

        "! appsink name=out sync=false caps=video/x-raw,format=BGR"
    )
    caps = f"video/x-raw,format=BGR,width={args.width},height={args.height},framerate={fps}/1"
    sender = Gst.parse_launch(
        f"appsrc name=in format=time caps={caps} "
        f"! netgearsink address=127.0.0.1 port={args.port} jpeg-compression=false bidirectional=true "
        'message="{\\"from\\": \\"python\\"}" sync=false'
    )
    appsink = receiver.get_by_name("out")
    appsrc = sender.get_by_name("in")
    receiver.set_state(Gst.State.PLAYING)
    sender.set_state(Gst.State.PLAYING)

    info = GstVideo.VideoInfo.new_from_caps(Gst.Caps.from_string(caps))
    sent = [make_frame(i, args.height, args.width) for i in range(args.frames)]
    for idx, frame in enumerate(sent):
        if push_frame(appsrc, info, frame, idx, fps) != Gst.FlowReturn.OK:
            raise RuntimeError("netgearsink refused a frame")
    appsrc.emit("end-of-stream")

    received = []
    while True:
        sample = appsink.try_pull_sample(10 * Gst.SECOND)
        if sample is None:
            break
        received.append(frame_from_sample(sample))

    # bidirectional=true: each frame's message is posted by netgearsrc as netgear-message,
    # each reply's return-data by netgearsink as netgear-return (JSON text).
    messages = element_messages(receiver, "netgear-message", "message")
    returns = element_messages(sender, "netgear-return", "data")
    sender.set_state(Gst.State.NULL)
    receiver.set_state(Gst.State.NULL)

    if args.dump:
        with open(args.dump, "wb") as f:
            for frame in received:
                f.write(frame.tobytes())
    equal = len(sent) == len(received) and all(
        np.array_equal(a, b) for a, b in zip(sent, received)
    )
    report = {
        "sent": len(sent),
        "received": len(received),
        "shape": list(received[0].shape) if received else None,
        "equal": equal,
        "eos": appsink.is_eos(),
        "messages": messages[:2],
        "returns": returns[:2],
        "counts": [len(messages), len(returns)],
    }
    print(json.dumps(report), flush=True)
    sys.exit(0 if equal else 1)


if __name__ == "__main__":
    main()
