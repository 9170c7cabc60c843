"""Runs every side of the benchmark on loopback and prints one table (scripts/bench).

For 480p, 720p and 1080p BGR, raw and JPEG, patterns 0 and 2: netgearsink → netgearsrc
(two processes), vidgear's NetGear (two processes), bare pyzmq moving the same bytes (the
ceiling), and GStreamer's tcpserversink → tcpclientsrc for raw. Pattern 0 rates are
acknowledged frames per second at the sender; pattern 2 rates are frames per second that
reached the receiver. Then one-way latency at 720p 30 fps, resident memory over 20 000
frames, 128 servers into one source, and libjpeg-turbo's own rates. Writes
bench-out/results.json and bench-out/bench.png.
"""

import json
import os
import platform
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "release", "examples", "netgear-bench")
SOAK = os.path.join(ROOT, "target", "release", "examples", "netgear-soak")
PY = sys.executable
VIDGEAR = os.path.join(ROOT, "benches", "vidgear_bench.py")
OUT = os.path.join(ROOT, "bench-out")
FRAMES = int(os.environ.get("FRAMES", "300"))
SIZES = {"480p": (640, 480), "720p": (1280, 720), "1080p": (1920, 1080)}


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


def pair(first_cmd, second_cmd, pattern, receiver_first=True):
    """Starts one side, waits for its READY, runs the other; combines both reports."""
    first = subprocess.Popen(first_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = first.stdout.readline().decode().strip()
    assert line == "READY", f"{first_cmd}: {line}"
    second = subprocess.Popen(second_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    a, b = last_json(first), last_json(second)
    received, sent = (a, b) if receiver_first else (b, a)
    frames = received["frames"]
    cpu = (received.get("cpu_s") or 0) + (sent.get("cpu_s") or 0)
    return {
        "fps": sent["fps"] if pattern == 0 and sent.get("fps") else received["fps"],
        "frames": frames,
        "cpu_ms_per_frame": round(1000 * cpu / frames, 2) if frames else None,
        "latency_p50_ms": received.get("latency_p50_ms"),
        "latency_p99_ms": received.get("latency_p99_ms"),
    }


def common(pattern, w, h, frames=FRAMES):
    return ["--port", str(free_port()), "--pattern", str(pattern), "--frames", str(frames), "--width", str(w), "--height", str(h)]


def ours(w, h, jpeg, pattern, extra=(), frames=FRAMES):
    args = common(pattern, w, h, frames)
    recv = [BENCH, "recv", *args] + (["--decode"] if jpeg else [])
    send = [BENCH, "send", *args, *extra] + (["--jpeg"] if jpeg else [])
    return pair(recv, send, pattern)


def vidgear(w, h, jpeg, pattern, extra=(), frames=FRAMES):
    args = common(pattern, w, h, frames)
    recv = [PY, VIDGEAR, "vidgear-recv", *args, *[e for e in extra if e == "--latency"]]
    send = [PY, VIDGEAR, "vidgear-send", *args, *extra] + (["--jpeg"] if jpeg else [])
    return pair(recv, send, pattern)


def bare_zmq(w, h, pattern):
    args = common(pattern, w, h)
    return pair([PY, VIDGEAR, "zmq-recv", *args], [PY, VIDGEAR, "zmq-send", *args], pattern)


def gst_tcp(w, h):
    args = common(0, w, h)
    return pair([BENCH, "tcp-send", *args], [BENCH, "tcp-recv", *args], 2, receiver_first=False)


def ratio(a, b):
    return a / b if a and b else float("nan")


def chart(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is missing: no chart)")
        return
    groups = [(size, codec, pattern) for size in SIZES for codec in ("raw", "jpeg") for pattern in (0, 2)]
    paths = ["plugin", "vidgear", "ceiling", "gst-tcp"]
    colors = {"plugin": "#2b7bba", "vidgear": "#e08214", "ceiling": "#999999", "gst-tcp": "#66a61e"}
    fig, ax = plt.subplots(figsize=(13, 5))
    width = 0.2
    for i, p in enumerate(paths):
        xs, ys = [], []
        for g, (size, codec, pattern) in enumerate(groups):
            r = results["throughput"].get(f"{size}/{codec}/p{pattern}", {}).get(p)
            if r:
                xs.append(g + (i - 1.5) * width)
                ys.append(r["fps"])
        ax.bar(xs, ys, width, label=p, color=colors[p])
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{s}\n{c} p{p}" for s, c, p in groups], fontsize=8)
    ax.set_ylabel("frames per second")
    ax.set_title(f"NetGear on loopback, {results['machine']} ({results['date']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"chart: {path}")


def main():
    os.makedirs(OUT, exist_ok=True)
    machine = f"{os.cpu_count()} cores {platform.machine()}, {platform.system()} {platform.release()}"
    results = {"date": time.strftime("%Y-%m-%d"), "machine": machine, "frames": FRAMES, "throughput": {}}
    print(f"# {results['date']}, {machine}, {FRAMES} frames per run, loopback", flush=True)
    print(f"{'case':22} {'plugin':>8} {'vidgear':>8} {'ceiling':>8} {'gst-tcp':>8}  {'plug/vid':>8} {'plug/ceil':>9}  {'cpu ms/frame plugin, vidgear':>28}")
    for size, (w, h) in SIZES.items():
        for jpeg in (False, True):
            for pattern in (0, 2):
                key = f"{size}/{'jpeg' if jpeg else 'raw'}/p{pattern}"
                row = {"plugin": ours(w, h, jpeg, pattern), "vidgear": vidgear(w, h, jpeg, pattern)}
                if not jpeg:
                    row["ceiling"] = bare_zmq(w, h, pattern)
                    if pattern == 0:
                        row["gst-tcp"] = gst_tcp(w, h)
                results["throughput"][key] = row
                fps = {k: v["fps"] for k, v in row.items()}
                cell = lambda k: f"{fps[k]:8.1f}" if k in fps else f"{'-':>8}"
                print(
                    f"{key:22} {cell('plugin')} {cell('vidgear')} {cell('ceiling')} {cell('gst-tcp')}  "
                    f"{ratio(fps['plugin'], fps['vidgear']):8.2f} {ratio(fps['plugin'], fps.get('ceiling')):9.2f}  "
                    f"{row['plugin']['cpu_ms_per_frame']!s:>13}, {row['vidgear']['cpu_ms_per_frame']!s:>12}",
                    flush=True,
                )
    codec = json.loads(subprocess.check_output([BENCH, "codec", "--width", "1920", "--height", "1080"]).decode().splitlines()[-1])
    results["codec_1080p"] = codec
    print(f"\nlibjpeg-turbo 1080p, one core: encode {codec['encode_fps']:.1f}/s, decode {codec['decode_fps']:.1f}/s "
          f"(JPEG frame {codec['jpeg_bytes']} bytes)")
    jpeg_1080 = results["throughput"]["1080p/jpeg/p0"]["plugin"]["fps"]
    print(f"JPEG 1080p plugin / encode-only rate: {jpeg_1080 / codec['encode_fps']:.2f}")

    lat = {
        "plugin": ours(1280, 720, False, 0, ["--latency", "--fps", "30"], frames=300),
        "vidgear": vidgear(1280, 720, False, 0, ["--latency", "--fps", "30"], frames=300),
    }
    results["latency_720p30_raw"] = lat
    for k, v in lat.items():
        print(f"latency 720p raw 30 fps, {k:8}: p50 {v['latency_p50_ms']:.2f} ms, p99 {v['latency_p99_ms']:.2f} ms")

    soak = json.loads(subprocess.check_output([SOAK, "--frames", "20000", "--width", "640", "--height", "480"]).decode().splitlines()[-1])
    results["memory_20000_frames"] = soak
    print(f"memory over 20000 JPEG frames 640x480 (pattern 1): resident {soak['rss_start_kib']} KiB after warm-up, "
          f"max {soak['rss_max_kib']} KiB, end {soak['rss_end_kib']} KiB; descriptors {soak['fds_start']} → {soak['fds_end']}")

    ms = json.loads(subprocess.check_output([BENCH, "multiserver", "--servers", "128", "--frames", "50"]).decode().splitlines()[-1])
    results["multiserver_128"] = ms
    print(f"multi-server: {ms['servers']} netgearsinks → one netgearsrc (pattern 1, 320x240 raw, one process): "
          f"{ms['frames']}/{ms['expected']} frames, {ms['fps']:.0f} frames/s, {ms['cpu_percent']:.0f} % CPU")

    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    chart(results, os.path.join(OUT, "bench.png"))


if __name__ == "__main__":
    main()
