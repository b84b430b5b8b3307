"""Summary of an alternating request-path comparison (bench/ab_control_plane.sh,
bench/portable_run.sh): per variant (the CSV's machine label), the median over runs of each
operation's p50 and of its ratio to the same run's 64-byte echo.
    python3 bench/control_plane_ab_summary.py control_plane.csv"""

import collections
import csv
import statistics
import sys

runs = collections.defaultdict(list)
for row in csv.DictReader(open(sys.argv[1])):
    if row["op"].startswith("baseline"):
        runs[row["machine"]].append({"echo": float(row["p50_us"]), "ops": {}})
    runs[row["machine"]][-1]["ops"][row["op"]] = float(row["p50_us"])
print("medians over runs of p50 and of the ratio to the same run's 64-byte echo")
print(f"{'variant':<28} {'operation':<16} {'p50 (us)':>9} {'x echo':>8}")
for label, samples in runs.items():
    print(f"{label:<28} {'echo':<16} {statistics.median(s['echo'] for s in samples):9.2f} {'1.00x':>8}")
    for op in ["create", "open read-only", "open read-write", "stat", "remove"]:
        p50 = statistics.median(s["ops"][op] for s in samples)
        ratio = statistics.median(s["ops"][op] / s["echo"] for s in samples)
        print(f"{label:<28} {op:<16} {p50:9.2f} {ratio:7.2f}x")
