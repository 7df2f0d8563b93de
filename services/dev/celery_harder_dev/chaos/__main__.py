"""`make chaos`: run every case and the soak, print one table, write it to a Markdown file."""

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from celery_harder_dev.chaos.cases import CASES, FULL, SHORT, Size, run_case
from celery_harder_dev.chaos.counting import CaseResult, render_table
from celery_harder_dev.chaos.soak import run_soak
from celery_harder_dev.chaos.soak_counts import SoakResult

SIZES = {"full": FULL, "short": SHORT}


def report(size: str, rows: list[CaseResult], soak: SoakResult | None, minutes: float) -> str:
    """The Markdown file `make chaos` writes: when, how big, the table, the soak."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# Reliability: the last `make chaos` run",
        "",
        f"Written by `python -m celery_harder_dev.chaos --size {size}` on {when}, "
        f"{os.cpu_count()} CPUs, {minutes:.1f} min. Every case ran real processes on "
        "loopback; `duplicated` counts tasks whose body started more than once "
        "(at-least-once delivery, see docs/reliability.md).",
        "",
        render_table(rows),
    ]
    if soak is not None:
        parts += ["", "## API soak", "", *soak.lines()]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the suite; exit 1 if a task was lost or not completed, or the soak failed."""
    parser = argparse.ArgumentParser(prog="python -m celery_harder_dev.chaos")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--soak-seconds", type=float, default=60.0)
    parser.add_argument("--warmup-seconds", type=float, default=10.0)
    parser.add_argument("--no-soak", action="store_true", help="run the cases only")
    parser.add_argument(
        "--case", action="append", choices=[c.name for c in CASES], help="only these cases"
    )
    parser.add_argument("--out", type=Path, help="write the report (Markdown) here")
    args = parser.parse_args(argv)
    size: Size = SIZES[args.size]
    workdir = Path(tempfile.mkdtemp(prefix="celery-harder-chaos-"))
    started = time.monotonic()
    rows: list[CaseResult] = []
    for number, case in enumerate(CASES):
        if args.case and case.name not in args.case:
            continue
        print(f"chaos: {case.label} ...", flush=True)
        rows.append(run_case(case, size, workdir / f"case{number}"))
        print(f"chaos:   {rows[-1]}", flush=True)
    soak = None
    if not args.no_soak:
        print(f"chaos: API soak, {args.soak_seconds:.0f} s after warm-up ...", flush=True)
        soak = run_soak(workdir / "soak", args.soak_seconds, args.warmup_seconds)
    text = report(args.size, rows, soak, (time.monotonic() - started) / 60)
    print(text)
    if args.out:
        args.out.write_text(text)
        print(f"chaos: wrote {args.out}")
    held = all(r.held for r in rows) and (soak is None or soak.held)
    if held:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"chaos: FAILED; logs kept in {workdir}", file=sys.stderr)
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
