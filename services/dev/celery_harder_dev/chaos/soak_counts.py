"""Pure counting of an API soak: which requests got which answers, and how RSS moved."""

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

RSS_TOLERANCE = 0.10  # RSS at the end may exceed RSS after warm-up by at most this fraction


@dataclass(frozen=True)
class Probe:
    """One kind of request the soak sends, and whether the API must accept it."""

    name: str
    method: str
    path: str
    valid: bool  # valid: a 2xx is expected; invalid: a 4xx
    json: Any = None
    content: bytes | None = None  # a raw body, for what is not JSON at all

    def expected(self, status: int) -> bool:
        """Whether `status` is the right class of answer for this probe."""
        return 200 <= status < 300 if self.valid else 400 <= status < 500


@dataclass
class SoakCounts:
    """Answers by status code, answers of the wrong class by probe, transport errors."""

    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def record(self, probe: Probe, status: int, n: int = 1) -> None:
        """Count `n` answers with `status` to `probe`."""
        self.statuses[status] += n
        if not probe.expected(status):
            self.unexpected[f"{probe.name} -> {status}"] += n

    def merge(self, other: "SoakCounts") -> None:
        """Add another run's counts to these."""
        self.statuses.update(other.statuses)
        self.unexpected.update(other.unexpected)
        self.errors.update(other.errors)

    @property
    def requests(self) -> int:
        """Requests answered with any status."""
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        """Answers with a 5xx status."""
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def by_class(self) -> dict[str, int]:
        """Answers by status class, e.g. {"2xx": 900, "4xx": 700}."""
        classes: Counter[str] = Counter()
        for status, n in self.statuses.items():
            classes[f"{status // 100}xx"] += n
        return dict(sorted(classes.items()))


# hey's summary: "  [202]\t1375 responses" under "Status code distribution:", and
# "  [3]\tPost ...: connection refused" under "Error distribution:".
HEY_LINE = re.compile(r"^\s*\[(\d+)\]\s+(.*)$")


def parse_hey(output: str) -> tuple[dict[int, int], dict[str, int]]:
    """Status code counts and transport error counts from hey's summary."""
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    section = ""
    for line in output.splitlines():
        if line.strip().endswith("distribution:"):
            section = line.strip()
            continue
        match = HEY_LINE.match(line)
        if not match:
            continue
        number, rest = int(match.group(1)), match.group(2).strip()
        if section == "Status code distribution:":
            statuses[number] = statuses.get(number, 0) + int(rest.split()[0])
        elif section == "Error distribution:":
            errors[rest] = errors.get(rest, 0) + number
    return statuses, errors


def rss_growth(warm_kib: int, end_kib: int) -> float:
    """RSS change from after warm-up to the end, as a fraction of the warm value."""
    if warm_kib <= 0:
        raise ValueError("RSS after warm-up must be positive")
    return (end_kib - warm_kib) / warm_kib


@dataclass(frozen=True)
class SoakResult:
    """What a soak measured: the counts (warm-up included), its length, rate, RSS, CPU."""

    counts: SoakCounts
    seconds: float  # the measured part, after warm-up
    rate: float  # requests per second answered in the measured part
    concurrency: int
    rss_warm_kib: int
    rss_end_kib: int
    api_cpu_cores: float  # CPU seconds of the API process per wall second: ~1 is saturated

    @property
    def growth(self) -> float:
        """RSS growth over the measured part."""
        return rss_growth(self.rss_warm_kib, self.rss_end_kib)

    @property
    def held(self) -> bool:
        """No 5xx, every answer of the expected class, no transport error, RSS within 10%."""
        return (
            self.counts.server_errors == 0
            and not self.counts.unexpected
            and not self.counts.errors
            and self.growth <= RSS_TOLERANCE
        )

    def lines(self) -> list[str]:
        """The soak's report, one fact per line (Markdown bullets)."""
        c = self.counts
        return [
            f"- {c.requests} requests, warm-up included; {self.rate:.0f} req/s over the "
            f"{self.seconds:.0f} s after warm-up, {self.concurrency} connections; "
            f"API process CPU {self.api_cpu_cores:.2f} cores",
            f"- by class: {', '.join(f'{k} {v}' for k, v in c.by_class().items())}",
            f"- 5xx: {c.server_errors}; wrong class of answer: {sum(c.unexpected.values())}"
            + (f" ({dict(c.unexpected)})" if c.unexpected else "")
            + f"; transport errors: {sum(c.errors.values())}"
            + (f" ({dict(c.errors)})" if c.errors else ""),
            f"- RSS after warm-up {self.rss_warm_kib / 1024:.1f} MiB, at the end "
            f"{self.rss_end_kib / 1024:.1f} MiB ({self.growth:+.1%}; the bound is "
            f"+{RSS_TOLERANCE:.0%})",
        ]
