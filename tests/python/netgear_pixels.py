# SPDX-License-Identifier: MPL-2.0
"""A real vidgear NetGear receiver that reports what its frames look like.

    netgear_pixels.py --port P [--pattern N] [--seconds S]

Prints READY once bound, then, when the sender's termination arrives (or after S
seconds), one JSON object: the number of frames, the shape and dtype of each distinct
frame, and the mean value of every channel of the last frame (what recv() returned,
in its own channel order), so a test can check that red arrives as [0, 0, 255] (BGR).
"""

import argparse
import json
import os
import sys
import threading
import time

import numpy as np
from vidgear.gears import NetGear


def summary(frames, terminated):
    last = frames[-1] if frames else None
    means = None
    if last is not None:
        pixels = last.reshape(-1, 1) if last.ndim == 2 else last.reshape(-1, last.shape[2])
        means = [round(float(v), 1) for v in pixels.mean(axis=0)]
    return {
        "frames": len(frames),
        "shapes": sorted({repr((list(f.shape), str(f.dtype))) for f in frames}),
        "means": means,
        "terminated": terminated,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=5555)
    p.add_argument("--pattern", type=int, default=0)
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    client = NetGear(
        address="*",
        port=str(args.port),
        pattern=args.pattern,
        receive_mode=True,
        logging=False,
    )
    print("READY", flush=True)
    frames = []

    def watchdog():
        time.sleep(args.seconds)
        print(json.dumps(summary(list(frames), False)), flush=True)
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    while True:
        frame = client.recv()
        if frame is None:
            break
        frames.append(frame)
    client.close()
    print(json.dumps(summary(frames, True)), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
