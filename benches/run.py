"""Runs every side of the benchmark on loopback and prints one table (scripts/bench)."""

import json
import os
import platform
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "release", "examples", "netgear-bench")
PY = sys.executable
VIDGEAR = os.path.join(ROOT, "benches", "vidgear_bench.py")
FRAMES = int(os.environ.get("FRAMES", "300"))
W = int(os.environ.get("WIDTH", "1920"))
H = int(os.environ.get("HEIGHT", "1080"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def last_json(proc):
    out, _ = proc.communicate(timeout=300)
    lines = [l for l in out.decode().splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"no result from {proc.args}")
    return json.loads(lines[-1])


def pair(recv_cmd, send_cmd):
    """Starts the receiver, waits for READY, runs the sender. The rate is the sender's
    (acknowledged frames per second: receiver-side rates of a queueing receiver such as
    vidgear's are inflated by its backlog); `frames` is what the receiver got."""
    receiver = subprocess.Popen(recv_cmd, stdout=subprocess.PIPE)
    line = receiver.stdout.readline().decode().strip()
    assert line == "READY", line
    sender = subprocess.Popen(send_cmd, stdout=subprocess.PIPE)
    received = last_json(receiver)
    sent = last_json(sender)
    return {"fps": sent["fps"], "frames": received["frames"], "receiver_fps": received["fps"]}


def ours(jpeg, pattern=0):
    port = str(free_port())
    common = ["--port", port, "--pattern", str(pattern), "--frames", str(FRAMES)]
    recv = [BENCH, "recv", *common] + (["--decode"] if jpeg else [])
    send = [BENCH, "send", *common, "--width", str(W), "--height", str(H)] + (["--jpeg"] if jpeg else [])
    return pair(recv, send)


def vidgear(jpeg, pattern=0):
    port = str(free_port())
    common = ["--port", port, "--pattern", str(pattern), "--frames", str(FRAMES), "--width", str(W), "--height", str(H)]
    recv = [PY, VIDGEAR, "vidgear-recv", *common]
    send = [PY, VIDGEAR, "vidgear-send", *common] + (["--jpeg"] if jpeg else [])
    return pair(recv, send)


def bare_zmq():
    port = str(free_port())
    common = ["--port", port, "--frames", str(FRAMES), "--width", str(W), "--height", str(H)]
    return pair([PY, VIDGEAR, "zmq-recv", *common], [PY, VIDGEAR, "zmq-send", *common])


def main():
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.node()}: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"{W}x{H} BGR, {FRAMES} frames, pattern 0 (PAIR), loopback", flush=True)
    codec = json.loads(subprocess.check_output([BENCH, "codec", "--width", str(W), "--height", str(H)]).decode().splitlines()[-1])
    rows = {
        "raw: netgearsink → netgearsrc": ours(False),
        "raw: vidgear → vidgear": vidgear(False),
        "raw: bare pyzmq (ceiling)": bare_zmq(),
        "jpeg: netgearsink → netgearsrc": ours(True),
        "jpeg: vidgear → vidgear": vidgear(True),
    }
    print(f"{'path':36} {'frames/s':>9} {'received':>9}")
    for name, r in rows.items():
        print(f"{name:36} {r['fps']:9.1f} {r['frames']:9d}")
    print(f"{'jpeg: libjpeg-turbo encode only':36} {codec['encode_fps']:9.1f}")
    print(f"{'jpeg: libjpeg-turbo decode only':36} {codec['decode_fps']:9.1f}")
    ratio = lambda a, b: rows[a]["fps"] / rows[b]["fps"] if rows[b]["fps"] else float("nan")
    print()
    print(f"raw  plugin / vidgear          {ratio('raw: netgearsink → netgearsrc', 'raw: vidgear → vidgear'):.2f}x")
    print(f"raw  plugin / bare ZeroMQ      {ratio('raw: netgearsink → netgearsrc', 'raw: bare pyzmq (ceiling)'):.2f}")
    print(f"jpeg plugin / vidgear          {ratio('jpeg: netgearsink → netgearsrc', 'jpeg: vidgear → vidgear'):.2f}x")
    print(f"jpeg plugin / encode-only rate {rows['jpeg: netgearsink → netgearsrc']['fps'] / codec['encode_fps']:.2f}")
    print(f"(average JPEG frame: {codec['jpeg_bytes']} bytes)")
    ms = json.loads(subprocess.check_output([BENCH, "multiserver", "--servers", "128", "--frames", "50"]).decode().splitlines()[-1])
    print()
    print(f"multi-server: {ms['servers']} netgearsinks → one netgearsrc (pattern 1, 320x240 raw, one process): "
          f"{ms['frames']}/{ms['expected']} frames, {ms['fps']:.0f} frames/s, {ms['cpu_percent']:.0f} % CPU")


if __name__ == "__main__":
    main()
