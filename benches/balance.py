# SPDX-License-Identifier: MPL-2.0
"""Issue 22: one sink, many vidgear workers (part of scripts/bench; alone:
`python benches/balance.py [--quick]` after `cargo build --release`).

Every side is its own process. Senders: `gst-launch-1.0 videotestsrc ! netgearsink
multi-client=true pattern=1` in round robin (vidgear's order) or `load-balance=true`, and
vidgear's own multi-client server (benches/vidgear_bench.py vidgear-mc-send) beside them,
all sending 320x240 BGR raw. Workers: real vidgear multi-client receivers whose application
takes a set time per frame (tests/python/netgear_worker.py). The consumed rate is counted AT
THE WORKERS, frames their applications took per second, over a window after a warm-up:
vidgear answers a frame as soon as it reads it and queues up to 96 for the application, so
a worker looks free until its queue is full, and only then does its speed show. Capacity is
the sum of the workers' 1/delay.

  target  3 workers of 20/60/200 ms behind a 60 fps source (issue 22's first target)
  scale   1, 2, 4, 8 workers of 50 ms each (equal) and of 20/60/200 ms cycled (mixed),
          the source as fast as the sink takes frames
  late    3 workers of 20 ms behind a 60 fps source, the third started 7 s after the
          sender: when each is first fed

Per worker the mean number of frames vidgear held queued in the window is kept too: a frame
waits about that many times the worker's delay before its application sees it.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
WORKER = os.path.join(ROOT, "tests", "python", "netgear_worker.py")
SIDE = os.path.join(ROOT, "benches", "vidgear_bench.py")
OUT = os.path.join(ROOT, "bench-out")
ENV = dict(os.environ, GST_PLUGIN_PATH=os.path.join(ROOT, "target", "release"))
QUICK = os.environ.get("QUICK") == "1" or "--quick" in sys.argv
WIDTH, HEIGHT = 320, 240
MIXED = [0.020, 0.060, 0.200]
EQUAL = 0.050
SENDERS = ["round robin", "load-balanced", "vidgear"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Worker:
    """A worker process and what it printed: when it was ready, when it took each frame."""

    def __init__(self, port, delay, log):
        self.port, self.delay = port, delay
        self.proc = subprocess.Popen([PY, WORKER, "--port", str(port), "--delay", str(delay),
                                      "--seconds", "600"], stdout=subprocess.PIPE, stderr=log)
        self.ready = threading.Event()
        self.ready_at = None
        self.took = []  # (CLOCK_MONOTONIC seconds, frames still queued)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            word = line.decode().split()
            if word[:1] == ["READY"]:
                self.ready_at = time.monotonic()
                self.ready.set()
            elif word[:1] == ["GOT"]:
                self.took.append((float(word[2]), int(word[3])))

    def rate(self, start, end):
        """Frames per second its application took in [start, end)."""
        return sum(1 for t, _ in self.took if start <= t < end) / (end - start)

    def queued(self, start, end):
        held = [q for t, q in self.took if start <= t < end]
        return sum(held) / len(held) if held else 0.0

    def first_fed(self):
        return self.took[0][0] if self.took else None

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def sender_command(kind, ports, fps, seconds):
    listed = ",".join(map(str, ports))
    if kind == "vidgear":
        return [PY, SIDE, "vidgear-mc-send", "--ports", listed, "--width", str(WIDTH), "--height",
                str(HEIGHT), "--fps", str(fps), "--seconds", str(seconds)]
    balance = "true" if kind == "load-balanced" else "false"
    sync = "true" if fps else "false"
    desc = (f"videotestsrc pattern=black ! video/x-raw,format=BGR,width={WIDTH},height={HEIGHT},"
            f"framerate={fps or 60}/1 ! netgearsink address=127.0.0.1 ports={listed} multi-client=true "
            f"pattern=1 jpeg-compression=false load-balance={balance} sync={sync}")
    return ["gst-launch-1.0", "-q", *desc.split()]


def run(kind, delays, fps, warm, measure, late_after=None):
    """Workers of `delays` behind one sender; with `late_after`, the last worker starts that
    many seconds after the sender. Returns the workers and the sender's start."""
    seconds = warm + measure
    with open(os.path.join(OUT, "balance-logs.txt"), "ab") as log:
        log.write(f"\n== {kind} {delays} fps={fps}\n".encode())
        log.flush()
        early = delays[:-1] if late_after is not None else delays
        workers = [Worker(free_port(), d, log) for d in early]
        ports = [w.port for w in workers]
        if late_after is not None:
            ports.append(free_port())
        for w in workers:
            if not w.ready.wait(60):
                raise RuntimeError(f"worker {w.port} never bound")
        start = time.monotonic()
        sender = subprocess.Popen(sender_command(kind, ports, fps, seconds + 5), stdout=log, stderr=log,
                                  env=ENV)
        if late_after is not None:
            time.sleep(late_after)
            workers.append(Worker(ports[-1], delays[-1], log))
        time.sleep(max(0.0, start + seconds - time.monotonic()))
        sender.kill()
        sender.wait()
        for w in workers:
            w.stop()
    return workers, start


