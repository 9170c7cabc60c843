# SPDX-License-Identifier: MPL-2.0
"""A real vidgear multi-client receiver (pattern 1) standing for a worker whose
application takes --delay seconds per frame, for tests/load_balance_vidgear.rs and the
load-balancing rows of scripts/bench.

    netgear_worker.py --port P [--delay S] [--return JSON] [--seconds T]

Prints READY once bound, then one line per frame its application takes, as it takes it (so
a worker that is killed has told what it took):

    GOT <index> <CLOCK_MONOTONIC seconds> <frames vidgear still queues>

and at the end one JSON line: {"port", "consumed": [indices], "queued": [indices vidgear
still held when the termination came], "terminated": bool}. vidgear answers a frame as
soon as it reads it and queues up to 96 frames for the application; on termination it
drops what is queued, so "queued" is read from its private queue before close().

The index of a frame is its first 4 bytes, little-endian (the senders write it there).
"""

import argparse
import json
import os
import threading
import time

from vidgear.gears import NetGear


def index_of(frame):
    return int.from_bytes(frame.reshape(-1)[:4].tobytes(), "little")


def watchdog(seconds, state):
    def run():
        time.sleep(seconds)
        print(json.dumps({**state, "terminated": False, "timed_out": True}), flush=True)
        os._exit(3)

    threading.Thread(target=run, daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--return", dest="ret", default="")
    p.add_argument("--seconds", type=float, default=60.0)
    a = p.parse_args()
    client = NetGear(address="*", port=str(a.port), pattern=1, receive_mode=True,
                     multiclient_mode=True, logging=False, request_timeout=4, max_retries=3)
    ret = json.loads(a.ret) if a.ret else None
    # recv() stores its return_data only once called: set it first, so even a frame that
    # arrives before the first recv() is answered with it.
    client._NetGear__return_data = ret
    queue = client._NetGear__queue
    print("READY", flush=True)
    state = {"port": a.port, "consumed": []}
    watchdog(a.seconds, state)
    while True:
        frame = client.recv(return_data=ret)
        if frame is None:
            break
        idx = index_of(frame)
        state["consumed"].append(idx)
        print(f"GOT {idx} {time.monotonic():.6f} {len(queue)}", flush=True)
        if a.delay:
            time.sleep(a.delay)
    queued = [index_of(f) for f in list(queue) if f is not None]
    client.close()
    print(json.dumps({**state, "queued": queued, "terminated": True}), flush=True)


if __name__ == "__main__":
    main()
