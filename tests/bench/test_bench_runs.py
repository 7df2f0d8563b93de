"""T1 and T2: `python -m bench --size tiny` runs every benchmark once and writes a whole report.

The benchmarks are not timed tests: nothing here looks at a figure's size, only that
every row is there with numbers, and every target is marked met, not met or not measured.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import readme_block, sections

ROOT = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")
MARKS = {"met", "not met", "not measured"}
MEASURED = {"B0", "B1", "B2", "B3", "B4", "B5", "B6", "B6b", "B6c", "B6d", "B7"}


def table(body: str) -> list[list[str]]:
    """The cells of a Markdown table's data rows."""
    lines = [line for line in body.splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


@pytest.mark.t2  # B6 applies TaskWorkflows through the real kube-apiserver
@pytest.mark.timeout(1200)
def test_tiny_run_writes_every_row_and_mark(tmp_path: Path) -> None:
    out = tmp_path / "latest.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--size", "tiny", "--out", str(out), "--no-readme",
         "--workdir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=1100, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    found = sections(out.read_text())
    assert "--size tiny" in found[""]
    figures = table(found["Figures"])
    assert {row[0] for row in figures} == MEASURED
    for group, measure, median, low, high, _against, ratio in figures:
        value, unit = median.split(" ", 1)
        assert NUMBER.match(value) and unit, (group, measure, median)
        assert NUMBER.match(low) and NUMBER.match(high), (group, measure)
        assert ratio == "—" or re.match(r"^-?[\d.,]+× \(-?[\d.,]+–-?[\d.,]+\)$", ratio), ratio
    assert any(r[0] == "B0" and r[6] == "—" for r in figures)  # a baseline of its own
    targets = table(found["Targets"])
    assert {row[3] for row in targets} <= MARKS
    marked = {row[0] for row in targets if row[3] in ("met", "not met")}
    assert marked == MEASURED - {"B0"}, marked  # B0 has no target
    assert not [row for row in targets if row[3] == "not measured"]
    for row in targets:
        assert re.match(r"^-?[\d.,]+", row[2]), row
    for title in ("Machine", "Settings", "Notes"):
        assert table(found[title]) or found[title], title
    block = readme_block(out.read_text())
    assert found["Targets"] in block and found["Figures"] in block
