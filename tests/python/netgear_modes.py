# SPDX-License-Identifier: MPL-2.0
"""Real vidgear NetGear peers in its exclusive modes, for tests/it/modes_vidgear.rs.

    bi-send  --port P --pattern N --messages JSON_LIST     bidirectional sender
    bi-recv  --port P --pattern N [--return JSON | --return-frame] [--jpeg]
    ms-send  --port P --pattern N --frames N               multi-server sender
    ms-recv  --ports A,B,.. --pattern N                    multi-server receiver
    mc-send  --ports A,B,.. --pattern N --frames N         multi-client sender
    mc-recv  --port P --pattern N --return JSON            multi-client receiver
    paced-send --port P --pattern N --frames N --fps F --returned raw|smooth
             bidirectional sender at F fps; reports every send()'s value, identified
             against the receiver's returned frames (raw: test_frame(k), byte for byte;
             smooth: smooth_frame(k), the best k by PSNR, for JPEG returns)
    burst-send --port P --pattern N --bursts B --frames N --pause S
             plain sender: B bursts of N frames, S seconds of silence between them

Frames are netgear_peer.py's test frames (64x48 BGR). Receivers print READY once bound;
every peer prints one JSON report when it ends (or when --seconds runs out).
"""

import argparse
import json
import os
import sys
import threading
import time

import numpy as np
from vidgear.gears import NetGear

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netgear_peer import frame_index, psnr, smooth_frame, test_frame  # noqa: E402

W, H = 64, 48
RETURNED = test_frame(77, H, W, 3, "uint8")
# smooth_frame(k) nearly equals smooth_frame(k + 73) (7 * 73 = -1 mod 256): only the
# first 72 are told apart, far more than the tests return.
SMOOTH_CANDIDATES = 72


def make(args, receive, **modes):
    opts = {"jpeg_compression": bool(args.jpeg), **modes}
    if args.pattern < 2:
        opts["request_timeout"] = 4
        opts["max_retries"] = 3
    return NetGear(
        address="*" if receive else "127.0.0.1",
        port=args.ports.split(",") if args.ports else str(args.port),
        pattern=args.pattern,
        receive_mode=receive,
        logging=False,
        **opts,
    )


def report(data):
    print(json.dumps(data), flush=True)


def watchdog(seconds, state):
    def run():
        time.sleep(seconds)
        report({**state, "terminated": False, "timed_out": True})
        os._exit(3)

    threading.Thread(target=run, daemon=True).start()


def check(frame):
    """The index of a received test frame, or -1 if its bytes are wrong."""
    idx = frame_index(frame)
    expected = test_frame(idx, frame.shape[0], frame.shape[1], 3 if frame.ndim == 3 else 1, str(frame.dtype))
    return idx if expected.shape == frame.shape and np.array_equal(expected, frame) else -1


def describe(value):
    """A returned value as JSON: arrays by shape and whether they are the expected frame."""
    if isinstance(value, np.ndarray):
        exact = value.shape == RETURNED.shape and np.array_equal(value, RETURNED)
        diff = float(np.abs(value.astype(np.int32) - RETURNED.astype(np.int32)).mean()) if value.shape == RETURNED.shape else None
        return {"ndarray": list(value.shape), "exact": bool(exact), "mean_abs_diff": diff}
    return value


def bi_send(args):
    server = make(args, False, bidirectional_mode=True)
    messages = json.loads(args.messages)
    returns = []
    for idx, message in enumerate(messages):
        returns.append(describe(server.send(test_frame(idx, H, W, 3, "uint8"), message=message)))
    server.close()
    report({"returns": returns})


def bi_recv(args):
    client = make(args, True, bidirectional_mode=True)
    print("READY", flush=True)
    state = {"messages": [], "frames": []}
    watchdog(args.seconds, state)
    ret = RETURNED if args.return_frame else (json.loads(args.ret) if args.ret else None)
    while True:
        data = client.recv(return_data=ret)
        if data is None:
            break
        message, frame = data
        state["messages"].append(message)
        state["frames"].append(check(frame))
    client.close()
    report({**state, "terminated": True})


