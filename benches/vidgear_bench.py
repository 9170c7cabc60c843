# SPDX-License-Identifier: MPL-2.0
"""vidgear and bare-pyzmq sides of scripts/bench, each run as its own process.

    vidgear_bench.py vidgear-send --port P --pattern N --frames N --width W --height H
                     [--jpeg] [--source pooled|file --file F] [--camera yuy2|nv12]
                     [--fps F] [--times OUT]
    vidgear_bench.py vidgear-recv --port P --pattern N --frames N [--times OUT]
    vidgear_bench.py zmq-send     --port P --pattern 0|2 --frames N --width W --height H
                     [--source pooled|file --file F] [--fps F] [--times OUT]
    vidgear_bench.py zmq-recv     --port P --pattern 0|2 --frames N [--times OUT]
    vidgear_bench.py codec --file F --width W --height H --frames N
    vidgear_bench.py vidgear-mc-send --ports A,B,.. --width W --height H --seconds S [--fps F]

zmq-send/zmq-recv move the same header + frame (+ acknowledgement in pattern 0) with bare
pyzmq: the transport's ceiling for raw frames. With --camera the file holds one YUY2 or NV12
frame, read anew and converted to BGR with OpenCV for every frame, as vidgear's capture does. zmq-recv is also the receiver of the JPEG
sender-only runs: it acknowledges and never decodes, as a receiver on another machine.

Receivers print READY once bound, FIRST when the first frame arrives (the parent samples
every side's CPU time then), and one JSON line at the end: frames, frames per second from
the first to the last frame. --times writes one CLOCK_MONOTONIC microsecond stamp per frame
(before send() / after recv()), for one-way latency without touching the message.

vidgear-mc-send is vidgear's own multi-client server (pattern 1, raw) beside our sink in the
load-balancing rows (benches/balance.py): black frames at --fps (0: as fast as the
receivers answer) for --seconds.
"""

import argparse
import json
import time

import numpy as np


def rate(times):
    """Frames per second between the first and the last of a series of instants."""
    return round((len(times) - 1) / (times[-1] - times[0]), 1) if len(times) > 1 else 0.0


def now_us():
    return time.monotonic_ns() // 1000


def write_times(path, stamps):
    if path:
        with open(path, "w") as f:
            f.write("\n".join(map(str, stamps)))


