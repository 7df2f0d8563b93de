"""T0: the README's metrics table is the registry of names (tests/unit/metrics_doc.py)."""

from celery_harder import metric_names as mn
from tests.unit.metrics_doc import README, block, current


def test_the_readme_lists_exactly_the_registry() -> None:
    text = README.read_text()
    assert current(text) == block(), "run: .venv/bin/python tests/unit/metrics_doc.py --write"
    for metric in mn.OWN_METRICS:
        assert f"| `{metric.series}` |" in text


def test_names_are_unique_and_counters_carry_no_total_suffix() -> None:
    names = [m.name for m in mn.OWN_METRICS]
    assert len(set(names)) == len(names)
    assert all(not n.endswith("_total") for n in names)
    assert all(n.startswith("celery_harder_") for n in names)
