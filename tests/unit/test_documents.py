"""T0: document statistics, chunking, merging and report paths."""

from pathlib import Path

import pytest

from celery_harder.documents import (
    UnsafeReportPath,
    analyse_text,
    merge_stats,
    report_path,
    split_text,
    summarise,
)

TEXT = "Alpha beta\n\ngamma alpha, BETA!\nlast line without newline"


@pytest.mark.parametrize("size", [1, 2, 3, 100])
def test_merged_chunks_equal_the_whole(size: int) -> None:
    chunks = split_text(TEXT, size)
    assert "".join(chunks) == TEXT
    assert merge_stats(analyse_text(c) for c in chunks) == analyse_text(TEXT)


def test_analysis_counts() -> None:
    stats = analyse_text(TEXT)
    assert (stats["lines"], stats["words"], stats["characters"]) == (4, 9, len(TEXT))
    assert summarise(stats, 2)["top_terms"] == [["alpha", 2], ["beta", 2]]


def test_report_path_stays_inside(tmp_path: Path) -> None:
    path = report_path(tmp_path, "abcdef12-3456", "notes")
    assert path == (tmp_path / "output_abcdef12-notes.txt").resolve()
    assert report_path(tmp_path, "abcdef12-3456").name == "output_abcdef12.txt"


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "a/b", ".hidden", "..", "x" * 65, ""])
def test_traversal_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeReportPath):
        report_path(tmp_path, "abcdef12", name)


def test_a_hostile_task_id_cannot_escape(tmp_path: Path) -> None:
    assert report_path(tmp_path, "../../etc").parent == tmp_path.resolve()
