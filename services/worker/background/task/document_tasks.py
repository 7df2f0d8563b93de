"""A small document pipeline: split, analyse, merge, write a report file."""

from typing import Any

from celery import Task

from background.celery import celery_app
from background.task.base import CatalogTask
from celery_harder import catalog, documents
from celery_harder.settings import get_settings


@celery_app.task(bind=True, base=CatalogTask, name=catalog.DOC_SPLIT.name)
def split(self: Task, text: str, lines_per_chunk: int = 200) -> list[str]:
    """Whole-line chunks of a text."""
    return documents.split_text(text, lines_per_chunk)


@celery_app.task(bind=True, base=CatalogTask, name=catalog.DOC_ANALYSE.name)
def analyse(self: Task, text: str) -> dict[str, Any]:
    """Lines, words, characters and term counts of a text (or of one chunk)."""
    return documents.analyse_text(text)


@celery_app.task(bind=True, base=CatalogTask, name=catalog.DOC_MERGE.name)
def merge(self: Task, partials: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the statistics of chunks into those of the whole text."""
    return documents.merge_stats(partials)


@celery_app.task(bind=True, base=CatalogTask, name=catalog.DOC_WRITE_REPORT.name)
def write_report(
    self: Task, stats: dict[str, Any], name: str | None = None, top: int = 10
) -> dict[str, Any]:
    """Write `output_<id[:8]>[-name].txt` in the data directory; return its name and summary."""
    data_dir = get_settings().data_dir
    path = documents.report_path(data_dir, self.request.id, name)
    summary = documents.summarise(stats, top)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(documents.render_report(summary), encoding="utf-8")
    return {"report": path.name, **summary}
