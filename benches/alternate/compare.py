#!/usr/bin/env python3
"""Compares the record_usage ratios (keytop to its floor, same run) that run.sh collected: for each
bench, the median and range; against BASE (default: the first bench named), the change of the
medians and the median, mean and spread of the paired rounds' changes."""
import re
import statistics
import sys

ratios = {}
for line in open(sys.argv[1]):
    found = re.match(r"(\S+) \d+ \| record_usage \| \d+/s \| \d+/s \| ([\d.]+)×", line)
    if found:
        ratios.setdefault(found.group(1), []).append(float(found.group(2)))
base = sys.argv[2] if len(sys.argv) > 2 else next(iter(ratios))
for name, runs in ratios.items():
    text = f"{name}: {len(runs)} runs, median {statistics.median(runs):.3f} ({min(runs):.2f}-{max(runs):.2f})"
    if name != base:
        pairs = [ours / theirs - 1 for theirs, ours in zip(ratios[base], runs)]
        medians = statistics.median(runs) / statistics.median(ratios[base]) - 1
        text += (f"; against {base}: medians {medians:+.1%}, paired rounds median {statistics.median(pairs):+.1%}, "
                 f"mean {statistics.mean(pairs):+.1%} (sd {statistics.stdev(pairs):.1%})")
    print(text)
