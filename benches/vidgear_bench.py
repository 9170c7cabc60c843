"""vidgear and bare-pyzmq sides of scripts/bench. Each mode prints one JSON line.

    vidgear_bench.py vidgear-send|vidgear-recv --port P --pattern N --frames N [--jpeg]
    vidgear_bench.py zmq-send|zmq-recv --port P --frames N
        PAIR, header + frame + ack per frame: the transport's ceiling
"""

import argparse
import json
import time

import numpy as np


def frames(width, height, count):
    """Gradients plus noise, the same recipe as examples/netgear-bench.rs."""
    rng = np.random.default_rng(7)
    y = np.arange(height).reshape(height, 1, 1)
    x = np.arange(width).reshape(1, width, 1)
    c = np.arange(3).reshape(1, 1, 3)
    out = []
    for idx in range(count):
        t = (x * 2 + idx * 7 + y + c * 40) % 512
        tri = np.where(t < 256, t, 511 - t)
        noise = rng.integers(0, 16, size=(height, width, 3))
        out.append((tri * 15 // 16 + noise).astype(np.uint8))
    return out


def rate(times):
    """Frames per second between the first and the last of a series of instants."""
    return round((len(times) - 1) / (times[-1] - times[0]), 1) if len(times) > 1 else 0.0


def vidgear_send(a):
    from vidgear.gears import NetGear

    opts = {"jpeg_compression": a.jpeg}
    server = NetGear(address="127.0.0.1", port=str(a.port), pattern=a.pattern, logging=False, **opts)
    fs = frames(a.width, a.height, 8)
    if a.pattern == 2:
        time.sleep(0.5)
    cpu = time.process_time()
    times = []
    for i in range(a.frames):
        times.append(time.perf_counter())
        server.send(fs[i % len(fs)])
    cpu = time.process_time() - cpu
    server.close()
    print(json.dumps({"sent": a.frames, "fps": rate(times), "cpu_s": round(cpu, 2)}), flush=True)


def vidgear_recv(a):
    from vidgear.gears import NetGear

    client = NetGear(address="127.0.0.1", port=str(a.port), pattern=a.pattern, receive_mode=True, logging=False)
    print("READY", flush=True)
    times = []
    cpu = time.process_time()
    while len(times) < a.frames:
        frame = client.recv()
        if frame is None:
            break
        times.append(time.perf_counter())
    cpu = time.process_time() - cpu
    client.close()
    print(json.dumps({"frames": len(times), "fps": rate(times), "cpu_s": round(cpu, 2)}), flush=True)


def zmq_send(a):
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PAIR)
    s.connect(f"tcp://127.0.0.1:{a.port}")
    fs = frames(a.width, a.height, 8)
    header = json.dumps({"terminate_flag": False, "compression": False, "message": None, "pattern": "0",
                         "dtype": "uint8", "shape": [a.height, a.width, 3]}).encode()
    times = []
    for i in range(a.frames):
        times.append(time.perf_counter())
        s.send(header, zmq.SNDMORE)
        s.send(fs[i % len(fs)], copy=False)
        s.recv()
    print(json.dumps({"sent": a.frames, "fps": rate(times)}), flush=True)
    ctx.destroy(linger=1000)


def zmq_recv(a):
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PAIR)
    s.bind(f"tcp://127.0.0.1:{a.port}")
    print("READY", flush=True)
    times = []
    while len(times) < a.frames:
        parts = s.recv_multipart(copy=False)
        if len(parts) < 2:
            break
        s.send(b"Data received on device: BENCH000 !")
        np.frombuffer(parts[1].buffer, dtype=np.uint8)
        times.append(time.perf_counter())
    print(json.dumps({"frames": len(times), "fps": rate(times)}), flush=True)
    ctx.destroy(linger=0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pattern", type=int, default=0)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--jpeg", action="store_true")
    a = p.parse_args()
    {"vidgear-send": vidgear_send, "vidgear-recv": vidgear_recv, "zmq-send": zmq_send, "zmq-recv": zmq_recv}[a.mode](a)


if __name__ == "__main__":
    main()
