"""The API at saturation with valid and invalid requests: status codes, RSS, CPU.

A real uvicorn over a real Redis, no worker: accepted tasks wait in the queue, so
the API's own work is what is measured. The load comes from `hey` (Debian's
package; `make load-tools` installs it), one process per kind of request, so every
answer is known to belong to a valid or an invalid request. The API runs as the
chart runs it, with auth on: every request carries the test stack's full-scope key
in `X-API-Key`, so key checking is part of what is measured.
"""

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from celery_harder_dev.chaos.soak_counts import Probe, SoakCounts, SoakResult, parse_hey
from celery_harder_dev.stack import ApiServer, StackEnv, running_api, running_redis

PER_PROBE = 4  # hey connections per kind of request: 40 in all
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def probes(issued_id: str) -> list[Probe]:
    """The request mix: five the API must accept, five it must refuse with a 4xx."""
    group = {"group": [{"task": "add", "args": [1, 1]}, {"task": "add", "args": [2, 2]}]}
    return [
        Probe("add", "POST", "/add", True, json={"x": 2, "y": 3}),
        Probe("result", "GET", f"/result/{issued_id}", True),
        Probe("catalog", "GET", "/tasks", True),
        Probe("workflow", "POST", "/workflows", True, json={"workflow": group}),
        Probe("healthz", "GET", "/healthz", True),
        Probe("add-string", "POST", "/add", False, json={"x": "two", "y": 3}),
        Probe("add-malformed", "POST", "/add", False, content=b'{"x": 2,'),
        Probe("result-unknown", "GET", f"/result/{uuid.uuid4()}", False),
        Probe("task-unknown", "POST", "/tasks", False, json={"task": "no-such-task"}),
        Probe("workflow-empty", "POST", "/workflows", False, json={"workflow": {"chain": []}}),
    ]


def find_hey() -> str:
    """The hey binary, or FileNotFoundError saying how to get it."""
    found = shutil.which("hey")
    if not found:
        raise FileNotFoundError("no hey on PATH: run `make load-tools` (Debian package hey)")
    return found


def hey_command(
    hey: str, url: str, probe: Probe, seconds: float, connections: int, api_key: str | None
) -> list[str]:
    """A hey command line sending `probe` over `connections` for `seconds`."""
    cmd = [hey, "-z", f"{seconds}s", "-c", str(connections), "-m", probe.method, "-t", "30"]
    if api_key:
        cmd += ["-H", f"X-API-Key: {api_key}"]
    body = probe.content
    if body is None and probe.json is not None:
        body = json.dumps(probe.json).encode()
    if body is not None:
        cmd += ["-T", "application/json", "-d", body.decode()]
    return [*cmd, url + probe.path]


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, from /proc."""
    # utime and stime are fields 14 and 15; split after the command name, which may hold spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def hammer(
    api: ApiServer, mix: list[Probe], seconds: float, per_probe: int, api_key: str | None
) -> SoakCounts:
    """One hey process per probe, all at once, for `seconds`; their answers counted."""
    hey = find_hey()
    running = [
        (probe, subprocess.Popen(
            hey_command(hey, api.url, probe, seconds, per_probe, api_key),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
        for probe in mix
    ]  # fmt: skip
    counts = SoakCounts()
    for probe, proc in running:
        out, err = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"hey for {probe.name} exited {proc.returncode}: {err[-2000:]}")
        statuses, errors = parse_hey(out)
        for status, n in statuses.items():
            counts.record(probe, status, n)
        for message, n in errors.items():
            counts.errors[f"{probe.name}: {message}"] += n
    return counts


def soak_api(
    api: ApiServer,
    seconds: float,
    warmup: float,
    per_probe: int = PER_PROBE,
    api_key: str | None = None,
) -> SoakResult:
    """Warm up, read RSS, drive the API for `seconds`, read RSS and CPU again."""
    headers = {"X-API-Key": api_key} if api_key else {}
    with httpx.Client(base_url=api.url, headers=headers, timeout=10) as http:
        response = http.post("/add", json={"x": 1, "y": 1})
        response.raise_for_status()
        issued = response.json()["task_id"]
    mix = probes(issued)
    counts = hammer(api, mix, warmup, per_probe, api_key)  # warm-up: counted, not measured
    pid = api.process.pid
    rss_warm, cpu_start, started = rss_kib(pid), cpu_seconds(pid), time.monotonic()
    measured = hammer(api, mix, seconds, per_probe, api_key)
    elapsed = time.monotonic() - started
    counts.merge(measured)
    return SoakResult(
        counts=counts,
        seconds=elapsed,
        rate=measured.requests / elapsed,
        concurrency=per_probe * len(mix),
        rss_warm_kib=rss_warm,
        rss_end_kib=rss_kib(pid),
        api_cpu_cores=(cpu_seconds(pid) - cpu_start) / elapsed,
    )


def run_soak(workdir: Path, seconds: float, warmup: float) -> SoakResult:
    """Start Redis and the API (auth on) in `workdir` and soak the API with its key."""
    with running_redis(workdir / "redis") as server:
        stack = StackEnv(broker_url=server.url(), workdir=workdir)
        with running_api(stack) as api:
            return soak_api(api, seconds, warmup, api_key=api.key)
