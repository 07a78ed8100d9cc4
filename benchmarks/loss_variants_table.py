"""Markdown table of benchmarks/loss_variants.sh runs: test accuracy, mean +- std over seeds.

Usage: python benchmarks/loss_variants_table.py OUT_DIR
"""

import json
import sys
from pathlib import Path

import numpy as np

# (row label, run name, report.json key)
ROWS = [
    ("SupCon, denominator all (paper), two-stage", "hybrid", "supcon"),
    ("denominator one_positive (SINCERE), two-stage", "one_positive", "supcon"),
    ("denominator only_negatives (DCL), two-stage", "only_negatives", "supcon"),
    ("positives_cap=4, two-stage", "cap4", "supcon"),
    ("hybrid 1.0 x SupCon + CE, one-stage", "hybrid", "hybrid"),
]


def main(out):
    lines = [
        "| variant | test accuracy (mean +- std) | per seed | training s/run (pretrain or hybrid phase) |",
        "|---|---|---|---|",
    ]
    for label, name, key in ROWS:
        reports = [
            json.loads(path.read_text()) for path in sorted(Path(out).glob(f"{name}_*/report.json"))
        ]
        if not reports:
            lines.append(f"| {label} | not run | | |")
            continue
        accuracies = np.array([report[key]["test_accuracy"] for report in reports])
        phase = "hybrid" if key == "hybrid" else "pretrain"
        seconds = np.mean([report["timings"][f"{phase}_seconds"] for report in reports])
        seeds = ", ".join(f"{value:.4f}" for value in accuracies)
        lines.append(
            f"| {label} | {accuracies.mean():.4f} +- {accuracies.std(ddof=1) if len(accuracies) > 1 else 0:.4f} "
            f"| {seeds} (n={len(accuracies)}) | {seconds:.0f} |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
