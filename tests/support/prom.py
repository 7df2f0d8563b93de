"""Read a Prometheus text exposition: samples by name and labels."""

from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by (sample name, label set)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(url: str, timeout: float = 10.0) -> Samples:
    """GET `url` (a /metrics endpoint), which must answer 200, and parse it."""
    response = httpx.get(url, timeout=timeout)
    assert response.status_code == 200, response.text[:500]
    return parse(response.text)


def value(samples: Samples, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """One sample's value, None if absent."""
    return samples.get((name, frozenset((labels or {}).items())))


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """The samples of `name` keyed by one label's value."""
    return {dict(ls)[label]: v for (n, ls), v in samples.items() if n == name and label in dict(ls)}
