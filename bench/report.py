"""Write bench/results/latest.md, and the README's Performance block made from it.

The README block is a pure function of latest.md (`readme_block`), so a test can hold
the two equal without running a benchmark.
"""

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.stats import Figure, Results, Row, Target, fmt

ROOT = Path(__file__).resolve().parents[1]
LATEST = ROOT / "bench" / "results" / "latest.md"
README = ROOT / "README.md"
BEGIN = "<!-- bench:begin (written by `make bench` from bench/results/latest.md) -->"
END = "<!-- bench:end -->"
BLOCK_SECTIONS = ("Targets", "Figures")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "| " + " | ".join("---" for _ in header) + " |", *map(line, rows)]


def render(
    results: Results, summary: str, machine: Mapping[str, str], settings: Mapping[str, str]
) -> str:
    """The whole of latest.md."""
    targets = _table(
        ["#", "target", "got", "mark", "note"],
        [[t.group, t.target, t.got, t.mark, t.note] for t in results.targets],
    )
    figures = _table(
        ["#", "measure", "median", "min", "max", "against (same run)", "ratio median (min–max)"],
        [
            [
                r.group,
                r.measure,
                f"{fmt(r.value.median)} {r.unit}",
                fmt(r.value.low),
                fmt(r.value.high),
                r.baseline
                + (
                    f" ({fmt(r.baseline_value.median)} {r.baseline_unit or r.unit})"
                    if r.baseline_value
                    else ""
                ),
                f"{fmt(r.ratio.median)}× ({fmt(r.ratio.low)}–{fmt(r.ratio.high)})"
                if r.ratio
                else "—",
            ]
            for r in results.rows
        ],
    )
    lines = [
        "# Benchmark results",
        "",
        summary,
        "",
        "## Targets",
        "",
        *targets,
        "",
        "## Figures",
        "",
        *figures,
        "",
        "## Machine",
        "",
        *_table(["", ""], [[k, v] for k, v in machine.items()]),
        "",
        "## Settings",
        "",
        *_table(["setting", "value"], [[k, v] for k, v in settings.items()]),
        "",
        "## Notes",
        "",
        *[f"- {n}" for n in results.notes],
        "",
    ]
    return "\n".join(lines)


def sections(text: str) -> dict[str, str]:
    """latest.md's `## ` sections by title, and its opening summary under ''."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    found = {"": parts[0].split("\n", 1)[1].strip() if "\n" in parts[0] else ""}
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        found[title.strip()] = body.strip()
    return found


def readme_block(latest_text: str) -> str:
    """The README's Performance block: latest.md's summary, targets and figures."""
    found = sections(latest_text)
    body = [BEGIN, "", found[""], ""]
    for title in BLOCK_SECTIONS:
        body += [f"**{title}**", "", found[title], ""]
    body += [
        "Machine, versions, settings and notes: "
        "[bench/results/latest.md](bench/results/latest.md).",
        "",
        END,
    ]
    return "\n".join(body)


def replace_block(readme_text: str, block: str) -> str:
    """README text with its marked block replaced by `block`."""
    start, end = readme_text.find(BEGIN), readme_text.find(END)
    if start < 0 or end < start:
        raise ValueError("README has no bench block markers")
    return readme_text[:start] + block + readme_text[end + len(END) :]


def update_readme(latest: Path = LATEST, readme: Path = README) -> None:
    """Rewrite the README's Performance block from latest.md."""
    readme.write_text(replace_block(readme.read_text(), readme_block(latest.read_text())))


def _figure(d: dict[str, Any] | None) -> Figure | None:
    return Figure(tuple(d["samples"])) if d else None


def results_to_json(results: Results) -> dict[str, Any]:
    return dataclasses.asdict(results)


def results_from_json(d: dict[str, Any]) -> Results:
    rows = []
    for r in d["rows"]:
        value = _figure(r["value"])
        assert value is not None
        rows.append(
            Row(
                **{
                    **r,
                    "value": value,
                    "ratio": _figure(r["ratio"]),
                    "baseline_value": _figure(r["baseline_value"]),
                }
            )
        )
    return Results(rows, [Target(**t) for t in d["targets"]], list(d["notes"]))


def sidecar(out: Path) -> Path:
    """Where a results file keeps its figures as data (for `--merge`)."""
    return out.with_suffix(".json")


def save(out: Path, run: Mapping[str, Any], groups: Mapping[str, Results]) -> None:
    data = {**run, "groups": {k: results_to_json(v) for k, v in groups.items()}}
    sidecar(out).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def load(out: Path) -> tuple[dict[str, Any], dict[str, Results]]:
    data = json.loads(sidecar(out).read_text())
    groups = {k: results_from_json(v) for k, v in data.pop("groups").items()}
    return data, groups
