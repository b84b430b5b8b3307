#!/usr/bin/env python3
"""Turns the CSVs of one or more bench/run.sh result sets into docs/benchmarks.md and PNG plots.

    bench/plot.py --out-md docs/benchmarks.md --img docs/img docs/bench-results/*/

Each result set is a directory written by bench/run.sh (meta.csv names its machine). With two or
more sets the tables put the machines side by side and every plot gets one panel per machine.
Every ratio is against a baseline measured in the same run on the same machine. Works without
matplotlib (tables only). Never judges a number as a failure.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import plot_across_hosts

HERE = Path(__file__).resolve().parent
BASELINE = "unix socket copy (baseline)"
PY_METHODS = {
    "shmarray": "Python: shmarray open (zero copy)",
    "shared_memory": "Python: multiprocessing.shared_memory + NumPy",
    "pickle": "Python: pickle through a multiprocessing Pipe",
}
ICEORYX = "iceoryx 2.0 loan -> publish -> take"
STREAM = "shmarray stream (loan -> publish -> take)"
SIZE_NAMES = {4096: "4 KiB", 65536: "64 KiB", 1 << 20: "1 MiB", 64 << 20: "64 MiB", 1 << 30: "1 GiB"}


# --- loading ----------------------------------------------------------------------------------------

def read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class ResultSet:
    def __init__(self, directory: Path):
        self.dir = directory
        self.meta = {r["key"]: r["value"] for r in read_csv(directory / "meta.csv")}
        self.label = self.meta.get("machine", directory.name)
        self.probe = read_csv(directory / "probe.csv")
        self.control = read_csv(directory / "control_plane.csv")
        self.scale = read_csv(directory / "scale.csv")
        self.wakeup = read_csv(directory / "wakeup.csv") + read_csv(directory / "iceoryx_wakeup.csv")
        self.memory = read_csv(directory / "memory.csv")
        self.write_lock = read_csv(directory / "write_lock.csv")
        self.list_interference = read_csv(directory / "list_interference.csv")
        self.stream = read_csv(directory / "stream.csv")
        # A same-run baseline of an earlier build, when a change to streams was measured.
        self.stream_before = read_csv(directory / "stream_before.csv")
        self.python_stream = read_csv(directory / "python_stream.csv")
        status = directory / "iceoryx_status.txt"
        self.iceoryx_status = status.read_text().strip() if status.exists() else "not run"
        self.handoff = self._handoff()
        self.handoff_before: dict[tuple[int, str, str], list[float]] = defaultdict(list)
        for r in read_csv(directory / "handoff_before.csv"):
            self.handoff_before[(int(r["bytes"]), r["use"], r["method"])].append(float(r["us"]))

    def _handoff(self) -> dict[tuple[int, str, str], list[float]]:
        """(bytes, use, method) -> samples in microseconds, C++, iceoryx and Python together."""
        out: dict[tuple[int, str, str], list[float]] = defaultdict(list)
        for r in read_csv(self.dir / "handoff.csv") + read_csv(self.dir / "iceoryx_handoff.csv"):
            out[(int(r["bytes"]), r["use"], r["method"])].append(float(r["us"]))
        for path in sorted(self.dir.glob("python_handoff*.csv")):
            for r in read_csv(path):
                method = PY_METHODS.get(r["method"], "Python: " + r["method"])
                handoff_us = float(r["handoff_ns"]) / 1e3
                out[(int(r["bytes"]), "touch_one", method)].append(handoff_us)
                if r.get("full_read_ns") not in (None, "", "0"):
                    out[(int(r["bytes"]), "read_all", method)].append(
                        handoff_us + float(r["full_read_ns"]) / 1e3)
        return out

    def median(self, key) -> float | None:
        v = self.handoff.get(key)
        return statistics.median(v) if v else None


# --- formatting -------------------------------------------------------------------------------------

def size_name(n: int) -> str:
    return SIZE_NAMES.get(n) or (f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n} B")


def fmt_us(us: float | None) -> str:
    if us is None or math.isnan(us):
        return "–"
    if us < 10:
        return f"{us:.2f} µs"
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 1e6:
        return f"{us / 1e3:.1f} ms"
    return f"{us / 1e6:.2f} s"


def fmt_ratio(r: float | None) -> str:
    if r is None or math.isnan(r):
        return "–"
    if r < 0.01:
        return f"{r:.4f}x"
    if r < 10:
        return f"{r:.2f}x"
    return f"{r:.0f}x"


def ordered_union(sets: list[ResultSet], rows_of, key) -> list:
    """key(row) of every row of every set, each once, in the order first seen (sets in order)."""
    seen: dict = {}
    for s in sets:
        for r in rows_of(s):
            seen.setdefault(key(r), None)
    return list(seen)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def machine_header(sets: list[ResultSet], columns: list[str]) -> list[str]:
    if len(sets) == 1:
        return columns
    return [f"{c} ({s.label})" for s in sets for c in columns]


# --- sections ---------------------------------------------------------------------------------------

def section_machines(sets: list[ResultSet]) -> str:
    keys = [("cpu", "CPU"), ("cores", "cores"), ("memory", "memory"), ("kernel", "kernel"),
            ("date", "measured (UTC)"), ("commit", "commit"), ("load_start", "load average at start"),
            ("load_end", "load average at end"), ("priority", "benchmark priority"),
            ("damon", "DAMON (kernel memory monitor)"),
            ("balloon_reporting", "virtio-balloon free page reporting"),
            ("seconds", "run time (s)"), ("rerun", "stages measured again later")]
    rows = [[name] + [s.meta.get(k, "–") for s in sets] for k, name in keys]
    metrics = ordered_union(sets, lambda s: s.probe, lambda r: r["metric"])
    for m in metrics:
        row = [m]
        for s in sets:
            hit = [r for r in s.probe if r["metric"] == m]
            row.append(f"{float(hit[0]['value']):.3g} {hit[0]['unit']}" if hit else "–")
        rows.append(row)
    rows.append(["iceoryx"] + [s.iceoryx_status for s in sets])
    return "## Machines\n\n" + table(["", *[s.label for s in sets]], rows)


def handoff_methods(sets: list[ResultSet], use: str) -> list[str]:
    order = [BASELINE, "pipe copy", "shmarray new array (open + fresh mapping)",
             "shmarray new array, open with populate", "shmarray mapped array (publish -> wait)",
             STREAM, ICEORYX, *PY_METHODS.values()]
    present = {k[2] for s in sets for k in s.handoff if k[1] == use}
    return [m for m in order if m in present] + sorted(present - set(order))


def is_ours(method: str) -> bool:
    return "shmarray" in method


def peers_of(method: str) -> list[str]:
    """The methods a shmarray row competes with: same language, same pattern. A new array per
    handoff competes with copying into a buffer; the mapped array (map once, publish/wait) also
    with iceoryx, whose chunk pools are mapped once as well."""
    if method.startswith("Python"):
        return [m for m in PY_METHODS.values() if not is_ours(m)]
    if "mapped" in method or method == STREAM:
        return [BASELINE, "pipe copy", ICEORYX]
    return [BASELINE, "pipe copy"]


LOSS_MARGIN = 1.10  # closer than 10% is within run-to-run noise here: not called a loss


def loss_note(s: ResultSet, size: int, use: str, method: str) -> str | None:
    mine = s.median((size, use, method))
    if mine is None or not is_ours(method):
        return None
    worse = []
    for peer in peers_of(method):
        theirs = s.median((size, use, peer))
        if theirs is not None and mine > theirs * LOSS_MARGIN:
            worse.append(f"{peer.split(' (')[0]} ({mine / theirs:.1f}x slower)")
    return "**loses** to " + ", ".join(worse) if worse else None


def section_handoff(sets: list[ResultSet], img: str | None) -> str:
    out = ["## 1. Handoff latency vs size\n",
           "Producer has the data; the clock stops when the consumer has a usable array and has "
           "read all of it once (*read all*) or one element (*touch one*). Median of the rounds "
           "after a warm-up (C++: 20 rounds below 64 MiB, 9 at 64 MiB, 5 at 1 GiB, where no warm-up "
           "is needed; Python: 20 / 9 / 3, pickle 1 at 1 GiB). **x copy** = median / median of the C++ Unix-socket copy at the same size and use, "
           "measured in the same run (below 1 = faster than copying). The copy paths get their best "
           "case: buffers allocated once and touched before each round on both sides, and 1 MiB of "
           "kernel buffer (pipe capacity, socket buffers); shmarray "
           "*new array* maps a fresh array per handoff (one broker round trip, then one page fault "
           "per 4 KiB touched); *mapped array* is the steady state the design recommends (both keep "
           "the array mapped; the handoff is publish() -> wait_newer_than()). iceoryx, too, maps its "
           "chunk pools once, so it compares with *mapped array*.\n"]
    for use, title in (("read_all", "consumer reads every byte"),
                       ("touch_one", "consumer touches one element")):
        sizes = sorted({k[0] for s in sets for k in s.handoff if k[1] == use})
        methods = handoff_methods(sets, use)
        rows = []
        for size in sizes:
            for m in methods:
                if all(s.median((size, use, m)) is None for s in sets):
                    continue
                row = [size_name(size), m]
                notes = []
                for s in sets:
                    med, base = s.median((size, use, m)), s.median((size, use, BASELINE))
                    row += [fmt_us(med), fmt_ratio(med / base if med and base else None)]
                    note = loss_note(s, size, use, m)
                    if note:
                        notes.append(note if len(sets) == 1 else f"{s.label}: {note}")
                row.append("; ".join(notes))
                rows.append(row)
        out.append(f"### {title.capitalize()} ({use.replace('_', ' ')})\n")
        out.append(table(["size", "method", *machine_header(sets, ["median", "x copy"]), "where we lose"],
                         rows))
        if img:
            out.append(f"\n![handoff, {use}]({img}/handoff_{use}.png)\n")
    return "\n".join(out)


def section_control(sets: list[ResultSet], img: str | None) -> str:
    out = ["## 2. Control plane: latency and throughput with N client processes\n",
           "Each phase runs the same number of operations (2000 in a full run) split between N "
           "client processes, each with its own connection; p50/p99 over all operations, "
           "throughput = operations / wall time of the phase. Baseline (same run, same N): a "
           "64-byte request/reply to a one-thread epoll echo server over Unix sockets, the floor "
           "for a one-thread broker. **x echo** = p50 / baseline p50.\n"]
    keys = ordered_union(sets, lambda s: s.control, lambda r: (int(r["clients"]), r["op"]))
    rows = []
    for n, op in sorted(keys, key=lambda k: (k[0], keys.index(k))):
        row = [str(n), op]
        for s in sets:
            hit = [r for r in s.control if int(r["clients"]) == n and r["op"] == op]
            base = [r for r in s.control if int(r["clients"]) == n and r["op"].startswith("baseline")]
            if hit:
                p50 = float(hit[0]["p50_us"])
                b = float(base[0]["p50_us"]) if base else None
                row += [fmt_us(p50), fmt_us(float(hit[0]["p99_us"])),
                        f"{float(hit[0]['ops_per_s']):,.0f}", fmt_ratio(p50 / b if b else None)]
            else:
                row += ["–"] * 4
        rows.append(row)
    out.append(table(["N", "operation", *machine_header(sets, ["p50", "p99", "ops/s", "x echo"])], rows))
    if img:
        out.append(f"\n![control plane]({img}/control_plane.png)\n")
    return "\n".join(out)


def section_wakeup(sets: list[ResultSet], img: str | None) -> str:
    out = ["## 3. Notification: publish -> wake, one way\n",
           "Ping-pong between two processes, one way = round trip / 2, after a warm-up (first "
           "10% dropped). Baseline: a bare futex ping-pong (two futex words, no shmarray code). "
           "shmarray's default wait spins 20 µs before it sleeps on the futex; iceoryx rows carry a "
           "64-byte payload (loan, write, publish; take, release). **x futex** = p50 / baseline p50.\n"]
    methods = ordered_union(sets, lambda s: s.wakeup, lambda r: r["method"])
    rows = []
    for m in methods:
        row = [m]
        for s in sets:
            hit = [r for r in s.wakeup if r["method"] == m]
            base = [r for r in s.wakeup if "baseline" in r["method"]]
            if hit:
                p50 = float(hit[0]["p50_us"])
                row += [fmt_us(p50), fmt_us(float(hit[0]["p99_us"])),
                        fmt_ratio(p50 / float(base[0]["p50_us"]) if base else None)]
            else:
                row += ["–"] * 3
        rows.append(row)
    out.append(table(["method", *machine_header(sets, ["p50", "p99", "x futex"])], rows))
    if img:
        out.append(f"\n![wake-up latency]({img}/wakeup.png)\n")
    return "\n".join(out)


def section_memory(sets: list[ResultSet], img: str | None) -> str:
    out = ["## 4. Memory: N consumers holding the same array\n",
           "A producer has the array (1 GiB in a full run); N consumer processes each hold a usable "
           "copy / mapping and have read it all. PSS from /proc/<pid>/smaps_rollup (shared pages "
           "are divided between the processes that map them, so the sum is the group's real "
           "cost); Shmem and MemAvailable are system-wide deltas from /proc/meminfo (noisy if "
           "anything else runs). **x copy** = total PSS / total PSS of the copy path at the same N.\n"]
    keys = ordered_union(sets, lambda s: s.memory, lambda r: (int(r["consumers"]), r["method"]))
    rows = []
    mib = lambda kib: f"{float(kib) / 1024:,.0f} MiB"  # noqa: E731
    for n, m in sorted(keys, key=lambda k: (k[0], keys.index(k))):
        row = [str(n), m]
        for s in sets:
            hit = [r for r in s.memory if int(r["consumers"]) == n and r["method"] == m]
            copy = [r for r in s.memory if int(r["consumers"]) == n and r["method"].startswith("copy")]
            if hit:
                h = hit[0]
                ratio = float(h["total_pss_kib"]) / float(copy[0]["total_pss_kib"]) if copy else None
                row += [mib(h["total_pss_kib"]), mib(h["consumers_pss_kib"]), mib(h["shmem_delta_kib"]),
                        mib(h["mem_available_drop_kib"]), fmt_ratio(ratio)]
            else:
                row += ["–"] * 5
        rows.append(row)
    out.append(table(["N", "method", *machine_header(
        sets, ["total PSS", "consumers' PSS", "Shmem delta", "MemAvailable drop", "x copy"])], rows))
    if img:
        out.append(f"\n![memory]({img}/memory.png)\n")
    return "\n".join(out)


def growth(points: list[tuple[float, float]]) -> str:
    """Classifies p50 vs x from the log-log slope between the first and last points."""
    points = sorted(points)
    if len(points) < 2 or points[0][0] <= 0 or points[0][1] <= 0:
        return "–"
    (x0, y0), (x1, y1) = points[0], points[-1]
    slope = math.log(y1 / y0) / math.log(x1 / x0)
    kind = "O(1)" if slope < 0.05 else ("grows, sub-linear" if slope < 0.7 else "O(n)")
    return f"{kind} (x{y1 / y0:.1f} over x{x1 / x0:,.0f}; log-log slope {slope:.2f})"


def section_scale(sets: list[ResultSet], img: str | None) -> str:
    out = ["## 5. Scale: registry size and array size\n",
           "*Registry*: with K small arrays already registered, p50/p99 of creating, opening and "
           "removing 200 more, in 3 batches 0.3 s apart; *best-batch p50* is the lowest of the "
           "three batch medians (a burst of other work on the machine spoils one batch, not the "
           "level). *Array size*: one array at a time, median of 5 (3 at 1 GiB) after a warm-up; "
           "`remove` here is the last reference, so it also frees the pages. The last column "
           "classifies the growth from the first to the last point (registry: best-batch p50; "
           "log-log slope ~0 is O(1), ~1 is O(n)).\n"]
    for axis, title, xname in (("registry", "Registry size", "K arrays"),
                               ("size", "Array size", "size")):
        keys = ordered_union(sets, lambda s: [r for r in s.scale if r["axis"] == axis],
                             lambda r: (int(r["x"]), r["op"]))
        ops = list(dict.fromkeys(op for _, op in keys))
        rows = []
        for op in ops:
            for x in sorted({x for x, o in keys if o == op}):
                row = [f"{x:,}" if axis == "registry" else size_name(x), op]
                for s in sets:
                    hit = [r for r in s.scale if r["axis"] == axis and int(r["x"]) == x and r["op"] == op]
                    if hit and axis == "registry":
                        h = hit[0]
                        row += [fmt_us(float(h["p50_us"])), fmt_us(float(h["p99_us"])),
                                fmt_us(float(h.get("best_batch_p50_us") or h["p50_us"]))]
                    elif hit:
                        row += [fmt_us(float(hit[0]["p50_us"])), fmt_us(float(hit[0]["p99_us"]))]
                    else:
                        row += ["–"] * (3 if axis == "registry" else 2)
                row.append("")
                rows.append(row)
            verdicts = []
            for s in sets:
                pts = [(float(r["x"]), float(r.get("best_batch_p50_us") or r["p50_us"]))
                       for r in s.scale if r["axis"] == axis and r["op"] == op]
                v = growth(pts)
                verdicts.append(v if len(sets) == 1 else f"{s.label}: {v}")
            rows[-1][-1] = "; ".join(verdicts)
        out.append(f"### {title}\n")
        cols = ["p50", "p99", "best-batch p50"] if axis == "registry" else ["p50", "p99"]
        out.append(table([xname, "operation", *machine_header(sets, cols), "growth"], rows))
        if img:
            out.append(f"\n![scale: {title.lower()}]({img}/scale_{axis}.png)\n")
    return "\n".join(out)


def section_headlines(sets: list[ResultSet]) -> str:
    """The few numbers that answer "is it worth it", per machine, straight from the CSVs."""
    out = ["## Headlines\n"]
    gib = 1 << 30
    for s in sets:
        lines = []

        def handoff(use, method):
            med, base = s.median((gib, use, method)), s.median((gib, use, BASELINE))
            return f"{fmt_us(med)} ({fmt_ratio(med / base)} the socket copy's {fmt_us(base)})" \
                if med and base else None

        for use, what in (("touch_one", "touches one element"), ("read_all", "reads it all")):
            parts = [f"{label} {v}" for label, m in (
                ("new array", "shmarray new array (open + fresh mapping)"),
                ("mapped array", "shmarray mapped array (publish -> wait)"),
                ("iceoryx", ICEORYX)) if (v := handoff(use, m))]
            if parts:
                lines.append(f"1 GiB handoff, consumer {what}: " + "; ".join(parts) + ".")
        mem = {(int(r["consumers"]), r["method"]): float(r["total_pss_kib"]) for r in s.memory}
        if mem:
            n = max(k[0] for k in mem)
            shm = mem.get((n, "shmarray"))
            copy = mem.get((n, "copy (unix socket)"))
            if shm and copy:
                lines.append(f"{n} consumers of one 1 GiB array: {shm / 1024:,.0f} MiB of PSS in "
                             f"all with shmarray, {copy / 1024:,.0f} MiB with copies "
                             f"({fmt_ratio(shm / copy)}).")
        wake = {r["method"]: float(r["p50_us"]) for r in s.wakeup}
        base = next((v for k, v in wake.items() if "baseline" in k), None)
        if base:
            parts = [f"{k} {fmt_us(v)}" for k, v in wake.items()]
            lines.append("Wake-up p50, one way: " + "; ".join(parts) + ".")
        one = {r["op"]: r for r in s.control if r["clients"] == "1"}
        if one:
            b = next((float(r["p50_us"]) for k, r in one.items() if k.startswith("baseline")), None)
            parts = [f"{op} {fmt_us(float(r['p50_us']))}" + (f" ({fmt_ratio(float(r['p50_us']) / b)})" if b else "")
                     for op, r in one.items() if not op.startswith("baseline")]
            lines.append(f"Control plane, one client, p50 (x the 64-byte echo round trip, {fmt_us(b)}): "
                         + "; ".join(parts) + ".")
        reg = [r for r in s.scale if r["axis"] == "registry"]
        if reg:
            parts = []
            for op in dict.fromkeys(r["op"] for r in reg):
                pts = sorted((int(r["x"]), float(r["p50_us"])) for r in reg if r["op"] == op)
                parts.append(f"{op} {fmt_us(pts[0][1])} at {pts[0][0]:,} arrays, "
                             f"{fmt_us(pts[-1][1])} at {pts[-1][0]:,}")
            lines.append("Registry size: " + "; ".join(parts) + ".")
        out.append(f"**{s.label}**\n")
        out += [f"- {line}" for line in lines]
        out.append("")
    return "\n".join(out)


# --- plots ------------------------------------------------------------------------------------------

def make_plots(sets: list[ResultSet], img_dir: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot.py: matplotlib not installed (Debian: python3-matplotlib): tables only",
              file=sys.stderr)
        return False
    img_dir.mkdir(parents=True, exist_ok=True)

    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    every = handoff_methods(sets, "read_all") + handoff_methods(sets, "touch_one")

    def color_of(method: str):  # the same colour for a method in every panel
        return palette[list(dict.fromkeys(every)).index(method) % len(palette)]

    def panels(title: str, sharey: bool = True):
        fig, axes = plt.subplots(1, len(sets), figsize=(6.4 * len(sets), 4.6), squeeze=False,
                                 sharey=sharey)
        fig.suptitle(title)
        return fig, axes[0]

    def save(fig, name: str):
        fig.tight_layout()
        fig.savefig(img_dir / name, dpi=110)
        plt.close(fig)

    for use in ("read_all", "touch_one"):
        fig, grid = plt.subplots(2, len(sets), figsize=(7.5 * len(sets), 9), squeeze=False,
                                 sharey=True)
        fig.suptitle(f"Handoff latency, consumer {'reads it all' if use == 'read_all' else 'touches one element'}"
                     " (median; solid = shmarray)")
        for col, s in enumerate(sets):
            for row, python in enumerate((False, True)):
                ax = grid[row][col]
                methods = [m for m in handoff_methods([s], use) if m.startswith("Python") == python]
                if python:
                    methods = [BASELINE] + methods  # the C++ baseline, for scale
                sizes = sorted({k[0] for k in s.handoff if k[1] == use})
                for m in methods:
                    pts = sorted((k[0], statistics.median(v)) for k, v in s.handoff.items()
                                 if k[1] == use and k[2] == m)
                    if pts:
                        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                                linestyle="-" if is_ours(m) else "--",
                                color="0.6" if python and m == BASELINE else color_of(m),
                                label=m.replace("Python: ", "") + (" (C++)" if python and m == BASELINE else ""))
                ax.set(xscale="log", yscale="log", ylabel="µs",
                       title=f"{s.label}: {'Python' if python else 'C++ and iceoryx'}")
                ax.set_xticks(sizes, [size_name(x) for x in sizes])
                ax.minorticks_off()
                ax.grid(True, which="major", alpha=0.3)
                ax.legend(fontsize=7, loc="upper left")
        save(fig, f"handoff_{use}.png")

    fig, axes = panels("Control plane throughput vs client processes", sharey=False)
    for ax, s in zip(axes, sets):
        for op in dict.fromkeys(r["op"] for r in s.control):
            pts = sorted((int(r["clients"]), float(r["ops_per_s"])) for r in s.control if r["op"] == op)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    linestyle="--" if op.startswith("baseline") else "-", label=op)
        ax.set(xscale="log", yscale="log", xlabel="client processes", ylabel="operations / s",
               title=s.label)
        ns = sorted({int(r["clients"]) for r in s.control})
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, "control_plane.png")

    fig, axes = panels("Wake-up latency, one way (p50 bar, p99 tick)", sharey=False)
    for ax, s in zip(axes, sets):
        names = [r["method"] for r in s.wakeup]
        ax.barh(names, [float(r["p50_us"]) for r in s.wakeup], color="tab:blue")
        ax.plot([float(r["p99_us"]) for r in s.wakeup], names, "k|", markersize=14)
        ax.set(xscale="log", xlabel="µs", title=s.label)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(True, axis="x", which="both", alpha=0.3)
    save(fig, "wakeup.png")

    fig, axes = panels("Total PSS with N consumers of one array")
    for ax, s in zip(axes, sets):
        ns = sorted({int(r["consumers"]) for r in s.memory})
        methods = list(dict.fromkeys(r["method"] for r in s.memory))
        width = 0.8 / max(1, len(methods))
        for i, m in enumerate(methods):
            vals = [next((float(r["total_pss_kib"]) / 1024 for r in s.memory
                          if int(r["consumers"]) == n and r["method"] == m), 0) for n in ns]
            ax.bar([j + i * width for j in range(len(ns))], vals, width, label=m)
        ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(ns))], [str(n) for n in ns])
        ax.set(xlabel="consumers", ylabel="MiB", title=s.label)
        ax.legend(fontsize=8)
    save(fig, "memory.png")

    for axis, xlabel in (("registry", "arrays already registered"), ("size", "array size (bytes)")):
        fig, axes = panels(f"Control-plane cost vs {xlabel} (p50)")
        for ax, s in zip(axes, sets):
            for op in dict.fromkeys(r["op"] for r in s.scale if r["axis"] == axis):
                pts = sorted((float(r["x"]), float(r["p50_us"])) for r in s.scale
                             if r["axis"] == axis and r["op"] == op)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=op)
            ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="µs", title=s.label)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        save(fig, f"scale_{axis}.png")
    plot_streams(plt, [s for s in sets if s.stream], save)
    return True


def plot_streams(plt, sets: list[ResultSet], save) -> None:
    """stream_latency.png (bench_stream_latency) and stream_vs_iceoryx.png (handoff driver)."""
    if not sets:
        return
    colors = {"stream": "tab:blue", "bare spin": "black", "mapped array": "tab:green",
              "socket copy": "tab:gray"}
    fig, grid = plt.subplots(len(sets), 2, figsize=(13, 4.8 * len(sets)), squeeze=False)
    fig.suptitle("Stream handoff: publish -> every subscriber has read it all (p50; dotted: "
                 "the build before, same run)")
    for row, s in enumerate(sets):
        for col, mode in enumerate(("hot", "cold")):
            ax = grid[row][col]
            sizes = set()
            for rows, style, suffix in ((s.stream, "-", ""), (s.stream_before, ":", ", before")):
                keys = dict.fromkeys((r["method"], r["subscribers"]) for r in rows
                                     if r["mode"] == mode)
                for method, subs in keys:
                    pts = sorted((int(r["bytes"]), float(r["p50_us"])) for r in rows
                                 if r["mode"] == mode and r["method"] == method
                                 and r["subscribers"] == subs)
                    sizes.update(p[0] for p in pts)
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if subs == "1" else "s",
                            linestyle=style, color=colors.get(method),
                            alpha=1.0 if subs == "1" else 0.5,
                            label=f"{method}, {subs} subscriber{'s' if subs != '1' else ''}{suffix}")
            ax.set(xscale="log", yscale="log", ylabel="µs", title=f"{s.label}: {mode}")
            if sizes:
                ax.set_xticks(sorted(sizes), [size_name(x) for x in sorted(sizes)])
            ax.minorticks_off()
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize=7, loc="upper left")
    save(fig, "stream_latency.png")

    with_ice = [s for s in sets if any(k[2] == ICEORYX for k in s.handoff)]
    if not with_ice:
        return
    fig, axes = plt.subplots(1, len(with_ice), figsize=(6.4 * len(with_ice), 4.6), squeeze=False)
    fig.suptitle("Stream vs iceoryx, handoff driver, consumer reads it all (median; same run)")
    for ax, s in zip(axes[0], with_ice):
        for data, method, style, label in (
                (s.handoff, STREAM, "-", "shmarray stream"),
                (s.handoff_before, STREAM, ":", "shmarray stream, before"),
                (s.handoff, ICEORYX, "--", "iceoryx 2.0")):
            pts = sorted((k[0], statistics.median(v)) for k, v in data.items()
                         if k[1] == "read_all" and k[2] == method)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", linestyle=style,
                        label=label)
        sizes = sorted({k[0] for k in s.handoff if k[2] in (STREAM, ICEORYX)})
        ax.set(xscale="log", yscale="log", ylabel="µs", title=s.label)
        ax.set_xticks(sizes, [size_name(x) for x in sizes])
        ax.minorticks_off()
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    save(fig, "stream_vs_iceoryx.png")


# --- main -------------------------------------------------------------------------------------------

def section_list_interference(sets: list[ResultSet], img: str | None) -> str:
    if not any(s.list_interference for s in sets):
        return ""
    out = ["## 2b. Head-of-line blocking: stat while another client lists\n",
           "`bench/bench_list_interference`: one client lists N arrays in a loop while another "
           "stats one array every millisecond; baseline = the same stats with nothing else "
           "running. *all at once* is the single reply every client got before paging (limit 0); "
           "*paged* is `Client::list` (pages of `wire::kMaxListPage`, 256). **x idle** = p99 / baseline p99.\n"]
    rows = []
    for s in sets:
        base = [r for r in s.list_interference if r["phase"].startswith("idle")]
        for r in s.list_interference:
            p99 = float(r["p99_us"])
            rows.append([s.label, r["arrays"], r["phase"], fmt_us(float(r["p50_us"])), fmt_us(p99),
                         fmt_us(float(r["max_us"])), f"{float(r['list_s']):.3f}",
                         fmt_ratio(p99 / float(base[0]["p99_us"]) if base else None)])
    out.append(table(["machine", "arrays", "phase", "stat p50", "stat p99", "stat max",
                      "one listing (s)", "x idle"], rows))
    return "\n".join(out)


def section_write_lock(sets: list[ResultSet], img: str | None) -> str:
    if not any(s.write_lock for s in sets):
        return ""
    out = ["## 3b. The write lock: owner word vs the glibc robust mutex it replaced\n",
           "`bench/bench_write_lock`, both locks in one MAP_SHARED region shared by fork(), same "
           "run. *old*: the process-shared, robust, error-checking pthread mutex (clocklock with a "
           "deadline) the lock was until layout 2; *new*: the plain owner word "
           "(docs/synchronisation.md), whose live fields hold nothing a co-writer could aim at "
           "another process. Contended = two processes each lock / bump a counter / unlock "
           "(wall time per acquisition); handoff = strict alternation through the lock, one way; "
           "dead owner = SIGKILL of the holder to the blocked waiter's acquisition (the new lock "
           "checks a sleeping owner every 5 ms, so up to 5 ms by design). **new/old** > 1 is a "
           "loss.\n"]
    measures = ordered_union(sets, lambda s: s.write_lock, lambda r: r["measure"])
    rows = []
    for m in measures:
        row = [m]
        for s in sets:
            old = [float(r["value"]) for r in s.write_lock if r["measure"] == m and r["lock"] == "old"]
            new = [float(r["value"]) for r in s.write_lock if r["measure"] == m and r["lock"] == "new"]
            if old and new:
                row += [f"{old[0]:.3g}", f"{new[0]:.3g}", fmt_ratio(new[0] / old[0] if old[0] else None)]
            else:
                row += ["–"] * 3
        rows.append(row)
    out.append(table(["measure", *machine_header(sets, ["old", "new", "new/old"])], rows))
    return "\n".join(out)


def section_streams(sets: list[ResultSet], img: str | None) -> str:
    if not any(s.stream or s.python_stream for s in sets):
        return ""
    out = ["## 6. Streams\n",
           "`bench/bench_stream_latency` (docs/streams.md): a publisher hands a message to 1 or 4 "
           "subscriber processes, each takes it and reads every byte; the clock runs from the "
           "hand-over to the last subscriber's end timestamp. Same run, methods one after another "
           "per size: *stream* (loan filled before the clock, publish -> take -> read -> release), "
           "*mapped array* (publish -> wait_newer_than), *socket copy* (write -> read into a "
           "private buffer), *bare spin* (the bytes in shared memory and a counter the subscribers "
           "spin on: the floor). *hot*: the next message follows the acknowledgement at once "
           "(subscribers still polling); *cold*: 1 ms apart (a stream subscriber spins 50 us, then "
           "sleeps on a futex; the bare spin never sleeps). **x spin** = p50 / bare spin p50 with "
           "as many subscribers. *faults* = minor page faults per message (getrusage) on the "
           "publisher / the slowest subscriber over the timed rounds. The comparison with iceoryx "
           "uses the handoff driver of section 1 (row *shmarray stream*, same run as the iceoryx "
           "row).\n"]
    for s in sets:
        if not s.stream:
            continue
        rows = []
        for r in s.stream:
            spin = [x for x in s.stream if x["method"] == "bare spin" and x["mode"] == r["mode"]
                    and x["bytes"] == r["bytes"] and x["subscribers"] == r["subscribers"]]
            ratio = float(r["p50_us"]) / float(spin[0]["p50_us"]) if spin else None
            rows.append([r["mode"], size_name(int(r["bytes"])), r["method"], r["subscribers"],
                         fmt_us(float(r["p50_us"])), fmt_us(float(r["p99_us"])),
                         f"{float(r['msgs_per_s']):,.0f}",
                         f"{float(r['pub_minflt_per_msg']):.3f} / {float(r['sub_minflt_per_msg']):.3f}",
                         fmt_ratio(ratio)])
        out.append(f"### {s.label}\n")
        out.append(table(["mode", "size", "method", "subscribers", "p50", "p99", "msgs/s",
                          "faults pub / sub", "x spin"], rows))
        losses = []
        for size in sorted({k[0] for k in s.handoff if k[2] == STREAM}):
            mine, ice = s.median((size, "read_all", STREAM)), s.median((size, "read_all", ICEORYX))
            if mine and ice:
                verdict = "loses to" if mine > ice * LOSS_MARGIN else "matches or beats"
                losses.append(f"{size_name(size)}: stream {fmt_us(mine)} vs iceoryx {fmt_us(ice)} "
                              f"({mine / ice:.2f}x), {verdict} iceoryx")
        if losses:
            out.append("\nAgainst iceoryx (section 1 driver, read all, medians, same run): " +
                       "; ".join(losses) + ".\n")
    for s in sets:
        if not s.python_stream:
            continue
        rows = [[r["method"], f"{float(r['frames_per_s']):,.1f}", f"{float(r['mib_per_s']):,.1f}",
                 r["frames"]] for r in s.python_stream]
        out.append(f"\n### Python, 480x640x3 uint8 frames ({s.label})\n")
        out.append("`bench/python_stream.py`: one process sends frames (the stream copies each into "
                   "its loaned slot, the Queue pickles it, the hand-built ring copies it into a "
                   "slot of a `multiprocessing.shared_memory` block guarded by two semaphores); "
                   "the other reads every byte of every frame.\n")
        out.append(table(["method", "frames/s", "MiB/s", "frames"], rows))
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="+", type=Path, help="result directories (bench/run.sh --out)")
    parser.add_argument("--out-md", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--img", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    sets = [ResultSet(d) for d in args.sets if (d / "meta.csv").exists()]
    if not sets:
        print("plot.py: no result sets (directories with meta.csv) given", file=sys.stderr)
        return 1
    plotted = make_plots(sets, args.img)
    img = os.path.relpath(args.img, args.out_md.parent) if plotted else None
    notes = HERE / "benchmarks_notes.md"
    parts = [
        "# Benchmarks\n",
        "Generated by `bench/run.sh` (then `bench/plot.py`) from the CSVs under "
        f"`{os.path.relpath(args.sets[0].parent, args.out_md.parent)}/`; every table names the "
        "machine it came from, and where more than one machine was measured they stand side by "
        "side. Every ratio is against a baseline measured in the same run on the same machine. "
        "Reproduce with `bench/run.sh` (about 6-7 minutes on an idle 2-core machine; add `--machine LABEL --out DIR` "
        "for another machine's column).\n",
        section_machines(sets),
        section_headlines(sets),
        notes.read_text() if notes.exists() else "",
        section_handoff(sets, img),
        section_control(sets, img),
        section_list_interference(sets, img),
        section_wakeup(sets, img),
        section_write_lock(sets, img),
        section_memory(sets, img),
        section_scale(sets, img),
        section_streams(sets, img),
        plot_across_hosts.section(sets, args.img if plotted else None, img),
    ]
    args.out_md.parent.mkdir(parents=True, exist_ok=True)
    args.out_md.write_text("\n".join(p for p in parts if p))
    print(f"plot.py: wrote {args.out_md}" + (f" and plots in {args.img}" if plotted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
