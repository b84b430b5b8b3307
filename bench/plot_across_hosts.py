"""The "Across hosts" section of docs/benchmarks.md (issue 15), from across_hosts.csv of each
result set (bench/bench_across_hosts): publish(A) -> wait(B) through two brokers against a plain
TCP copy of the same bytes between the same network namespaces and ucx_perftest, per link.
Used by bench/plot.py; says where the mirror loses to the TCP floor."""

from __future__ import annotations

import csv
import math
from pathlib import Path

GOAL_RATE = 0.9  # the goal: at least 0.9x the TCP copy's throughput
GOAL_LATENCY = 1.2  # ... and within 1.2x of its latency


def _rows(directory: Path) -> list[dict]:
    path = directory / "across_hosts.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def _us(us: float) -> str:
    if math.isnan(us):
        return "–"
    if us < 10:
        return f"{us:.1f} µs"
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 1e6:
        return f"{us / 1e3:.1f} ms"
    return f"{us / 1e6:.2f} s"


def _plot(sets, img_dir: Path) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    with_rows = [(s, _rows(s.dir)) for s in sets]
    with_rows = [(s, rows) for s, rows in with_rows if rows]
    if not with_rows:
        return None
    fig, axes = plt.subplots(1, len(with_rows), figsize=(6.5 * len(with_rows), 4.5), squeeze=False)
    for ax, (s, rows) in zip(axes[0], with_rows):
        series: dict[str, list[tuple[int, float]]] = {}
        for r in rows:
            if r["method"] == "tcp 60K sends" or r["method"].startswith("paced"):
                continue  # the floor ("tcp copy") wherever it is faster; paced rows: the table
            series.setdefault(f"{r['link']}: {r['method']}", []).append(
                (int(r["size"]), float(r["gbps"])))
        colors = {"tcp copy": "tab:gray", "tcp one send": "tab:orange",
                  "ucx_perftest": "tab:green", "mirror": "tab:blue"}
        for label, points in sorted(series.items()):
            points.sort()
            link, method = label.split(": ", 1)
            ax.plot([p[0] for p in points], [p[1] for p in points],
                    "-" if link == "veth" else "--", marker="o", label=label,
                    color=colors.get(method))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bytes per transfer")
        ax.set_ylabel("GB/s (bytes / median latency)")
        ax.set_title(f"Across hosts: {s.label}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    img_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(img_dir / "across_hosts.png", dpi=110)
    plt.close(fig)
    return "across_hosts.png"


def section(sets, img_dir: Path | None, img_rel: str | None) -> str:
    """Markdown for the section ("" when no set has across_hosts.csv)."""
    if not any(_rows(s.dir) for s in sets):
        return ""
    out = ["## Across hosts (mirrors over UCX)\n",
           "`bench/bench_across_hosts` (docs/across-hosts.md): two \"hosts\" are two network "
           "namespaces joined by a veth pair (MTU 1500), host B with a private /dev/shm; "
           "*loopback* puts both in one network namespace (127.0.0.1). Same run, per link and "
           "size: *tcp copy* is the floor, a plain TCP socket sending the bytes from a touched "
           "buffer on A into a touched buffer on B (clock from the first send() to the receiver's "
           "last recv()), the faster of *tcp one send* (one send() of everything) and *tcp 60K "
           "sends* (send() of 60 KiB at a time) in the same run; *ucx_perftest* is UCX's own "
           "tag_lat over UCX_TLS=tcp with the bridge's 60 KiB fragments (half a ping-pong of N "
           "bytes each way); *mirror* is publish() of an N-byte array on broker A until "
           "wait_newer_than() returns on its mirror on broker B, through both bridges; *paced "
           "N/s* rows: a 4 KiB version N times a second, against a TCP copy at the same pace "
           "(`--paced-hz`). GB/s = "
           "bytes / median latency of one transfer at a time. **x tcp** = median latency / tcp "
           f"copy's median (the goal: at most {GOAL_LATENCY}x, and at least {GOAL_RATE}x the "
           "rate, i.e. at most about 1.11x its time per transfer).\n"]
    plot = _plot(sets, img_dir) if img_dir is not None else None
    if plot and img_rel is not None:
        out.append(f"![across hosts]({img_rel}/{plot})\n")
    for s in sets:
        rows = _rows(s.dir)
        if not rows:
            continue
        out.append(f"### {s.label}\n")
        out.append("| link | size | method | rounds | p50 | p99 | GB/s | x tcp |")
        out.append("|---|---|---|---|---|---|---|---|")
        for r in rows:
            out.append(f"| {r['link']} | {_size(int(r['size']))} | {r['method']} | {r['rounds']} | "
                       f"{_us(float(r['p50_us']))} | {_us(float(r['p99_us']))} | "
                       f"{float(r['gbps']):.2f} | {float(r['ratio_to_tcp_p50']):.2f}x |")
        losses = []
        for r in rows:
            if not r["method"].endswith("mirror"):
                continue
            ratio = float(r["ratio_to_tcp_p50"])
            paced = f" ({r['method'][:-len(' mirror')]})" if r["method"] != "mirror" else ""
            if ratio > GOAL_LATENCY or 1 / ratio < GOAL_RATE:
                losses.append(f"{r['link']} {_size(int(r['size']))}{paced}: {ratio:.2f}x the TCP "
                              f"copy's time ({1 / ratio:.2f}x its rate)")
        mirrors = [r for r in rows if r["method"] == "mirror"]
        if not mirrors:
            out.append("\nNo *mirror* rows: the shmarrayd measured had no --peer-listen.\n")
        elif losses:
            out.append("\nWhere the mirror misses the goal: " + "; ".join(losses) + ".\n")
        else:
            out.append("\nThe mirror meets the goal at every size measured.\n")
    return "\n".join(out) + "\n"
