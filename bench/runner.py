"""Run every benchmark group on one private Redis, write latest.md and the README block."""

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import drain, http_load, latency, operator_rows, redis_limits, workflows
from bench.machine import load_average, machine_info
from bench.report import LATEST, merge, render, rerun_note, update_readme
from bench.sizes import SIZES, Size
from bench.stats import NOT_MEASURED, Results, Target
from celery_harder_dev.stack import RedisServer, running_redis

Group = Callable[[RedisServer, Path, Size], Results]


def b0(server: RedisServer, workdir: Path, size: Size) -> Results:
    return Results(rows=redis_limits.run(server, size))


GROUPS: dict[str, Group] = {
    "B0": b0,
    "B1": http_load.run,  # and B7's API side
    "B2": drain.run,  # and B7's worker side
    "B3": latency.run,
    "B4+B5": workflows.run,
    "B6": operator_rows.run,  # B6, B6b, B6c and B6d
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--out", type=Path, default=LATEST, help="the results file to write")
    parser.add_argument(
        "--readme", action=argparse.BooleanOptionalAction, default=None,
        help="rewrite the README's Performance block (default: only for a full run to latest.md)",
    )  # fmt: skip
    parser.add_argument("--only", default="", help="comma-separated groups (B0,B1,...)")
    parser.add_argument("--workdir", type=Path, help="keep logs here (default: a temporary one)")
    parser.add_argument("--note", default="", help="a sentence added to the summary")
    parser.add_argument(
        "--merge", action="store_true",
        help="keep the other groups' rows of the results file already at --out",
    )  # fmt: skip
    return parser.parse_args(argv)


def run_groups(
    chosen: list[str], size: Size, keep: Path | None
) -> tuple[dict[str, Results], list[str]]:
    """Run each chosen group on one private Redis; a failing group is reported, not fatal."""
    groups: dict[str, Results] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="celery-harder-bench-") as tmp:
        workdir = keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        with running_redis(workdir / "redis") as server:
            for name in chosen:
                print(f"bench: {name} ({size.name})", file=sys.stderr, flush=True)
                t0 = time.monotonic()
                try:
                    found = GROUPS[name](server, workdir, size)
                except Exception:  # noqa: BLE001  (one broken group must not hide the others)
                    traceback.print_exc()
                    failed.append(name)
                    reason = f"{name} failed in this run: see the run's output"
                    groups[name] = Results(
                        targets=[
                            Target(name, f"every target of {name}", "—", NOT_MEASURED, reason)
                        ],
                        notes=[f"{reason}."],
                    )
                    continue
                groups[name] = found
                print(f"bench: {name} took {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return groups, failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    size = SIZES[args.size]
    chosen = [g.strip() for g in args.only.split(",") if g.strip()] or list(GROUPS)
    unknown = [g for g in chosen if g not in GROUPS]
    if unknown:
        raise SystemExit(f"unknown groups {unknown}; known: {list(GROUPS)}")
    started, load_before = time.monotonic(), load_average()
    drain.install_tools()  # hey, redis-benchmark, the peers: before the clock matters
    machine = machine_info()
    groups, failed = run_groups(chosen, size, args.workdir)
    elapsed = time.monotonic() - started
    summary = (
        f"`python -m bench --size {size.name}` on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}"
        f" UTC took {elapsed:.0f} s; load average {load_before} at the start and "
        f"{load_average()} at the end. Every figure is the median of {size.reps} repetitions, "
        "min and max beside it; every ratio is the figure ÷ its baseline, repetition by "
        "repetition, the two measured back to back in the same run: absolute figures from "
        "different runs are not comparable on this noisy machine, ratios are."
        + (f" {args.note}" if args.note else "")
    )
    settings = {f: str(getattr(size, f)) for f in size.__dataclass_fields__}
    results = Results()
    for name in GROUPS:
        if name in groups:
            results.rows += groups[name].rows
            results.targets += groups[name].targets
            results.notes += groups[name].notes
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = render(results, summary, machine, settings)
    if args.merge:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        note = rerun_note(chosen, when, elapsed, load_before)
        order = ["B0", "B1", "B2", "B3", "B4", "B5", "B6", "B6b", "B6c", "B6d", "B7"]
        rerun = [g for c in chosen for g in c.split("+")]
        text = merge(args.out.read_text(), text, rerun, order, note)
    args.out.write_text(text)
    write_readme = args.readme if args.readme is not None else (
        size.name == "full" and args.out.resolve() == LATEST.resolve()
        and (not args.only or args.merge)
    )  # fmt: skip
    if write_readme:
        update_readme(args.out)
    print(args.out.read_text())
    print(f"bench: wrote {args.out} in {elapsed:.0f} s", file=sys.stderr)
    return 1 if failed else 0
