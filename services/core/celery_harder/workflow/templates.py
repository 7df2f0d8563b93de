"""Ready-made workflow specs: the seed's chain/group/chord sugar and the document pipeline."""

from collections.abc import Mapping, Sequence
from typing import Any

from celery_harder import catalog
from celery_harder.documents import split_text

Call = Mapping[str, Any]


def task_node(call: Call) -> dict[str, Any]:
    """A spec task node from a `{"task", "args", "kwargs"}` call."""
    return {
        "task": call["task"],
        "args": list(call.get("args", [])),
        "kwargs": dict(call.get("kwargs", {})),
    }


def chain_spec(steps: Sequence[Call]) -> dict[str, Any]:
    return {"chain": [task_node(c) for c in steps]}


def group_spec(tasks: Sequence[Call]) -> dict[str, Any]:
    return {"group": [task_node(c) for c in tasks]}


def chord_spec(header: Sequence[Call], body: Call) -> dict[str, Any]:
    return {"chord": {"header": [task_node(c) for c in header], "body": task_node(body)}}


def document_pipeline_spec(
    text: str, name: str | None = None, lines_per_chunk: int = 200, top: int = 10
) -> dict[str, Any]:
    """split → group(analyse each chunk) → merge → write report, as one workflow.

    The split happens here, when the spec is made, because a canvas's shape is fixed
    before it runs: each chunk becomes one `documents.analyse` node of the chord header.
    """
    chunks = split_text(text, lines_per_chunk) or [""]
    report_kwargs: dict[str, Any] = {"top": top}
    if name is not None:
        report_kwargs["name"] = name
    return {
        "chain": [
            {
                "chord": {
                    "header": [
                        {"task": catalog.DOC_ANALYSE.name, "args": [chunk]} for chunk in chunks
                    ],
                    "body": {"task": catalog.DOC_MERGE.name},
                }
            },
            {"task": catalog.DOC_WRITE_REPORT.name, "kwargs": report_kwargs},
        ]
    }
