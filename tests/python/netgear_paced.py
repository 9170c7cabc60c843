# SPDX-License-Identifier: MPL-2.0
"""A real vidgear NetGear sender that sends at a steady rate, like a camera.

    netgear_paced.py --port P --fps F --frames N [--width W --height H] [--jpeg]

Frame i leaves at start + i / F (absolute deadlines, so the rate does not drift with the
time each send takes). Prints one JSON line when done: frames sent and seconds taken.
"""

import argparse
import json
import time

import numpy as np
from vidgear.gears import NetGear


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=5555)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--height", type=int, default=48)
    p.add_argument("--jpeg", action="store_true")
    args = p.parse_args()
    server = NetGear(
        address="127.0.0.1",
        port=str(args.port),
        pattern=0,
        logging=False,
        jpeg_compression=args.jpeg,
    )
    frame = np.zeros((args.height, args.width, 3), np.uint8)
    start = time.monotonic()
    for idx in range(args.frames):
        delay = start + idx / args.fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        frame[:, :, :] = (idx * 4) % 256
        server.send(frame)
    took = time.monotonic() - start
    server.close()
    print(json.dumps({"sent": args.frames, "seconds": round(took, 3)}), flush=True)


if __name__ == "__main__":
    main()
