# SPDX-License-Identifier: MPL-2.0
"""Typed arrays through a real vidgear NetGear, for tests/it/tensors_vidgear.rs.

    netgear_tensors.py cases
    netgear_tensors.py send --port P [--pattern N] [--big-endian-first]
    netgear_tensors.py recv --port P [--pattern N] --seconds S [--return-case K]

The cases are every dtype NetGear can carry, in 2-D and 3-D shapes with 1 to 5 channels
(height 3, width 5, so a transposed axis shows). Integers cover their whole range, floats
hold NaN, +inf, -inf and -0.0. Each case is printed (or reported) as its dtype name, its
shape and its bytes in hex, so the tests compare bytes without recomputing them.

`cases` prints the list as one JSON line. `send` sends every case raw
(jpeg_compression=False) and prints {"sent": n}; with --big-endian-first it first sends
one big-endian array that a receiver must refuse. `recv` prints READY, then one JSON
object when the sender's termination arrives (or after --seconds): {"frames": [...],
"terminated": bool}. With --return-case K it runs in bidirectional mode and returns
case K with every reply.
"""

import argparse
import json
import sys
import threading
import time

import numpy as np
from vidgear.gears import NetGear

DTYPES = [
    "uint8", "int8", "uint16", "int16", "uint32", "int32",
    "uint64", "int64", "float16", "float32", "float64",
]
SHAPES = [(3, 5), (3, 5, 1), (3, 5, 2), (3, 5, 3), (3, 5, 4), (3, 5, 5)]


def array(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    count = int(np.prod(shape))
    if np.dtype(dtype).kind == "f":
        values = (rng.standard_normal(count) * 1000).astype(dtype)
        values[:4] = [np.nan, np.inf, -np.inf, -0.0]
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size=count, dtype=dtype, endpoint=True)
    return values.reshape(shape)


def cases():
    arrays = []
    for i, dtype in enumerate(DTYPES):
        for j, shape in enumerate(SHAPES):
            arrays.append(array(dtype, shape, seed=i * 100 + j))
    return arrays


def describe(a):
    return {"dtype": str(a.dtype), "shape": list(a.shape), "hex": a.tobytes().hex()}


def make(args, receive, **extra):
    return NetGear(
        address="*" if receive else "127.0.0.1",
        port=str(args.port),
        protocol="tcp",
        pattern=args.pattern,
        receive_mode=receive,
        logging=False,
        jpeg_compression=False,
        request_timeout=4,
        max_retries=2,
        **extra,
    )


def send(args):
    server = make(args, receive=False)
    if args.pattern == 2:
        time.sleep(1.0)
    if args.big_endian_first:
        server.send(np.arange(15, dtype=">u2").reshape(3, 5))
    arrays = cases()
    for a in arrays:
        server.send(a)
    server.close()
    print(json.dumps({"sent": len(arrays)}), flush=True)


def recv(args):
    returned = None if args.return_case is None else cases()[args.return_case]
    extra = {} if returned is None else {"bidirectional_mode": True}
    client = make(args, receive=True, **extra)
    print("READY", flush=True)
    frames = []

    def report(terminated):
        print(json.dumps({"frames": frames, "terminated": terminated}), flush=True)

    def watchdog():
        time.sleep(args.seconds)
        report(False)
        sys.stdout.flush()
        import os

        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    while True:
        data = client.recv(return_data=returned) if returned is not None else client.recv()
        if data is None:
            break
        frame = data[1] if returned is not None else data
        frames.append(describe(frame))
    client.close()
    report(True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["cases", "send", "recv"])
    parser.add_argument("--port", type=int, default=5454)
    parser.add_argument("--pattern", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--big-endian-first", action="store_true")
    parser.add_argument("--return-case", type=int)
    args = parser.parse_args()
    if args.mode == "cases":
        print(json.dumps([describe(a) for a in cases()]), flush=True)
    elif args.mode == "send":
        send(args)
    else:
        recv(args)


if __name__ == "__main__":
    main()
