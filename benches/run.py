# SPDX-License-Identifier: MPL-2.0
"""The benchmark of the path users run (scripts/bench). Every side is its own process.

Ours: the sender is `gst-launch-1.0 … ! netgearsink` (the plugin from target/release), the
receiver `netgearsrc ! …` launched by examples/netgear-bench `run` (gst::parse::launch plus
one pad probe on the fakesink). vidgear: NetGear in two Python processes. Ceiling: bare
pyzmq moving the same header + frame + acknowledgement. Rates are taken AT THE RECEIVER,
from its first to its last frame. Per-frame source cost is the same on both sides:

  pooled  videotestsrc pattern=black (pooled buffers)  <->  vidgear re-sending one array
  file    multifilesrc loop=true ! rawvideoparse        <->  np.fromfile of the same file
          (a new buffer read per frame)                      for every frame

JPEG receiver-only: one sender for both receivers, sending a JPEG made once (multifilesrc of
a .jpg into netgearsink, sent untouched), so the receivers' decoding sets the rate.

Camera path (issue 21): the bench frame as a camera's YUY2 or NV12 (made once by
videoconvert), `multifilesrc caps=video/x-raw,format=YUY2|NV12,… ! netgearsink` (JPEG, straight
from the planes; also `! videoconvert ! netgearsink` as before) against vidgear reading the
same file and converting with OpenCV first, as its capture does; the receiver only
acknowledges. Sender CPU per frame is the difference of the sender's whole-process CPU time
(user + system, wait4) between a run of N and a run of 2N frames, over N, so start-up and
shut-down cancel; the median of REPEAT such differences. `scripts/bench --camera` runs only
these rows.

CPU ms/frame per side: user+system time of that process from the moment the receiver saw
its first frame (/proc/PID/stat) to its exit (wait4), over the frames. Peak RSS: VmHWM of
each process, sampled until it exits. Latency: each sender stamps CLOCK_MONOTONIC per frame just before the send
(ours: a pad probe on netgearsink's sink pad, fed by `identity sync=true` at 30 fps), each
receiver after the frame is out (ours: fakesink's sink pad; vidgear: after recv()); frame i
sent is frame i received (pattern 0 loses nothing), so nothing is added to the messages.
JPEG latency with bands (issue 21): 1080p and 720p at 30 fps, the plugin with jpeg-bands=0
(the default: a frame that finds the encoders idle is encoded in bands and decoded band by
band) and jpeg-bands=1 (whole frames), against vidgear; `benches/run.py latency-bands` runs
only these rows.

  FRAMES (default 400, quick 60)  REPEAT (best of, default 3, quick 1)
  SIZES  (default "1080p 720p", quick "1080p")   QUICK=1 or `scripts/bench --quick`
"""

import json
import os
import platform
import re
import select
import socket
import subprocess
import sys
import threading
import time

import numpy as np

