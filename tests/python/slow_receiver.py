# SPDX-License-Identifier: MPL-2.0
"""A bare ZeroMQ NetGear receiver that answers late, for the pipelining tests.

    slow_receiver.py --port P --pattern 0|1 [--delay S] [--first-delay S] [--seconds S]

Binds tcp://127.0.0.1:P (PAIR for pattern 0, REP for pattern 1), prints READY, and for
every frame waits --delay seconds (--first-delay for the first one) before it replies
with vidgear's plain acknowledgement. It ends at the termination message (answered in
pattern 1) or after --seconds, and prints one JSON object: the SHA-256 of every payload
in arrival order, the headers' compression fields, and whether it was terminated.
"""

import argparse
import hashlib
import json
import time

import zmq


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pattern", type=int, default=1)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--first-delay", type=float, default=None)
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args()

    context = zmq.Context()
    socket = context.socket(zmq.REP if args.pattern == 1 else zmq.PAIR)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind("tcp://127.0.0.1:%d" % args.port)
    print("READY", flush=True)

    hashes, compression, terminated = [], [], False
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        if not socket.poll(100):
            continue
        parts = socket.recv_multipart()
        header = json.loads(parts[0])
        if header.get("terminate_flag"):
            terminated = True
            if args.pattern == 1:
                socket.send(b"Termination signal successfully received at Client's end!")
            break
        delay = args.delay
        if not hashes and args.first_delay is not None:
            delay = args.first_delay
        hashes.append(hashlib.sha256(parts[1] if len(parts) > 1 else b"").hexdigest())
        compression.append(header.get("compression"))
        time.sleep(delay)
        socket.send(b"Data received on device: SLOWREPL !")
    socket.close()
    context.term()
    report = {"hashes": hashes, "compression": compression, "terminated": terminated}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
