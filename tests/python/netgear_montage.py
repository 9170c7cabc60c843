# SPDX-License-Identifier: MPL-2.0
"""A real vidgear multi-server sender for the montage tests and benchmark.

    netgear_montage.py --port P --pattern N --frames N --width W --height H
        [--flat B,G,R] [--message TAG] [--resize-at K --width2 W --height2 H]
        [--start-at UNIX_TIME] [--interval S | --fps F] [--jpeg]

Frames are netgear_peer.py's test frames (byte-exact checks), or one flat colour (montage
pixel checks). With --message every frame carries {"server": TAG, "n": idx}. From frame K
on, --resize-at sends frames of the second size. --start-at lines several senders up.
Prints one JSON report when done: frames sent and the seconds sending took.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
from vidgear.gears import NetGear

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netgear_peer import test_frame  # noqa: E402


def frame_for(args, idx):
    width, height = args.width, args.height
    if args.resize_at is not None and idx >= args.resize_at:
        width, height = args.width2, args.height2
    if args.flat:
        colour = [int(v) for v in args.flat.split(",")]
        frame = np.empty((height, width, 3), dtype=np.uint8)
        frame[:, :] = colour
        return frame
    return test_frame(idx, height, width, 3, "uint8")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pattern", type=int, default=1)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--height", type=int, default=48)
    p.add_argument("--flat", default="")
    p.add_argument("--message", default="")
    p.add_argument("--resize-at", type=int, default=None)
    p.add_argument("--width2", type=int, default=80)
    p.add_argument("--height2", type=int, default=60)
    p.add_argument("--start-at", type=float, default=0.0)
    p.add_argument("--interval", type=float, default=0.0)
    p.add_argument("--fps", type=float, default=0.0)
    p.add_argument("--jpeg", action="store_true", help="vidgear's default JPEG compression")
    args = p.parse_args()

    opts = {"multiserver_mode": True, "jpeg_compression": args.jpeg}
    if args.pattern < 2:
        opts["request_timeout"] = 4
        opts["max_retries"] = 3
    server = NetGear(
        address="127.0.0.1", port=str(args.port), pattern=args.pattern,
        receive_mode=False, logging=False, **opts,
    )
    frames = [frame_for(args, idx) for idx in range(args.frames)] if args.flat else None
    wait = args.start_at - time.time()
    if wait > 0:
        time.sleep(wait)
    elif args.pattern == 2:
        time.sleep(0.5)  # PUB drops what it sends before the subscription arrives
    period = 1.0 / args.fps if args.fps else args.interval
    began = time.monotonic()
    for idx in range(args.frames):
        frame = frames[idx] if frames else frame_for(args, idx)
        if args.message:
            server.send(frame, message={"server": args.message, "n": idx})
        else:
            server.send(frame)
        if args.fps:
            # Paced to a clock, not per frame, so a slow send is caught up.
            ahead = began + (idx + 1) * period - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        elif period:
            time.sleep(period)
    took = time.monotonic() - began
    server.close()
    print(json.dumps({"sent": args.frames, "seconds": round(took, 3)}), flush=True)


if __name__ == "__main__":
    main()
