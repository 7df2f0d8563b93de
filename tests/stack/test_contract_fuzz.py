"""T1: schemathesis (every check) against a real uvicorn and redis-server: 0 failures.

CELERY_HARDER_FUZZ_CASES (default 200) sets the budget: that many generated cases in
the fuzzing phase, spread over the operations, plus the examples and the stateful
phase. CELERY_HARDER_FUZZ_PHASES picks the phases (default examples,fuzzing,stateful;
add `coverage` for the deterministic edge cases, about 14,000 more).
"""

import json
import math
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.stack import BIN, KEYS, ApiServer, RedisServer, StackEnv, running_api

CONFIG = Path(__file__).with_name("schemathesis.toml")
FUZZ_DB = 4  # a database of its own: nothing consumes it, the other tests never count it
CASES = int(os.environ.get("CELERY_HARDER_FUZZ_CASES", "200"))
PHASES = os.environ.get("CELERY_HARDER_FUZZ_PHASES", "examples,fuzzing,stateful")


@dataclass
class FuzzRun:
    returncode: int
    generated: int
    output: str


def run_schemathesis(
    schema: str, base_url: str, cases: int, phases: str, workdir: Path, *extra: str
) -> FuzzRun:
    """`schemathesis run` with every check (CONFIG) and the full-scope key; its case count."""
    operations = len(json.loads(httpx.get(f"{base_url}/openapi.json", timeout=10).text)["paths"])
    cmd = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "run",
        schema,
        "--url",
        base_url,
        "--header",
        f"X-API-Key: {KEYS.full}",
        "--max-examples",
        str(max(1, math.ceil(cases / operations))),
        "--phases",
        phases,
        # One worker: concurrent ast.parse in Python 3.11's hypothesis crashes (SystemError).
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--output-truncate",
        "false",
        "--report-dir",
        str(workdir),
        *extra,
    ]
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=workdir
    )
    try:
        output, _ = proc.communicate(timeout=budget_seconds(cases))
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"schemathesis ran past {budget_seconds(cases):.0f} s:\n{output[-20000:]}")
    found = re.search(r"(\d+) generated", output)
    return FuzzRun(proc.returncode, int(found.group(1)) if found else 0, output)


def budget_seconds(cases: int) -> float:
    """How long a run of `cases` may take on a busy 2-core machine (about 5 cases/s seen)."""
    return 300 + cases * 0.5


@pytest.fixture(scope="module")
def fuzz_api(redis_server: RedisServer, stack_dir: Path) -> Iterator[ApiServer]:
    stack = StackEnv(
        broker_url=redis_server.url(FUZZ_DB),
        workdir=stack_dir / "fuzz",
        # SSE streams of workflows that never run (no worker here) end after 2 s.
        extra={"CELERY_HARDER_SSE_MAX_SECONDS": "2"},
    )
    stack.workdir.mkdir(exist_ok=True)
    with running_api(stack) as api:
        yield api


@pytest.mark.timeout(budget_seconds(CASES) + 120)
def test_the_openapi_contract_holds_under_fuzzing(
    fuzz_api: ApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_schemathesis(f"{fuzz_api.url}/openapi.json", fuzz_api.url, CASES, PHASES, tmp_path)
    summary = run.output[run.output.rfind("SUMMARY") :] if "SUMMARY" in run.output else ""
    with capsys.disabled():
        print(
            f"\nschemathesis ({PHASES}, all checks): {run.generated} cases, exit {run.returncode}"
        )
    assert run.returncode == 0, run.output[-20000:]
    assert run.generated >= CASES // 2, f"only {run.generated} cases ran:\n{summary}"


def test_a_schema_that_lies_fails_the_run(fuzz_api: ApiServer, tmp_path: Path) -> None:
    """The same harness, handed a document without POST /add's 422: schemathesis fails."""
    document = httpx.get(f"{fuzz_api.url}/openapi.json", timeout=10).json()
    del document["paths"]["/add"]["post"]["responses"]["422"]
    lying = tmp_path / "openapi.json"
    lying.write_text(json.dumps(document))
    run = run_schemathesis(
        str(lying), fuzz_api.url, 30, "coverage", tmp_path, "--include-path", "/add"
    )
    assert run.returncode == 1, run.output[-5000:]
    assert "Undocumented status code" in run.output
    assert "Received: 422" in run.output


def test_every_check_runs_on_every_operation_but_one_documented_exception() -> None:
    import schemathesis  # noqa: PLC0415
    from schemathesis.checks import CHECKS  # noqa: PLC0415
    from schemathesis.config import SchemathesisConfig  # noqa: PLC0415

    from celery_harder.settings import Settings  # noqa: PLC0415
    from celery_harder_api.app import create_app  # noqa: PLC0415

    config = SchemathesisConfig.from_path(str(CONFIG))
    schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi(), config=config)
    off: dict[str, set[str]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for phase in ("examples", "coverage", "fuzzing", "stateful"):
            checks = schema.config.checks_config_for(operation=operation, phase=phase)
            for check in CHECKS.get_all():
                if not checks.get_by_name(name=check.__name__).enabled:
                    off.setdefault(operation.label, set()).add(check.__name__)
    assert off == {
        "GET /workflows/{workflow_id}": {"use_after_free"},
        "GET /workflows/{workflow_id}/events": {"use_after_free"},
    }
