"""vidgear and bare-pyzmq sides of scripts/bench. Each mode prints one JSON line.

    vidgear_bench.py vidgear-send|vidgear-recv --port P --pattern N --frames N [--jpeg]
                     [--latency --fps F]
    vidgear_bench.py zmq-send|zmq-recv --port P --pattern 0|2 --frames N
        bare pyzmq moving the same header + frame (+ acknowledgement in pattern 0):
        the transport's ceiling
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


def percentile(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return round(values[round((len(values) - 1) * p)], 3)


def vidgear_send(a):
    from vidgear.gears import NetGear

    # vidgear hands messages to recv() only in bidirectional mode.
    opts = {"jpeg_compression": a.jpeg}
    if a.latency:
        opts["bidirectional_mode"] = True  # vidgear rejects the key itself with pattern 2
    server = NetGear(address="127.0.0.1", port=str(a.port), pattern=a.pattern, logging=False, **opts)
    fs = frames(a.width, a.height, 8)
    if a.pattern == 2:
        time.sleep(0.5)
    cpu = time.process_time()
    times = []
    start = time.perf_counter()
    for i in range(a.frames):
        if a.fps:
            time.sleep(max(0.0, start + i / a.fps - time.perf_counter()))
        times.append(time.perf_counter())
        server.send(fs[i % len(fs)], message=time.time_ns() if a.latency else None)
    cpu = time.process_time() - cpu
    server.close()
    print(json.dumps({"sent": a.frames, "fps": rate(times), "cpu_s": round(cpu, 2)}), flush=True)


def vidgear_recv(a):
    from vidgear.gears import NetGear

    opts = {"bidirectional_mode": True} if a.latency else {}
    if a.pattern == 2:
        # Its sender's termination is usually lost in pattern 2: stop after 3 s of silence.
        opts["subscriber_timeout"] = 3
    client = NetGear(address="127.0.0.1", port=str(a.port), pattern=a.pattern, receive_mode=True, logging=False, **opts)
    print("READY", flush=True)
    times, latencies = [], []
    cpu = time.process_time()
    while len(times) < a.frames:
        data = client.recv()
        if data is None:
            break
        if isinstance(data, tuple):
            message, data = data
            if message:
                latencies.append((time.time_ns() - int(message)) / 1e6)
        times.append(time.perf_counter())
    cpu = time.process_time() - cpu
    client.close()
    print(json.dumps({"frames": len(times), "fps": rate(times), "cpu_s": round(cpu, 2),
                      "latency_p50_ms": percentile(latencies, 0.5), "latency_p99_ms": percentile(latencies, 0.99)}), flush=True)


def zmq_send(a):
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PAIR if a.pattern == 0 else zmq.PUB)
    if a.pattern == 2:
        s.setsockopt(zmq.SNDHWM, 1)
    s.connect(f"tcp://127.0.0.1:{a.port}")
    fs = frames(a.width, a.height, 8)
    header = json.dumps({"terminate_flag": False, "compression": False, "message": None, "pattern": str(a.pattern),
                         "dtype": "uint8", "shape": [a.height, a.width, 3]}).encode()
    if a.pattern == 2:
        time.sleep(0.5)
    cpu = time.process_time()
    times = []
    for i in range(a.frames):
        times.append(time.perf_counter())
        s.send(header, zmq.SNDMORE)
        s.send(fs[i % len(fs)], copy=False)
        if a.pattern == 0:
            s.recv()
    cpu = time.process_time() - cpu
    if a.pattern == 2:
        time.sleep(1)
    print(json.dumps({"sent": a.frames, "fps": rate(times), "cpu_s": round(cpu, 2)}), flush=True)
    ctx.destroy(linger=1000)


def zmq_recv(a):
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PAIR if a.pattern == 0 else zmq.SUB)
    if a.pattern == 2:
        s.setsockopt(zmq.RCVHWM, 1)
        s.setsockopt(zmq.SUBSCRIBE, b"")
    s.bind(f"tcp://127.0.0.1:{a.port}")
    print("READY", flush=True)
    times = []
    cpu = time.process_time()
    while len(times) < a.frames:
        if not s.poll(3000):
            break
        parts = s.recv_multipart(copy=False)
        if a.pattern == 0:
            s.send(b"Data received on device: BENCH000 !")
        np.frombuffer(parts[1].buffer, dtype=np.uint8)
        times.append(time.perf_counter())
    cpu = time.process_time() - cpu
    print(json.dumps({"frames": len(times), "fps": rate(times), "cpu_s": round(cpu, 2)}), flush=True)
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
    p.add_argument("--latency", action="store_true")
    p.add_argument("--fps", type=float, default=0)
    a = p.parse_args()
    {"vidgear-send": vidgear_send, "vidgear-recv": vidgear_recv, "zmq-send": zmq_send, "zmq-recv": zmq_recv}[a.mode](a)


if __name__ == "__main__":
    main()
