"""Write bench/results/latest.md, and the README's Performance block made from it.

The README block is a pure function of latest.md (`readme_block`), so a test can hold
the two equal without running a benchmark.
"""

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.stats import Results, fmt

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


def _rows(body: str) -> list[str]:
    """The data lines of a section's Markdown table."""
    lines = [line for line in body.splitlines() if line.startswith("| ")]
    return lines[2:]


def _key(line: str) -> tuple[str, str]:
    """A table row's group and measure (or target): what a re-run replaces."""
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:3]]
    return cells[0], cells[1]


_RERUN = " measured again at "
_RERUN_END = "those rows and ratios come from that run."


def rerun_note(groups: Sequence[str], when: str, elapsed: float, load: str) -> str:
    """The summary's sentence for a run of `groups` alone, merged into latest.md."""
    return (
        f"{', '.join(groups)}{_RERUN}{when} UTC in a run of its own "
        f"(`--only {','.join(groups)} --merge`, {elapsed:.0f} s, the same size and settings, "
        f"load average {load} at its start): {_RERUN_END}"
    )


def _without_earlier_rerun(summary: str, note: str) -> str:
    """`summary` without the sentence of an earlier rerun of `note`'s groups: the rows
    it spoke for are replaced."""
    groups = note.partition(_RERUN)[0]
    pattern = rf" ?{re.escape(groups + _RERUN)}.*?{re.escape(_RERUN_END)}"
    return re.sub(pattern, "", summary)


def merge(old: str, new: str, rerun: Sequence[str], order: Sequence[str], note: str) -> str:
    """`old` (a latest.md) with the rows of `new`, a run of the groups `rerun` alone.

    A row of `new` replaces the row of `old` with the same group and measure; every
    other row of `old` stays, except the placeholder of a group that had failed; rows
    stay in `order` of their group column; `note` is added to the summary, in place of
    an earlier rerun's note for the same groups.
    """
    before, after = sections(old), sections(new)
    rank = {g: i for i, g in enumerate(order)}
    placeholders = {f"every target of {g}" for g in rerun}

    def table(title: str) -> str:
        added = _rows(after[title])
        replaced = {_key(r) for r in added}
        kept = [
            r for r in _rows(before[title])
            if _key(r) not in replaced and _key(r)[1] not in placeholders
        ]  # fmt: skip
        header = before[title].splitlines()[:2]
        merged = sorted(kept + added, key=lambda r: rank.get(_key(r)[0], len(rank)))
        return "\n".join([*header, *merged])

    groups = {_key(r)[0] for title in ("Targets", "Figures") for r in _rows(after[title])}
    mine = tuple(f"- {g}{end}" for g in groups | set(rerun) for end in (":", " failed"))
    notes = [n for n in before["Notes"].splitlines() if not n.startswith(mine)]
    notes += [n for n in after["Notes"].splitlines() if n.startswith("- ")]
    return "\n".join([
        "# Benchmark results", "", f"{_without_earlier_rerun(before[''], note)} {note}", "",
        "## Targets", "", table("Targets"), "",
        "## Figures", "", table("Figures"), "",
        "## Machine", "", before["Machine"], "",
        "## Settings", "", before["Settings"], "",
        "## Notes", "", *notes, "",
    ])  # fmt: skip
