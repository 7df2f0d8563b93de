"""Pure document statistics: analyse, split, merge, and safe report paths."""

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MAX_TOP_TERMS = 100
# A report name is one plain path segment: no separators, no leading dot, no "..".
REPORT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_WORD = re.compile(r"\w+", re.UNICODE)


class UnsafeReportPath(ValueError):
    """A report name or path that would leave the data directory."""


def analyse_text(text: str) -> dict[str, Any]:
    """Partial statistics of a text: lines, words, characters and every term's count."""
    words = [w.lower() for w in _WORD.findall(text)]
    return {
        "lines": len(text.splitlines()),
        "words": len(words),
        "characters": len(text),
        "terms": dict(Counter(words)),
    }


def split_text(text: str, lines_per_chunk: int) -> list[str]:
    """Whole-line chunks whose concatenation is the text, so no word is cut in two."""
    if lines_per_chunk < 1:
        raise ValueError("lines_per_chunk must be at least 1")
    lines = text.splitlines(keepends=True)
    return ["".join(lines[i : i + lines_per_chunk]) for i in range(0, len(lines), lines_per_chunk)]


def merge_stats(partials: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum partial statistics; the result has the same shape as `analyse_text`'s."""
    terms: Counter[str] = Counter()
    totals = {"lines": 0, "words": 0, "characters": 0}
    for part in partials:
        for key in totals:
            totals[key] += int(part.get(key, 0))
        terms.update({str(k): int(v) for k, v in dict(part.get("terms", {})).items()})
    return {**totals, "terms": dict(terms)}


def summarise(stats: Mapping[str, Any], top: int) -> dict[str, Any]:
    """Statistics with only the `top` most frequent terms, ties broken alphabetically."""
    ranked = sorted(dict(stats.get("terms", {})).items(), key=lambda kv: (-int(kv[1]), kv[0]))
    return {
        "lines": stats.get("lines", 0),
        "words": stats.get("words", 0),
        "characters": stats.get("characters", 0),
        "top_terms": [[term, count] for term, count in ranked[:top]],
    }


def report_path(data_dir: Path, task_id: str, name: str | None = None) -> Path:
    """Where a report goes: `output_<id[:8]>[-name].txt` inside `data_dir`, never outside."""
    if name is not None and not re.fullmatch(REPORT_NAME_PATTERN, name):
        raise UnsafeReportPath(f"report name {name!r} is not a plain file name")
    stem = re.sub(r"[^A-Za-z0-9_-]", "", task_id[:8]) or "unknown"
    filename = f"output_{stem}" + (f"-{name}" if name else "") + ".txt"
    root = data_dir.resolve()
    path = (root / filename).resolve()
    if path.parent != root:
        raise UnsafeReportPath(f"{path} is outside {root}")
    return path


def render_report(stats: Mapping[str, Any]) -> str:
    """A plain-text report of summarised statistics."""
    lines = [
        f"lines: {stats.get('lines', 0)}",
        f"words: {stats.get('words', 0)}",
        f"characters: {stats.get('characters', 0)}",
        "top terms:",
    ]
    lines += [f"  {term}: {count}" for term, count in stats.get("top_terms", [])]
    return "\n".join(lines) + "\n"
