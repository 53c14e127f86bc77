"""Re-renders benchmark reports from the JSON records beside them.

Usage (from the repository root)::

    python -m benchmarks.render            # rewrite every RESULTS*.md from its .json
    python -m benchmarks.render --check    # only list the reports that differ
    python -m benchmarks.render benchmarks/speed/RESULTS.json

Nothing is measured: each report is what its record's ``renderer`` module
makes of the figures the run stored (`benchmarks.common`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.common import ROOT, read_record, render


def records(paths: list[str]) -> list[Path]:
    """The records named, or every ``benchmarks/*/RESULTS*.json``."""
    if paths:
        return [Path(p) for p in paths]
    return sorted((ROOT / "benchmarks").glob("*/RESULTS*.json"))


def main(argv: list[str] | None = None) -> int:
    """Renders each record; with ``--check``, exits 1 if a report differs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="*", help="JSON records (default: all)")
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    differ = []
    for path in records(args.records):
        report = path.with_suffix(".md")
        text = render(read_record(path))
        same = report.exists() and report.read_text() == text
        if args.check:
            print(f"{'same' if same else 'DIFFERS'}: {report}")
            differ += [] if same else [report]
        elif not same:
            from tltf.files import write_text

            write_text(report, text)
            print(f"wrote {report}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