import balance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "release", "examples", "netgear-bench")
PLUGIN = os.path.join(ROOT, "target", "release", "libgstnetgear.so")
PY = sys.executable
SIDE = os.path.join(ROOT, "benches", "vidgear_bench.py")
OUT = os.path.join(ROOT, "bench-out")
QUICK = os.environ.get("QUICK") == "1" or "--quick" in sys.argv
CAMERA_ONLY = "--camera" in sys.argv
FRAMES = int(os.environ.get("FRAMES", "60" if QUICK else "400"))
REPEAT = int(os.environ.get("REPEAT", "1" if QUICK else "3"))
SIZES = os.environ.get("SIZES", "1080p" if QUICK else "1080p 720p").split()
DIMS = {"480p": (640, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
LATENCY_FRAMES = 90 if QUICK else 300
ENV = dict(os.environ, GST_PLUGIN_PATH=os.path.join(ROOT, "target", "release"))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_now(pid):
    """User + system seconds of a running (or not yet reaped) process, all its threads."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def read_line(proc, word, timeout):
    """Reads stdout lines until `word` (True) or end/timeout (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            return False
        if line.decode().strip() == word:
            return True
    return False


def peak_rss_kib(pid):
    """VmHWM: the process's own high-water mark since its exec (wait4's ru_maxrss would
    include the forking parent's size)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def watch_rss(pid, peak):
    # No proc.poll() here: it could reap the child before wait4 does. A zombie has no VmHWM.
    while (now := peak_rss_kib(pid)) > 0:
        peak[0] = max(peak[0], now)
        time.sleep(0.05)


def watch_rss_of(proc):
    """Samples VmHWM every 50 ms until the process exits; returns the cell it updates."""
    peak = [peak_rss_kib(proc.pid)]
    threading.Thread(target=watch_rss, args=(proc.pid, peak), daemon=True).start()
    return peak


def reap(proc, kill_after, peak):
    """Waits for a child with wait4: its last JSON line and CPU seconds; kills it if stuck."""
    timer = threading.Timer(kill_after, proc.kill)
    timer.start()
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    proc.returncode = status
    lines = [l for l in out.splitlines() if l.startswith("{")]
    return (json.loads(lines[-1]) if lines else {}), usage.ru_utime + usage.ru_stime, peak[0]


def spawn(cmd, log):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=ENV)


def pair(receiver, sender, sent):
    """Receiver first (it binds), then the sender; rate at the receiver, CPU and RSS both."""
    with open(os.path.join(OUT, "logs.txt"), "ab") as log:
        log.write(f"\n== {' '.join(receiver)}\n== {' '.join(sender)}\n".encode())
        log.flush()
        rx = spawn(receiver, log)
        if not read_line(rx, "READY", 30):
            rx.kill()
            raise RuntimeError(f"receiver not ready: {receiver}")
        tx = spawn(sender, log)
        first = read_line(rx, "FIRST", 60)
        at_first = {"rx": cpu_now(rx.pid), "tx": cpu_now(tx.pid)}
        peaks = watch_rss_of(rx), watch_rss_of(tx)
        result, rx_cpu, rx_rss = reap(rx, 180, peaks[0])
        _, tx_cpu, tx_rss = reap(tx, 30, peaks[1])
    frames = result.get("frames", 0) if first else 0
    per = lambda cpu, n: round(1000 * cpu / n, 2) if n > 0 else None
    return {
        "fps": result.get("fps", 0.0) if first else 0.0,
        "frames": frames,
        "send_cpu_ms": per(tx_cpu - at_first["tx"], sent - 1),
        "send_cpu_s": tx_cpu,
        "recv_cpu_ms": per(rx_cpu - at_first["rx"], frames - 1),
        "send_rss_mib": round(tx_rss / 1024, 1),
        "recv_rss_mib": round(rx_rss / 1024, 1),
    }


# ---- the sides -------------------------------------------------------------------------

def gst_source(source, w, h, n, frame_file, fps="30/1"):
    if source == "pooled":
        return f"videotestsrc pattern=black num-buffers={n} ! video/x-raw,format=BGR,width={w},height={h},framerate={fps}"
    return (f"multifilesrc location={frame_file} loop=true num-buffers={n} "
            f"! rawvideoparse width={w} height={h} format=bgr framerate={fps}")


def our_sender(port, pattern, jpeg, source, w, h, n, frame_file):
    sink = f"netgearsink address=127.0.0.1 port={port} pattern={pattern} jpeg-compression={str(jpeg).lower()} sync=false"
    return ["gst-launch-1.0", "-q", *f"{gst_source(source, w, h, n, frame_file)} ! {sink}".split()]


def jpeg_file_sender(port, w, h, n, frame_file):
    """A sender whose JPEG costs nothing (made once, sent untouched): the receiver is the
    slower side, so this measures receivers."""
    jpeg = jpeg_of(frame_file, w, h)
    desc = (f"multifilesrc location={jpeg} loop=true num-buffers={n} ! image/jpeg,width={w},height={h},framerate=30/1 "
            f"! netgearsink address=127.0.0.1 port={port} pattern=0 sync=false")
    return ["gst-launch-1.0", "-q", *desc.split()]


def jpeg_of(frame_file, w, h):
    """The frame as vidgear's sender would encode it (simplejpeg, quality 90, 4:2:2, fast DCT)."""
    path = frame_file[: -len(".bgr")] + ".jpg"
    if not os.path.exists(path):
        import simplejpeg
        frame = np.fromfile(frame_file, dtype=np.uint8).reshape(h, w, 3)
        with open(path, "wb") as f:
            f.write(simplejpeg.encode_jpeg(frame, quality=90, colorspace="BGR", colorsubsampling="422", fastdct=True))
    return path


def ideal_sender(port, pattern, jpeg, w, h, n, frame_file):
    return [BENCH, "send", "--port", str(port), "--pattern", str(pattern), "--frames", str(n),
            "--width", str(w), "--height", str(h), "--file", frame_file] + (["--jpeg"] if jpeg else [])


def our_receiver(port, pattern, n, decode, times=None):
    # videoconvert takes only raw video: JPEG is decoded in netgearsrc, as in a user's
    # `netgearsrc ! videoconvert ! autovideosink`. Without it JPEG passes through.
    middle = "! videoconvert " if decode else ""
    timeout = 2000 if pattern == 2 else 5000
    desc = f"netgearsrc address=127.0.0.1 port={port} pattern={pattern} timeout={timeout} {middle}! fakesink name=out sync=false"
    return [BENCH, "run", "--pipeline", desc, "--frames", str(n)] + (["--times", times] if times else [])


def py_side(mode, port, pattern, w, h, n, *extra):
    return [PY, SIDE, mode, "--port", str(port), "--pattern", str(pattern), "--frames", str(n),
            "--width", str(w), "--height", str(h), *extra]


def vid_sender(port, pattern, jpeg, source, w, h, n, frame_file):
    return py_side("vidgear-send", port, pattern, w, h, n, "--source", source, "--file", frame_file,
                   *(["--jpeg"] if jpeg else []))


# ---- the cases -------------------------------------------------------------------------

def case_sides(kind, w, h, n, frame_file):
    """{side: (receiver(port), sender(port))} for one case."""
    def ours(pattern, jpeg, source, decode):
        return (lambda p: our_receiver(p, pattern, n, decode),
                lambda p: our_sender(p, pattern, jpeg, source, w, h, n, frame_file))

    def vid(pattern, jpeg, source):
        return (lambda p: py_side("vidgear-recv", p, pattern, w, h, n),
                lambda p: vid_sender(p, pattern, jpeg, source, w, h, n, frame_file))

    zmq_rx = lambda pattern: (lambda p: py_side("zmq-recv", p, pattern, w, h, n))
    if kind == "JPEG e2e":
        return {
            "plugin": ours(0, True, "file", True),
            "plugin, no decode": ours(0, True, "file", False),
            "vidgear": vid(0, True, "file"),
            "ideal": (lambda p: our_receiver(p, 0, n, True), lambda p: ideal_sender(p, 0, True, w, h, n, frame_file)),
        }
    if kind == "JPEG receiver-only":
        return {
            "plugin": (lambda p: our_receiver(p, 0, n, True), lambda p: jpeg_file_sender(p, w, h, n, frame_file)),
            "vidgear": (lambda p: py_side("vidgear-recv", p, 0, w, h, n),
                        lambda p: jpeg_file_sender(p, w, h, n, frame_file)),
        }
    if kind == "JPEG sender-only":
        return {
            "plugin": (zmq_rx(0), lambda p: our_sender(p, 0, True, "file", w, h, n, frame_file)),
            "vidgear": (zmq_rx(0), lambda p: vid_sender(p, 0, True, "file", w, h, n, frame_file)),
        }
    pattern = 2 if kind.endswith("p2") else 0
    source = "file" if "file" in kind else "pooled"
    sides = {
        "plugin": ours(pattern, False, source, False),
        "vidgear": vid(pattern, False, source),
        "ceiling": (zmq_rx(pattern), lambda p: py_side("zmq-send", p, pattern, w, h, n, "--source", source,
                                                         "--file", frame_file)),
    }
    if kind == "raw pooled p0":
        sides["ideal"] = (lambda p: our_receiver(p, 0, n, False), lambda p: ideal_sender(p, 0, False, w, h, n, frame_file))
    return sides


KINDS = ["JPEG e2e", "JPEG sender-only", "JPEG receiver-only", "raw pooled p0", "raw file p0", "raw pooled p2"]
COLUMNS = ["plugin", "vidgear", "ceiling", "ideal", "plugin, no decode"]


def frame_file(w, h):
    """One 1080p/720p BGR frame of gradients plus noise (~realistic JPEG work), on disk."""
    path = os.path.join(OUT, f"frame_{w}x{h}.bgr")
    if not os.path.exists(path):
        rng = np.random.default_rng(7)
        y, x, c = np.arange(h).reshape(h, 1, 1), np.arange(w).reshape(1, w, 1), np.arange(3).reshape(1, 1, 3)
        t = (x * 2 + y + c * 40) % 512
        tri = np.where(t < 256, t, 511 - t)
        (tri * 15 // 16 + rng.integers(0, 16, size=(h, w, 3))).astype(np.uint8).tofile(path)
    return path


def key_of(kind, w, h):
    return f"{next(k for k, v in DIMS.items() if v == (w, h))} {kind}"


def measure_case(kind, w, h, path):
    """Best of REPEAT per side (the sides alternate, so load hits them alike). Pub-sub
    senders send 3x the frames: most are dropped at the publisher (HWM 1) by design."""
    best = {}
    n = 3 * FRAMES if kind.endswith("p2") else FRAMES
    sides = case_sides(kind, w, h, n, path)
    for _ in range(REPEAT):
        for name, (rx, tx) in sides.items():
            port = free_port()
            try:
                r = pair(rx(port), tx(port), n)
            except (RuntimeError, OSError, ValueError) as e:
                print(f"  ({key_of(kind, w, h)} {name}: {e})", flush=True)
                continue
            if name not in best or r["fps"] > best[name]["fps"]:
                best[name] = r
    return best


# ---- the camera path (issue 21) ------------------------------------------------------------

CAMERA_FORMATS = ("yuy2", "nv12")
CAMERA_SIDES = ("plugin", "plugin, videoconvert", "vidgear")


def camera_file(camera, w, h):
    """The bench frame as a camera gives it: videoconvert's YUY2 or NV12 of it, on disk."""
    path = os.path.join(OUT, f"frame_{w}x{h}.{camera}")
    if not os.path.exists(path):
        desc = (f"filesrc location={frame_file(w, h)} ! rawvideoparse format=bgr width={w} height={h} "
                f"! videoconvert ! video/x-raw,format={camera.upper()} ! filesink location={path}")
        subprocess.check_call(["gst-launch-1.0", "-q", *desc.split()], env=ENV)
    return path


def camera_sender(side, port, camera, w, h, n, path):
    if side == "vidgear":
        return py_side("vidgear-send", port, 0, w, h, n, "--jpeg", "--camera", camera, "--file", path)
    convert = "! videoconvert ! video/x-raw,format=BGR " if side == "plugin, videoconvert" else ""
    # Each buffer is the file read anew, as a camera's is a new frame (no parser copying it).
    caps = f"video/x-raw,format={camera.upper()},width={w},height={h},framerate=30/1"
    desc = (f"multifilesrc location={path} loop=true num-buffers={n} caps={caps} {convert}"
            f"! netgearsink address=127.0.0.1 port={port} sync=false")
    return ["gst-launch-1.0", "-q", *desc.split()]


def camera_run(side, camera, w, h, n, path):
    port = free_port()
    return pair(py_side("zmq-recv", port, 0, w, h, n), camera_sender(side, port, camera, w, h, n, path), n)


def camera_case(camera, w, h):
    """Per side: sender CPU ms per frame (median over REPEAT of the 2N - N difference) and
    the rate at the receiver (best 2N run)."""
    n = FRAMES // 2
    path = camera_file(camera, w, h)
    cpu, fps = {side: [] for side in CAMERA_SIDES}, {side: 0.0 for side in CAMERA_SIDES}
    for _ in range(REPEAT):
        for side in CAMERA_SIDES:
            try:
                short, long = camera_run(side, camera, w, h, n, path), camera_run(side, camera, w, h, 2 * n, path)
            except (RuntimeError, OSError, ValueError) as e:
                print(f"  ({camera} {w}x{h} {side}: {e})", flush=True)
                continue
            if short["frames"] and long["frames"]:
                cpu[side].append(1000 * (long["send_cpu_s"] - short["send_cpu_s"]) / n)
                fps[side] = max(fps[side], long["fps"])
    return {side: {"send_cpu_ms": round(float(np.median(cpu[side])), 2) if cpu[side] else None,
                   "fps": fps[side]} for side in CAMERA_SIDES}


def camera_path():
    rows = {}
    print(f"\ncamera path, JPEG into a receiver that only acknowledges: sender CPU ms/frame "
          f"(2N - N run lengths, N = {FRAMES // 2}, median of {REPEAT}) and fps at the receiver", flush=True)
    print(f"{'case':14} {'plugin':>16} {'plugin+convert':>16} {'vidgear+OpenCV':>16} {'plugin/vidgear':>15}", flush=True)
    for size in SIZES:
        w, h = DIMS[size]
        for camera in CAMERA_FORMATS:
            key = f"{size} {camera.upper()}"
            row = rows[key] = camera_case(camera, w, h)
            cell = lambda side: f"{fmt_ms(row[side]['send_cpu_ms'])} @{row[side]['fps']:5.1f}"
            cpu_ratio = ratio(row["plugin"]["send_cpu_ms"], row["vidgear"]["send_cpu_ms"])
            print(f"{key:14} {cell('plugin'):>16} {cell('plugin, videoconvert'):>16} {cell('vidgear'):>16} "
                  f"{fmt(cpu_ratio, 15, 2)}", flush=True)
    return rows


def fmt_ms(v):
    return f"{v:6.2f}ms" if isinstance(v, (int, float)) else f"{'-':>8}"


# ---- latency, codec, scale ---------------------------------------------------------------

def latency(side, jpeg, path, n, size="720p", sink_props=""):
    w, h = DIMS[size]
    port = free_port()
    tx_times, rx_times = os.path.join(OUT, "tx.times"), os.path.join(OUT, "rx.times")
    if side == "plugin":
        sink = (f"identity sync=true ! netgearsink name=out address=127.0.0.1 port={port} "
                f"jpeg-compression={str(jpeg).lower()} {sink_props} sync=false")
        tx = [BENCH, "run", "--pipeline", f"{gst_source('file', w, h, n, path)} ! {sink}", "--times", tx_times]
        rx = our_receiver(port, 0, n, True, rx_times)
    elif side == "vidgear":
        tx = vid_sender(port, 0, jpeg, "file", w, h, n, path) + ["--fps", "30", "--times", tx_times]
        rx = py_side("vidgear-recv", port, 0, w, h, n, "--times", rx_times)
    else:  # bare ZeroMQ, raw only: the transport's own latency
        tx = py_side("zmq-send", port, 0, w, h, n, "--source", "file", "--file", path, "--fps", "30", "--times", tx_times)
        rx = py_side("zmq-recv", port, 0, w, h, n, "--times", rx_times)
    r = pair(rx, tx, n)
    sent, got = (np.loadtxt(f, dtype=np.int64, ndmin=1) for f in (tx_times, rx_times))
    k = min(len(sent), len(got))
    ms = (got[:k] - sent[:k]) / 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "frames": int(k), "sent": int(len(sent)), "send_cpu_ms": r["send_cpu_ms"], "recv_cpu_ms": r["recv_cpu_ms"]}


# Issue 21: each frame on every core. `jpeg-bands=0` (the default) encodes a frame that finds
# the encoders idle in one band per encoder thread and netgearsrc decodes such frames band by
# band; `jpeg-bands=1` sends whole frames (no restart markers), as before.
BAND_SIDES = {"plugin, bands": "jpeg-bands=0", "plugin, no bands": "jpeg-bands=1", "vidgear": None}


def band_latency():
    """One-way latency of a live 30 fps JPEG stream at 1080p and 720p: banded frames, whole
    frames and vidgear, the sides alternating REPEAT times (best p50 kept per side)."""
    out = {}
    for size in ("1080p", "720p"):
        path = frame_file(*DIMS[size])
        best = {}
        for _ in range(REPEAT):
            for side, props in BAND_SIDES.items():
                ours = props is not None
                r = latency("plugin" if ours else "vidgear", True, path, LATENCY_FRAMES, size, props or "")
                r["load"] = round(os.getloadavg()[0], 1)
                if side not in best or r["p50_ms"] < best[side]["p50_ms"]:
                    best[side] = r
        out[size] = best
    return out


def print_band_latency(rows):
    print(f"\none-way latency of a live JPEG stream at 30 fps, {LATENCY_FRAMES} frames, file source, pattern 0, "
          f"best p50 of {REPEAT} (1-min load average after each run in brackets):")
    for size, sides in rows.items():
        vid = sides.get("vidgear", {})
        for side, v in sides.items():
            print(f"  {size:5} {side:16}: p50 {v['p50_ms']:6.2f} ms ({fmt(ratio(v['p50_ms'], vid.get('p50_ms')), 4, 2)}x vidgear), "
                  f"p99 {v['p99_ms']:6.2f} ms ({fmt(ratio(v['p99_ms'], vid.get('p99_ms')), 4, 2)}x); CPU ms/frame send "
                  f"{v['send_cpu_ms']} recv {v['recv_cpu_ms']} [{v['load']}]", flush=True)


def codec_rates(path):
    w, h = DIMS["1080p"]
    n = "30" if QUICK else "100"
    ours = subprocess.check_output([BENCH, "codec", "--width", str(w), "--height", str(h), "--frames", n, "--file", path])
    theirs = subprocess.check_output(py_side("codec", 0, 0, w, h, int(n), "--file", path))
    return {"plugin": json.loads(ours.decode().splitlines()[-1]), "simplejpeg": json.loads(theirs.decode().splitlines()[-1])}


def multiserver():
    servers, frames = ("16", "10") if QUICK else ("128", "50")
    out = subprocess.check_output([BENCH, "multiserver", "--servers", servers, "--frames", frames])
    return json.loads(out.decode().splitlines()[-1])


# ---- the machine ---------------------------------------------------------------------------

def command(cmd):
    try:
        return subprocess.check_output(cmd, stderr=subprocess.DEVNULL, env=ENV).decode().strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def turbojpeg_version():
    """The libjpeg-turbo the plugin runs: the Debian package it links, or the version
    string compiled into the plugin when it is linked statically."""
    linked = [l for l in command(["ldd", PLUGIN]).splitlines() if "turbojpeg" in l or "libjpeg" in l]
    if linked:
        lib = linked[0].split("=>")[-1].split()[0]
        owner = command(["dpkg", "-S", os.path.realpath(lib)]).split(":")[0]
        version = command(["dpkg-query", "-W", "-f=${Version}", owner]) if owner else ""
        return f"{version or '?'} (shared, {os.path.basename(lib)})"
    with open(PLUGIN, "rb") as f:
        found = re.search(rb"libjpeg-turbo version ([0-9.]+)", f.read())
    return f"{found.group(1).decode()} (static)" if found else "static (version string not found)"


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import simplejpeg
    import vidgear.version
    import zmq

    return {
        "cpu": f"{model}, {os.cpu_count()} cores",
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "gstreamer": next((l for l in command(["gst-launch-1.0", "--version"]).splitlines() if l.startswith("GStreamer")), "?"),
        "libzmq (plugin)": command(["pkg-config", "--modversion", "libzmq"]) or "?",
        "libjpeg-turbo (plugin)": turbojpeg_version(),
        "vidgear": vidgear.version.__version__,
        "simplejpeg": simplejpeg.__version__,
        "pyzmq (libzmq)": f"{zmq.__version__} ({zmq.zmq_version()})",
        "python": platform.python_version(),
        "load average at start": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


# ---- report ----------------------------------------------------------------------------------

def ratio(a, b):
    return round(a / b, 2) if a and b else None


def targets(results):
    c = results["cases"]
    get = lambda key, side, field="fps": c.get(key, {}).get(side, {}).get(field)
    lat = results.get("latency_720p30", {})
    bands = results.get("latency_jpeg_bands", {}).get("1080p", {})
    band_ratio = lambda f: ratio(bands.get("plugin, bands", {}).get(f), bands.get("vidgear", {}).get(f))
    send_cpu = (get("1080p JPEG e2e", "plugin", "send_cpu_ms"), get("1080p JPEG e2e", "vidgear", "send_cpu_ms"))
    rows = [
        ("JPEG 1080p sender only >= 1.8x vidgear", ratio(get("1080p JPEG sender-only", "plugin"), get("1080p JPEG sender-only", "vidgear")), 1.8, ">="),
        ("JPEG 1080p end to end >= 1.4x vidgear", ratio(get("1080p JPEG e2e", "plugin"), get("1080p JPEG e2e", "vidgear")), 1.4, ">="),
        ("raw 1080p pooled >= 1.3x vidgear", ratio(get("1080p raw pooled p0", "plugin"), get("1080p raw pooled p0", "vidgear")), 1.3, ">="),
        ("raw 1080p pooled >= 90 % of bare ZeroMQ", ratio(get("1080p raw pooled p0", "plugin"), get("1080p raw pooled p0", "ceiling")), 0.9, ">="),
        ("raw 1080p file >= 1.3x vidgear", ratio(get("1080p raw file p0", "plugin"), get("1080p raw file p0", "vidgear")), 1.3, ">="),
        ("sender CPU per JPEG frame (1080p) <= 0.7x vidgear", ratio(*send_cpu), 0.7, "<="),
        *camera_targets(results),
        ("720p raw p50 latency at 30 fps < 1 ms", lat.get("raw", {}).get("plugin", {}).get("p50_ms"), 1.0, "<"),
        ("720p JPEG p50 latency at 30 fps < 10 ms", lat.get("jpeg", {}).get("plugin", {}).get("p50_ms"), 10.0, "<"),
        ("1080p30 JPEG p50 latency (bands) <= 0.6x vidgear", band_ratio("p50_ms"), 0.6, "<="),
        ("1080p30 JPEG p99 latency (bands) <= vidgear's", band_ratio("p99_ms"), 1.0, "<="),
    ]
    out = []
    for name, value, goal, op in rows:
        met = None if value is None else {">=": value >= goal, "<=": value <= goal, "<": value < goal}[op]
        out.append({"target": name, "value": value, "met": met})
    return out


def camera_targets(results):
    row = results.get("camera", {}).get("1080p YUY2", {})
    cpu = lambda side: row.get(side, {}).get("send_cpu_ms")
    return [("sender CPU per 1080p YUY2 JPEG frame <= 0.5x vidgear (issue 21)",
             ratio(cpu("plugin"), cpu("vidgear")), 0.5, "<=")] if row else []


def fmt(v, width=8, digits=1):
    return f"{v:{width}.{digits}f}" if isinstance(v, (int, float)) else f"{'-':>{width}}"


def print_case(key, row):
    fps = {k: v["fps"] for k, v in row.items()}
    cpu = lambda side: (f"{row[side]['send_cpu_ms']}/{row[side]['recv_cpu_ms']}" if side in row else "-")
    print(f"{key:26} {fmt(fps.get('plugin'))} {fmt(fps.get('vidgear'))} {fmt(fps.get('ceiling'))} "
          f"{fmt(fps.get('ideal'))} {fmt(fps.get('plugin, no decode'))}  "
          f"{fmt(ratio(fps.get('plugin'), fps.get('vidgear')), 6, 2)} {fmt(ratio(fps.get('plugin'), fps.get('ceiling')), 6, 2)}  "
          f"{cpu('plugin'):>13} {cpu('vidgear'):>13}", flush=True)
    if key.endswith("p2"):
        got = ", ".join(f"{side} {v['frames']}" for side, v in row.items())
        print(f"{'':26} pub-sub frames received of {3 * FRAMES} sent: {got}", flush=True)


def markdown(results):
    """The tables as Markdown, for the README (bench-out/table.md)."""
    lines = [f"{results['date']}, {results['machine']['cpu']}; GStreamer {results['machine']['gstreamer'].split()[-1]}, "
             f"libzmq {results['machine']['libzmq (plugin)']}, libjpeg-turbo {results['machine']['libjpeg-turbo (plugin)']}; "
             f"vidgear {results['machine']['vidgear']}, simplejpeg {results['machine']['simplejpeg']}; "
             f"{results['frames']} frames per run, best of {results['best_of']}.", "",
             "| case | plugin | vidgear | plugin/vidgear | bare ZeroMQ | plugin/ZeroMQ | ideal source (appsrc) | "
             "CPU ms/frame send/recv: plugin | vidgear | peak RSS MiB send/recv: plugin | vidgear |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, row in results["cases"].items():
        g = lambda side, f="fps": row.get(side, {}).get(f)
        cell = lambda v: "" if v is None else (f"{v:.0f}" if isinstance(v, float) and v >= 10 else str(v))
        both = lambda side, a, b: f"{g(side, a)} / {g(side, b)}" if side in row else ""
        name = key + (f" (no decode: {g('plugin, no decode'):.0f})" if "plugin, no decode" in row else "")
        lines.append(f"| {name} | {cell(g('plugin'))} | {cell(g('vidgear'))} | {cell(ratio(g('plugin'), g('vidgear')))} | "
                     f"{cell(g('ceiling'))} | {cell(ratio(g('plugin'), g('ceiling')))} | {cell(g('ideal'))} | "
                     f"{both('plugin', 'send_cpu_ms', 'recv_cpu_ms')} | {both('vidgear', 'send_cpu_ms', 'recv_cpu_ms')} | "
                     f"{both('plugin', 'send_rss_mib', 'recv_rss_mib')} | {both('vidgear', 'send_rss_mib', 'recv_rss_mib')} |")
    lines += ["", "| latency, 720p BGR 30 fps | plugin p50 / p99 ms | vidgear p50 / p99 ms | bare ZeroMQ p50 / p99 ms |",
              "|---|---|---|---|"]
    for codec, sides in results.get("latency_720p30", {}).items():
        pv = lambda side: f"{sides[side]['p50_ms']:.2f} / {sides[side]['p99_ms']:.2f}" if side in sides else ""
        lines.append(f"| {codec} | {pv('plugin')} | {pv('vidgear')} | {pv('ceiling')} |")
    lines += ["", "| latency, JPEG 30 fps | p50 / p99 ms | p50 / p99 vs vidgear | CPU ms/frame send/recv |",
              "|---|---|---|---|"]
    for size, sides in results.get("latency_jpeg_bands", {}).items():
        vid = sides.get("vidgear", {})
        for side, v in sides.items():
            vs = f"{ratio(v['p50_ms'], vid.get('p50_ms'))} / {ratio(v['p99_ms'], vid.get('p99_ms'))}"
            lines.append(f"| {size} {side} | {v['p50_ms']:.2f} / {v['p99_ms']:.2f} | {vs} | {v['send_cpu_ms']} / {v['recv_cpu_ms']} |")
    lines += camera_markdown(results.get("camera", {}))
    lines += ["", "| target (issues 11, 21) | value | met |", "|---|---|---|"]
    for t in results.get("targets", []):
        lines.append(f"| {t['target']} | {t['value']} | {'n/a' if t['met'] is None else ('yes' if t['met'] else 'no')} |")
    return "\n".join(lines) + "\n"


def camera_markdown(rows):
    if not rows:
        return []
    lines = ["", "| camera path, JPEG, receiver only acknowledges | plugin: sender CPU ms/frame, fps | "
             "plugin after videoconvert | vidgear (OpenCV conversion + send) | plugin/vidgear CPU |",
             "|---|---|---|---|---|"]
    for key, row in rows.items():
        cell = lambda side: f"{row[side]['send_cpu_ms']} ms, {row[side]['fps']:.0f} fps"
        cpu_ratio = ratio(row["plugin"]["send_cpu_ms"], row["vidgear"]["send_cpu_ms"])
        lines.append(f"| {key} | {cell('plugin')} | {cell('plugin, videoconvert')} | {cell('vidgear')} | {cpu_ratio} |")
    return lines


def chart(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is missing: no chart)")
        return
    keys = list(results["cases"])
    colors = {"plugin": "#2b7bba", "vidgear": "#e08214", "ceiling": "#999999", "ideal": "#9ecae1",
              "plugin, no decode": "#08519c"}
    labels = {"ideal": "plugin, ideal source (appsrc)", "ceiling": "bare ZeroMQ (ceiling)"}
    fig, ax = plt.subplots(figsize=(13, 5))
    width = 0.16
    for i, col in enumerate(COLUMNS):
        xs = [g + (i - 2) * width for g, k in enumerate(keys) if col in results["cases"][k]]
        ys = [results["cases"][k][col]["fps"] for k in keys if col in results["cases"][k]]
        if xs:
            ax.bar(xs, ys, width, label=labels.get(col, col), color=colors[col])
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([k.replace(" ", "\n", 1) for k in keys], fontsize=7)
    ax.set_ylabel("frames per second at the receiver")
    ax.set_title(f"NetGear on loopback, BGR, {results['machine']['cpu']} ({results['date']})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"chart: {path}")


def camera_only(results, started):
    """`--camera`: the camera rows alone, into bench-out/camera.json."""
    results["camera"] = camera_path()
    for t in camera_targets(results):
        print(f"\ntarget: {t[0]}: {t[1]}")
    results["seconds"] = round(time.monotonic() - started)
    results["load average at end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{results['seconds']} s; load average at the end {results['load average at end']}")
    with open(os.path.join(OUT, "camera.json"), "w") as f:
        json.dump(results, f, indent=1)


def main():
    os.makedirs(OUT, exist_ok=True)
    if "latency-bands" in sys.argv:
        # Only the issue-21 latency rows: `benches/run.py latency-bands`.
        print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at start "
              + " ".join(f"{x:.1f}" for x in os.getloadavg()))
        rows = band_latency()
        print_band_latency(rows)
        with open(os.path.join(OUT, "latency_bands.json"), "w") as f:
            json.dump(rows, f, indent=1)
        return
    open(os.path.join(OUT, "logs.txt"), "w").close()
    started = time.monotonic()
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
               "frames": FRAMES, "best_of": REPEAT, "cases": {}}
    print(f"# {results['date']}, {FRAMES} frames per run, best of {REPEAT}, loopback")
    for k, v in results["machine"].items():
        print(f"#   {k}: {v}")
    if CAMERA_ONLY:
        return camera_only(results, started)
    print("# fps at the receiver, first to last frame; CPU ms/frame = sender/receiver process;"
          " ideal = appsrc pushing pre-made buffers (not a user's path)")
    print(f"{'case':26} {'plugin':>8} {'vidgear':>8} {'ceiling':>8} {'ideal':>8} {'nodecode':>8}  "
          f"{'p/vid':>6} {'p/ceil':>6}  {'CPU plugin':>13} {'CPU vidgear':>13}", flush=True)
    for size in SIZES:
        w, h = DIMS[size]
        path = frame_file(w, h)
        for kind in KINDS:
            key = f"{size} {kind}"
            results["cases"][key] = measure_case(kind, w, h, path)
            print_case(key, results["cases"][key])

    results["camera"] = camera_path()

    path = frame_file(*DIMS["720p"])
    results["latency_720p30"] = {
        codec: {side: latency(side, codec == "jpeg", path, LATENCY_FRAMES) for side in sides}
        for codec, sides in (("raw", ("plugin", "vidgear", "ceiling")), ("jpeg", ("plugin", "vidgear")))
    }
    print(f"\none-way latency, 720p BGR at 30 fps, {LATENCY_FRAMES} frames, file source, pattern 0 (send stamp before"
          " the sink/send(), receive stamp after the frame is out):")
    for codec, sides in results["latency_720p30"].items():
        for side, v in sides.items():
            print(f"  {codec:4} {side:8}: p50 {v['p50_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms ({v['frames']} frames)")

    results["latency_jpeg_bands"] = band_latency()
    print_band_latency(results["latency_jpeg_bands"])

    rss = {k: (v["plugin"]["send_rss_mib"], v["plugin"]["recv_rss_mib"], v["vidgear"]["send_rss_mib"],
               v["vidgear"]["recv_rss_mib"]) for k, v in results["cases"].items() if "vidgear" in v}
    print("\npeak RSS MiB (sender/receiver): " + "; ".join(f"{k}: plugin {a}/{b}, vidgear {c}/{d}" for k, (a, b, c, d) in rss.items()))

    results["codec_1080p"] = codec_rates(frame_file(*DIMS["1080p"]))
    c = results["codec_1080p"]
    print(f"\nJPEG codec, 1080p frame, one core: plugin's libjpeg-turbo encode {c['plugin']['encode_fps']}/s, decode "
          f"{c['plugin']['decode_fps']}/s; simplejpeg encode {c['simplejpeg']['encode_fps']}/s, decode "
          f"{c['simplejpeg']['decode_fps']}/s ({c['plugin']['jpeg_bytes']} / {c['simplejpeg']['jpeg_bytes']} bytes)")

    ms = results["multiserver"] = multiserver()
    print(f"multi-server: {ms['servers']} netgearsinks -> one netgearsrc (pattern 1, 320x240 raw, one process): "
          f"{ms['frames']}/{ms['expected']} frames, {ms['fps']:.0f} frames/s, {ms['cpu_percent']:.0f} % CPU")

    results["balance"] = balance.main()

    results["targets"] = targets(results)
    print("\ntargets (issues 11, 21):")
    for t in results["targets"]:
        state = "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")
        print(f"  {t['target']:52} {t['value']!s:>8}  {state}")
    results["seconds"] = round(time.monotonic() - started)
    results["load average at end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{results['seconds']} s; load average at the end {results['load average at end']}"
          " (other work on the machine makes every rate noisy)")
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(OUT, "table.md"), "w") as f:
        f.write(markdown(results))
    print(f"tables: {os.path.join(OUT, 'table.md')}")
    chart(results, os.path.join(OUT, "bench.png"))


if __name__ == "__main__":
    main()