# How a camera frame file is shaped for OpenCV's conversion, and the conversion.
CAMERA = {
    "yuy2": (lambda w, h: (h, w, 2), "COLOR_YUV2BGR_YUY2"),
    "nv12": (lambda w, h: (h * 3 // 2, w), "COLOR_YUV2BGR_NV12"),
}


def frame_source(a):
    """A callable giving the next frame: one array re-sent (pooled), the file read anew, or
    the camera frame file read anew and converted to BGR."""
    if a.camera:
        import cv2

        shape, code = CAMERA[a.camera]
        shape, code = shape(a.width, a.height), getattr(cv2, code)
        return lambda: cv2.cvtColor(np.fromfile(a.file, dtype=np.uint8).reshape(shape), code)
    if a.source == "file":
        shape = (a.height, a.width, 3)
        return lambda: np.fromfile(a.file, dtype=np.uint8).reshape(shape)
    black = np.zeros((a.height, a.width, 3), dtype=np.uint8)
    return lambda: black


def pace(start, i, fps):
    if fps:
        time.sleep(max(0.0, start + i / fps - time.perf_counter()))


def vidgear_send(a):
    from vidgear.gears import NetGear

    server = NetGear(address="127.0.0.1", port=str(a.port), pattern=a.pattern, logging=False,
                     jpeg_compression=a.jpeg)
    next_frame = frame_source(a)
    if a.pattern == 2:
        time.sleep(0.5)  # let the subscriber connect
    stamps = []
    start = time.perf_counter()
    for i in range(a.frames):
        pace(start, i, a.fps)
        frame = next_frame()
        stamps.append(now_us())
        server.send(frame)
    server.close()
    write_times(a.times, stamps)
    print(json.dumps({"sent": a.frames}), flush=True)


def vidgear_recv(a):
    from vidgear.gears import NetGear

    # Its sender's termination is usually lost in pattern 2: stop after 3 s of silence.
    opts = {"subscriber_timeout": 3} if a.pattern == 2 else {}
    client = NetGear(address="127.0.0.1", port=str(a.port), pattern=a.pattern, receive_mode=True,
                     logging=False, **opts)
    print("READY", flush=True)
    times, stamps = [], []
    while len(times) < a.frames:
        frame = client.recv()
        if frame is None:
            break
        stamps.append(now_us())
        times.append(time.perf_counter())
        if len(times) == 1:
            print("FIRST", flush=True)
    client.close()
    write_times(a.times, stamps)
    print(json.dumps({"frames": len(times), "fps": rate(times)}), flush=True)


def zmq_header(a):
    return json.dumps({"terminate_flag": False, "compression": False, "message": None,
                       "pattern": str(a.pattern), "dtype": "uint8",
                       "shape": [a.height, a.width, 3]}).encode()


def zmq_send(a):
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PAIR if a.pattern == 0 else zmq.PUB)
    if a.pattern == 2:
        s.setsockopt(zmq.SNDHWM, 1)
    s.connect(f"tcp://127.0.0.1:{a.port}")
    next_frame = frame_source(a)
    header = zmq_header(a)
    if a.pattern == 2:
        time.sleep(0.5)
    stamps = []
    start = time.perf_counter()
    for i in range(a.frames):
        pace(start, i, a.fps)
        frame = next_frame()
        stamps.append(now_us())
        s.send(header, zmq.SNDMORE)
        s.send(frame, copy=False)
        if a.pattern == 0:
            s.recv()
    s.send(json.dumps({"terminate_flag": True}).encode())
    write_times(a.times, stamps)
    print(json.dumps({"sent": a.frames}), flush=True)
    ctx.destroy(linger=1000)


def zmq_recv(a):
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PAIR if a.pattern == 0 else zmq.SUB)
    if a.pattern == 2:
        s.setsockopt(zmq.RCVHWM, 1)
        s.setsockopt(zmq.SUBSCRIBE, b"")
    s.bind(f"tcp://127.0.0.1:{a.port}")
    print("READY", flush=True)
    times, stamps = [], []
    while len(times) < a.frames:
        if not s.poll(3000):
            break
        parts = s.recv_multipart(copy=False)
        if len(parts) < 2:
            break  # the termination message
        if a.pattern == 0:
            s.send(b"Data received on device: BENCH000 !")
        stamps.append(now_us())
        times.append(time.perf_counter())
        if len(times) == 1:
            print("FIRST", flush=True)
    write_times(a.times, stamps)
    print(json.dumps({"frames": len(times), "fps": rate(times)}), flush=True)
    ctx.destroy(linger=0)


def vidgear_mc_send(a):
    from vidgear.gears import NetGear

    server = NetGear(address="127.0.0.1", port=a.ports.split(","), pattern=1, multiclient_mode=True,
                     logging=False, jpeg_compression=False)
    frame = np.zeros((a.height, a.width, 3), dtype=np.uint8)
    start = time.perf_counter()
    sent = 0
    try:
        while time.perf_counter() - start < a.seconds:
            pace(start, sent, a.fps)
            server.send(frame)
            sent += 1
    except RuntimeError as e:  # "Client(s) seems to be offline"
        print(json.dumps({"sent": sent, "error": str(e)}), flush=True)
        return
    server.close()
    print(json.dumps({"sent": sent}), flush=True)


def codec(a):
    """simplejpeg (vidgear's codec) on one core: encode and decode rates with vidgear's settings."""
    import simplejpeg

    frame = np.fromfile(a.file, dtype=np.uint8).reshape(a.height, a.width, 3)
    start = time.perf_counter()
    for _ in range(a.frames):
        jpeg = simplejpeg.encode_jpeg(frame, quality=90, colorspace="BGR", colorsubsampling="422", fastdct=True)
    encode = a.frames / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(a.frames):
        simplejpeg.decode_jpeg(jpeg, colorspace="BGR", fastdct=True, fastupsample=False)
    decode = a.frames / (time.perf_counter() - start)
    print(json.dumps({"encode_fps": round(encode, 1), "decode_fps": round(decode, 1), "jpeg_bytes": len(jpeg)}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--pattern", type=int, default=0)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--jpeg", action="store_true")
    p.add_argument("--source", choices=["pooled", "file"], default="pooled")
    p.add_argument("--file")
    p.add_argument("--camera", choices=sorted(CAMERA))
    p.add_argument("--fps", type=float, default=0)
    p.add_argument("--times")
    p.add_argument("--ports", default="")
    p.add_argument("--seconds", type=float, default=10.0)
    a = p.parse_args()
    {"vidgear-send": vidgear_send, "vidgear-recv": vidgear_recv, "zmq-send": zmq_send,
     "zmq-recv": zmq_recv, "codec": codec, "vidgear-mc-send": vidgear_mc_send}[a.mode](a)


if __name__ == "__main__":
    main()
