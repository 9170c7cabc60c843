# SPDX-License-Identifier: MPL-2.0
"""A real vidgear NetGear receiver for several streams in a row, keeping what it got.

    netgear_camera.py --ports P0,P1,… --out DIR [--seconds S]

For each stream i, on port Pi in turn: binds, prints READY, receives until the sender's
termination, writes every frame's bytes (as recv() returned them) one after the other to
DIR/stream-i.bin, and prints one JSON object: the stream, the number of frames, and the
shape and dtype of each distinct frame. Gives up (exit 3) after S seconds in all.
"""

import argparse
import json
import os
import threading
import time

from vidgear.gears import NetGear


def receive(port, path):
    client = NetGear(address="*", port=str(port), pattern=0, receive_mode=True, logging=False)
    print("READY", flush=True)
    shapes, frames = set(), 0
    with open(path, "wb") as out:
        while True:
            frame = client.recv()
            if frame is None:
                break
            shapes.add(repr((list(frame.shape), str(frame.dtype))))
            out.write(frame.tobytes())
            frames += 1
    client.close()
    return {"frames": frames, "shapes": sorted(shapes)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ports", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=120.0)
    args = p.parse_args()

    def watchdog():
        time.sleep(args.seconds)
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    for stream, port in enumerate(int(p) for p in args.ports.split(",")):
        report = receive(port, os.path.join(args.out, f"stream-{stream}.bin"))
        print(json.dumps({"stream": stream, **report}), flush=True)


if __name__ == "__main__":
    main()