def ms_send(args):
    server = make(args, False, multiserver_mode=True)
    if args.pattern == 2:
        time.sleep(0.5)
    # Several senders line up on one start time, however long each Python took to start.
    time.sleep(max(0.0, args.start_at - time.time()))
    for idx in range(args.frames):
        server.send(test_frame(idx, H, W, 3, "uint8"))
        if args.interval:
            time.sleep(args.interval)
    server.close()
    report({"sent": args.frames})


def ms_recv(args):
    client = make(args, True, multiserver_mode=True)
    print("READY", flush=True)
    state = {"pairs": []}
    watchdog(args.seconds, state)
    while True:
        data = client.recv()
        if data is None:
            break
        port, frame = data[0], data[-1]
        state["pairs"].append([int(port), check(frame)])
    client.close()
    report({**state, "terminated": True})


def mc_send(args):
    server = make(args, False, multiclient_mode=True)
    if args.pattern == 2:
        time.sleep(0.5)
    returns = []
    for idx in range(args.frames):
        result = server.send(test_frame(idx, H, W, 3, "uint8"))
        if result is not None:
            port, data = result
            returns.append([int(port), describe(data)])
        if args.interval:
            time.sleep(args.interval)
    server.close()
    report({"returns": returns})


def mc_recv(args):
    client = make(args, True, multiclient_mode=True)
    print("READY", flush=True)
    state = {"frames": []}
    watchdog(args.seconds, state)
    ret = json.loads(args.ret) if args.ret else None
    while True:
        frame = client.recv(return_data=ret)
        if frame is None:
            break
        state["frames"].append(check(frame))
    client.close()
    report({**state, "terminated": True})


def identify(value, returned):
    """What one send() gave back: None, plain data, or which returned frame it is."""
    if value is None:
        return None
    if not isinstance(value, np.ndarray):
        return {"data": value}
    out = {"shape": list(value.shape), "dtype": str(value.dtype)}
    if value.shape != (H, W, 3):
        return out
    if returned == "raw":
        k = frame_index(value)
        out.update(index=k, exact=bool(np.array_equal(value, test_frame(k, H, W, 3, "uint8"))))
    else:
        scores = [psnr(value, smooth_frame(k, H, W, 3)) for k in range(SMOOTH_CANDIDATES)]
        k = int(np.argmax(scores))
        out.update(index=k, psnr=round(scores[k], 2))
    return out


def paced_send(args):
    server = make(args, False, bidirectional_mode=True)
    period = 1.0 / args.fps
    start = time.monotonic()
    values = []
    for idx in range(args.frames):
        delay = start + idx * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        values.append(server.send(test_frame(idx, H, W, 3, "uint8"), message=idx))
    server.close()
    # Identified after the loop, so numpy's speed does not change the pace.
    report({"returns": [identify(v, args.returned) for v in values]})


def burst_send(args):
    server = make(args, False)
    sent = 0
    for burst in range(args.bursts):
        if burst:
            time.sleep(args.pause)
        for _ in range(args.frames):
            server.send(test_frame(sent, H, W, 3, "uint8"))
            sent += 1
            time.sleep(0.02)
    server.close()
    report({"sent": sent})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--port", type=int, default=5555)
    p.add_argument("--ports", default="")
    p.add_argument("--pattern", type=int, default=1)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--messages", default="[]")
    p.add_argument("--return", dest="ret", default="")
    p.add_argument("--return-frame", action="store_true")
    p.add_argument("--jpeg", action="store_true")
    p.add_argument("--interval", type=float, default=0.0)
    p.add_argument("--start-at", type=float, default=0.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--returned", choices=["raw", "smooth"], default="raw")
    p.add_argument("--bursts", type=int, default=3)
    p.add_argument("--pause", type=float, default=2.0)
    args = p.parse_args()
    modes = {"bi-send": bi_send, "bi-recv": bi_recv, "ms-send": ms_send, "ms-recv": ms_recv, "mc-send": mc_send, "mc-recv": mc_recv, "paced-send": paced_send, "burst-send": burst_send}
    modes[args.mode](args)


if __name__ == "__main__":
    main()
