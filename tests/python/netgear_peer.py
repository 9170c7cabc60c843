# SPDX-License-Identifier: MPL-2.0
"""A real vidgear NetGear peer for the interop tests.

    netgear_peer.py send --port P --pattern N --frames N --width W --height H --channels C
    netgear_peer.py recv --port P --pattern N --seconds S

Frames follow one formula that the Rust tests share (test_frame in
tests/it/common/frames.rs): value = idx*7 + y*3 + x*5 + c*11, modulo 256 for uint8 (65536
for uint16). A uint8 frame's index is recovered from its first value (7 * 183 = 1 mod 256).

The receiver prints one JSON object when it ends: what it received and whether it ended
because the sender's termination message arrived.
"""

import argparse
import json
import sys
import threading
import time

import numpy as np
from vidgear.gears import NetGear


def test_frame(idx, height, width, channels, dtype):
    y = np.arange(height, dtype=np.int64).reshape(height, 1, 1)
    x = np.arange(width, dtype=np.int64).reshape(1, width, 1)
    c = np.arange(channels, dtype=np.int64).reshape(1, 1, channels)
    values = idx * 7 + y * 3 + x * 5 + c * 11
    if dtype == "uint16":
        frame = (values % 65536).astype(np.uint16)
    else:
        frame = (values % 256).astype(np.uint8)
    return frame[:, :, 0] if channels == 1 else frame


def smooth_frame(idx, height, width, channels):
    """Continuous content for JPEG tests (tests/it/common/frames.rs, smooth_frame)."""
    y = np.arange(height, dtype=np.int64).reshape(height, 1, 1)
    x = np.arange(width, dtype=np.int64).reshape(1, width, 1)
    c = np.arange(channels, dtype=np.int64).reshape(1, 1, channels)

    def tri(t):
        t = t % 256
        return np.where(t < 128, t * 2, (255 - t) * 2)

    frame = ((tri(x * 2 + idx * 7) + tri(y * 3 + c * 40)) // 2).astype(np.uint8)
    return frame[:, :, 0] if channels == 1 else frame


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else float(10 * np.log10(255.0 * 255.0 / mse))


def frame_index(frame):
    first = int(frame.flat[0])
    if frame.dtype == np.uint16:
        return first // 7
    return (first * 183) % 256


def options(args, receive):
    # A colorspace name turns vidgear's JPEG compression on with that layout.
    opts = {"jpeg_compression": args.jpeg if args.jpeg else False}
    if args.secure:
        opts["secure_mode"] = args.secure
        opts["custom_cert_location"] = args.certs
    if args.pattern < 2:
        opts["request_timeout"] = args.request_timeout  # seconds
        opts["max_retries"] = args.max_retries
    return opts


def make(args, receive):
    address = args.address or ("*" if receive else "127.0.0.1")
    return NetGear(
        address=address,
        port=str(args.port),
        protocol=args.protocol,
        pattern=args.pattern,
        receive_mode=receive,
        logging=args.verbose,
        **options(args, receive),
    )


def send(args):
    server = make(args, receive=False)
    if args.pattern == 2:
        # PUB/SUB drops what it sends before the subscription has arrived.
        time.sleep(args.warmup)
    for idx in range(args.frames):
        if args.smooth:
            frame = smooth_frame(idx, args.height, args.width, args.channels)
        else:
            frame = test_frame(idx, args.height, args.width, args.channels, args.dtype)
        server.send(frame)
        if args.interval:
            time.sleep(args.interval)
    server.close()
    print(json.dumps({"sent": args.frames}), flush=True)


def recv(args):
    client = make(args, receive=True)
    print("READY", flush=True)
    received = []
    bad = []
    psnrs = []
    shapes = set()
    result = {"terminated": False}

    def watchdog():
        time.sleep(args.seconds)
        report(received, bad, shapes, False, psnrs)
        sys.stdout.flush()
        import os

        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    frames = []
    while True:
        # Only collect here: vidgear drops frames still queued when the termination
        # arrives, so a slow loop would lose the last ones.
        frame = client.recv()
        if frame is None:
            result["terminated"] = True
            break
        frames.append(frame)
    if args.smooth:
        # Lossy frames: in order (patterns 0/1), compared by PSNR.
        for idx, frame in enumerate(frames):
            channels = 1 if frame.ndim == 2 else frame.shape[2]
            expected = smooth_frame(idx, frame.shape[0], frame.shape[1], channels)
            if expected.shape != frame.shape:
                bad.append(idx)
            else:
                psnrs.append(round(psnr(expected, frame), 2))
            received.append(idx)
            shapes.add((list(frame.shape), str(frame.dtype)).__repr__())
        frames = []
    for frame in frames:
        idx = frame_index(frame)
        channels = 1 if frame.ndim == 2 else frame.shape[2]
        expected = test_frame(idx, frame.shape[0], frame.shape[1], channels, str(frame.dtype))
        if expected.shape != frame.shape or not np.array_equal(expected, frame):
            bad.append(idx)
        received.append(idx)
        shapes.add((list(frame.shape), str(frame.dtype)).__repr__())
    client.close()
    report(received, bad, shapes, result["terminated"], psnrs)


def report(received, bad, shapes, terminated, psnrs):
    print(
        json.dumps(
            {
                "received": received,
                "bad": bad,
                "shapes": sorted(shapes),
                "terminated": terminated,
                "psnr_min": min(psnrs) if psnrs else None,
            }
        ),
        flush=True,
    )


def keys(args):
    """vidgear's own key generation, for tests that use keys vidgear made."""
    from vidgear.gears.helper import generate_auth_certificates

    generate_auth_certificates(args.certs, overwrite=True, logging=False)
    print(json.dumps({"keys": args.certs}), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["send", "recv", "keys"])
    p.add_argument("--port", type=int, default=5555)
    p.add_argument("--pattern", type=int, default=0)
    p.add_argument("--protocol", default="tcp")
    p.add_argument("--address", default="")
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--height", type=int, default=48)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--dtype", default="uint8")
    p.add_argument("--jpeg", nargs="?", const="BGR", default=None, help="JPEG colorspace")
    p.add_argument("--smooth", action="store_true", help="smooth frames (for JPEG)")
    p.add_argument("--interval", type=float, default=0.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--request-timeout", type=int, default=4)
    p.add_argument("--max-retries", type=int, default=3)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--secure", type=int, default=0, help="1 StoneHouse, 2 IronHouse")
    p.add_argument("--certs", default="", help="custom_cert_location")
    args = p.parse_args()
    {"send": send, "recv": recv, "keys": keys}[args.mode](args)


if __name__ == "__main__":
    main()
