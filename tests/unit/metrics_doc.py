"""The README's metrics table, generated from celery_harder.metric_names.

.venv/bin/python tests/unit/metrics_doc.py --write   # rewrite the README block
"""

import sys
from pathlib import Path

from celery_harder import metric_names as mn

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- metrics:begin -->", "<!-- metrics:end -->"
OPERATOR_ONLY = {m.name for m in mn.OWN_METRICS if m.name.startswith("celery_harder_operator_")}
BOTH = {mn.WORKFLOWS_STARTED.name, mn.WORKFLOWS_FINISHED.name, mn.WORKFLOW_DURATION.name}


def served_by(metric: mn.Metric) -> str:
    if metric.name in BOTH:
        return "API, operator"
    return "operator" if metric.name in OPERATOR_ONLY else "API"


def table() -> str:
    rows = [
        "| series | type | labels | served by | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in (*mn.OWN_METRICS, mn.HTTP_REQUESTS, mn.HTTP_REQUEST_DURATION):
        labels = ", ".join(f"`{label}`" for label in m.labels) or "none"
        rows.append(f"| `{m.series}` | {m.kind} | {labels} | {served_by(m)} | {m.help} |")
    return "\n".join(rows)


def block() -> str:
    return f"{BEGIN}\n{table()}\n{END}"


def current(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def main() -> None:
    text = README.read_text()
    if "--write" in sys.argv:
        README.write_text(text.replace(current(text), block()))
    else:
        print(block())


if __name__ == "__main__":
    main()
