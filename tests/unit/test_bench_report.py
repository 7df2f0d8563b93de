"""T0: the benchmark report: ratios per repetition, marks, the README block from latest.md."""

from pathlib import Path

from bench.http_load import parse_hey, percentile
from bench.report import BEGIN, END, LATEST, README, merge, readme_block, replace_block, rerun_note
from bench.stats import MET, NOT_MET, Figure, check, ratios


def test_readme_performance_block_is_what_the_writer_makes_of_latest_md() -> None:
    readme = README.read_text()
    block = readme_block(LATEST.read_text())
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1
    assert block in readme
    assert replace_block(readme, block) == readme


def test_latest_md_marks_every_target_with_the_exact_words() -> None:
    targets = LATEST.read_text().split("## Targets", 1)[1].split("## Figures", 1)[0]
    rows = [line for line in targets.splitlines() if line.startswith("| B")]
    assert rows
    for row in rows:
        mark = row.split(" | ")[3]
        assert mark in ("met", "not met", "not measured"), row


def test_ratios_pair_repetitions_and_marks_follow_the_median() -> None:
    r = ratios([2, 4, 9], [1, 2, 3])
    assert r.samples == (2.0, 2.0, 3.0) and r.median == 2.0 and (r.low, r.high) == (2.0, 3.0)
    assert check("B9", "x ≥ 2", r, "×", lambda x: x >= 2).mark == MET
    assert check("B9", "x ≥ 3", r, "×", lambda x: x >= 3).mark == NOT_MET
    assert Figure.of([5, 1, 3]).median == 3


def test_replace_block_swaps_only_the_marked_text(tmp_path: Path) -> None:
    text = f"before\n{BEGIN}\nold\n{END}\nafter\n"
    assert replace_block(text, f"{BEGIN}\nnew\n{END}") == f"before\n{BEGIN}\nnew\n{END}\nafter\n"


def test_hey_csv_gives_throughput_and_percentiles() -> None:
    header = (
        "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset"
    )
    rows = [f"{0.001 * (i + 1):.4f},0,0,0,0,0,202,{0.01 * i:.4f}" for i in range(100)]
    run = parse_hey("\n".join([header, *rows]), 202)
    assert round(run.p50_ms, 3) == 50.0 and round(run.p99_ms, 3) == 99.0
    assert round(run.rps) == round(100 / (0.99 + 0.1))
    assert percentile([1.0], 99) == 1.0


def test_merge_replaces_the_rerun_rows_and_keeps_the_others() -> None:
    def doc(summary: str, targets: list[str], figures: list[str], notes: list[str]) -> str:
        head = "| # | target | got | mark | note |\n| --- | --- | --- | --- | --- |"
        fhead = "| # | measure | median |\n| --- | --- | --- |"
        return "\n".join([
            "# Benchmark results", "", summary, "", "## Targets", "", head, *targets, "",
            "## Figures", "", fhead, *figures, "", "## Machine", "", "| a | b |", "",
            "## Settings", "", "| s | v |", "", "## Notes", "", *notes, "",
        ])  # fmt: skip

    old = doc(
        "old run.",
        ["| B1 | t1 | 1 | met |  |", "| B3 | every target of B3 | — | not measured | failed |"],
        ["| B1 | m1 | 1 |", "| B4 | m4 | 4 |"],
        ["- B1: one.", "- B3 failed in this run: see the run's output."],
    )
    new = doc("new run.", ["| B3 | t3 | 3 | not met |  |"], ["| B3 | m3 | 3 |"], ["- B3: three."])
    merged = merge(old, new, ["B3"], ["B1", "B3", "B4"], "B3 again.")
    assert merged.splitlines()[2] == "old run. B3 again."
    assert "every target of B3" not in merged and "| B3 | t3 | 3 | not met |  |" in merged
    assert (
        merged.index("| B1 | m1 | 1 |")
        < merged.index("| B3 | m3 | 3 |")
        < merged.index("| B4 | m4 | 4 |")
    )
    assert "- B1: one." in merged and "- B3: three." in merged and "B3 failed" not in merged


def test_a_second_rerun_of_the_same_groups_replaces_the_first_ones_note() -> None:
    first = rerun_note(["B2"], "2026-12-03 15:10", 1401, "1.38 1.79 2.77")
    other = rerun_note(["B3"], "2026-12-03 16:00", 300, "0.5 0.5 0.5")
    second = rerun_note(["B2"], "2026-12-04 05:12", 1190, "0.28 0.47 0.74")
    summary = f"full run. {first} {other}"
    doc = "\n".join(["# Benchmark results", "", summary, "", "## Targets", "", "| # |",
                     "| --- |", "", "## Figures", "", "| # |", "| --- |", "", "## Machine", "",
                     "", "## Settings", "", "", "## Notes", ""])  # fmt: skip
    merged = merge(doc, doc, ["B2"], ["B2", "B3"], second)
    assert merged.splitlines()[2] == f"full run. {other} {second}"