def consumed(kind, delays, fps, warm, measure):
    workers, start = run(kind, delays, fps, warm, measure)
    window = (start + warm, start + warm + measure)
    per = [round(w.rate(*window), 1) for w in workers]
    return {"fps": round(sum(per), 1), "per_worker": per,
            "queued": [round(w.queued(*window), 1) for w in workers]}


def capacity(delays):
    return round(sum(1 / d for d in delays), 1)


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def target_case(warm, measure):
    rows = {kind: consumed(kind, MIXED, 60, warm, measure) for kind in SENDERS}
    limit = min(60, capacity(MIXED))
    lb, rr = rows["load-balanced"]["fps"], rows["round robin"]["fps"]
    return {"delays_ms": [int(d * 1000) for d in MIXED], "source_fps": 60, "capacity_fps": capacity(MIXED),
            "rows": rows, "load_balanced_of_limit": ratio(lb, limit), "load_balanced_over_round_robin": ratio(lb, rr)}


def scale_case(counts, warm, measure):
    out = {}
    for speeds, pick in (("equal", lambda n: [EQUAL] * n), ("mixed", lambda n: [MIXED[i % 3] for i in range(n)])):
        for n in counts:
            delays = pick(n)
            rows = {kind: consumed(kind, delays, 0, warm, measure) for kind in SENDERS}
            out[f"{speeds} {n}"] = {"capacity_fps": capacity(delays), "rows": rows}
            print_scale_row(f"{speeds} {n}", out[f"{speeds} {n}"], out.get(f"{speeds} 1"))
    return out


def late_case(late_after, seconds):
    out = {}
    for kind in SENDERS:
        workers, start = run(kind, [0.020] * 3, 60, seconds, 0, late_after=late_after)
        late = workers[-1]
        out[kind] = {
            "first_fed_s": [None if w.first_fed() is None else round(w.first_fed() - start, 2) for w in workers],
            "late_ready_s": None if late.ready_at is None else round(late.ready_at - start, 2),
            "late_fed_after_ready_s": (None if late.first_fed() is None or late.ready_at is None
                                       else round(late.first_fed() - late.ready_at, 2)),
        }
        print(f"  late start, {kind:13}: first fed at {out[kind]['first_fed_s']} s after the sender started; "
              f"the late one ready at {out[kind]['late_ready_s']} s, fed {out[kind]['late_fed_after_ready_s']} s later",
              flush=True)
    return out


def print_scale_row(key, row, one):
    fps = {k: v["fps"] for k, v in row["rows"].items()}
    n = int(key.split()[1])
    linear = ""
    if key.startswith("equal") and one:
        base = one["rows"]["load-balanced"]["fps"]
        linear = f"  load-balanced / linear {ratio(fps['load-balanced'], n * base)}"
    print(f"  {key:9} capacity {row['capacity_fps']:6.1f}: round robin {fps['round robin']:6.1f}, "
          f"load-balanced {fps['load-balanced']:6.1f} ({ratio(fps['load-balanced'], row['capacity_fps'])} of capacity), "
          f"vidgear {fps['vidgear']:6.1f}{linear}", flush=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    open(os.path.join(OUT, "balance-logs.txt"), "w").close()
    started = time.monotonic()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n== one sink, many vidgear workers (issue 22), {WIDTH}x{HEIGHT} BGR raw, pattern 1; "
          f"consumed frames/s at the workers; load average at start {load}", flush=True)
    results = {"load average at start": load}
    warm, measure = (10, 5) if QUICK else (15, 10)
    t = results["target"] = target_case(warm, measure)
    for kind, row in t["rows"].items():
        print(f"  target, {kind:13}: {row['fps']:5.1f} consumed {row['per_worker']}, vidgear queues held "
              f"{row['queued']} frames", flush=True)
    print(f"  target: load-balanced {t['load_balanced_of_limit']} of min(source 60, capacity {t['capacity_fps']}) "
          f"(goal >= 0.85), {t['load_balanced_over_round_robin']}x round robin (goal >= 2.5)", flush=True)
    counts = [1, 4] if QUICK else [1, 2, 4, 8]
    results["scale"] = scale_case(counts, 3 if QUICK else 4, 4 if QUICK else 8)
    results["late"] = late_case(7, 12 if QUICK else 15)
    results["seconds"] = round(time.monotonic() - started)
    results["load average at end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  {results['seconds']} s; load average at the end {results['load average at end']}", flush=True)
    with open(os.path.join(OUT, "balance.json"), "w") as f:
        json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
