# SPDX-License-Identifier: MPL-2.0
"""Pub-sub senders for the staleness test: 64x48 BGR frames as fast as possible, each
carrying its send time (time.time()) as the header's `message`.

    stale_sender.py vidgear --port P --seconds S   real vidgear NetGear, pattern 2
    stale_sender.py pyzmq --port P --seconds S     raw PUB with vidgear's options and
                                                   header, without vidgear's overhead
    stale_sender.py pyzmq --hwm 1000 ...           the same with ZeroMQ's default HWM

Prints one JSON line with the number of frames sent when done.
"""

import argparse
import json
import time

import numpy as np
import zmq


def frame():
    return np.full((48, 64, 3), 128, dtype=np.uint8)


def header(sent):
    return {
        "terminate_flag": False,
        "compression": False,
        "message": sent,
        "pattern": "2",
        "dtype": "uint8",
        "shape": [48, 64, 3],
    }


def run_vidgear(args):
    from vidgear.gears import NetGear

    server = NetGear(
        address="127.0.0.1",
        port=str(args.port),
        pattern=2,
        receive_mode=False,
        logging=False,
        jpeg_compression=False,
    )
    time.sleep(0.5)
    image = frame()
    count = 0
    end = time.time() + args.seconds
    while time.time() < end:
        server.send(image, message=time.time())
        count += 1
    server.close()
    return count


def run_pyzmq(args):
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.set_hwm(args.hwm)
    socket.connect("tcp://127.0.0.1:%d" % args.port)
    time.sleep(0.5)
    payload = frame().tobytes()
    count = 0
    end = time.time() + args.seconds
    while time.time() < end:
        socket.send_json(header(time.time()), zmq.SNDMORE)
        socket.send(payload)
        count += 1
    for _ in range(5):
        socket.send_json({"terminate_flag": True})
        time.sleep(0.02)
    socket.close(linger=0)
    context.term()
    return count


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["vidgear", "pyzmq"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--hwm", type=int, default=1, help="pyzmq: the PUB socket's HWM")
    args = p.parse_args()
    count = run_vidgear(args) if args.mode == "vidgear" else run_pyzmq(args)
    print(json.dumps({"sent": count}), flush=True)


if __name__ == "__main__":
    main()
