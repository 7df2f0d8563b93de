"""The worker's command line has one source: the worker image's ENTRYPOINT.

The chart's Deployment and `make dev` (celery_harder_dev.local_processes) add only the
flags that differ; none of them spells the fixed part again.
"""

from pathlib import Path

import pytest

from celery_harder_dev import local_processes
from celery_harder_dev.local_processes import WORKER_DOCKERFILE, worker_command, worker_entrypoint

from .chartlib import CHART, HELMS, REPO, pod_spec, render_sets

ENTRYPOINT = worker_entrypoint()
# The fixed part: the app, the sub-command and every flag the image sets.
FIXED = ENTRYPOINT[1:]


def test_the_entrypoint_is_the_seed_app_on_the_prefork_pool():
    assert ENTRYPOINT[:4] == ["celery", "-A", "background.celery.celery_app", "worker"]
    assert "--pool=prefork" in ENTRYPOINT and "--hostname=worker@%h" in ENTRYPOINT


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_the_chart_passes_only_the_flags_that_differ(helm):
    render = render_sets(helm, ("worker.concurrency=3", "worker.extraArgs={--disable-prefetch}"))
    (container,) = pod_spec(render.get("Deployment", "celery-harder-worker"))["containers"]
    assert "command" not in container
    # The pool's name replaces the image's `worker@%h` hostname (the last --hostname wins).
    assert container["args"] == [
        "--concurrency=3",
        "-Q",
        "celery",
        "--hostname=default@%h",
        "--disable-prefetch",
    ]


def test_make_dev_runs_the_entrypoint_with_its_own_flags():
    cmd = worker_command(Path("/venv/bin"), 4, "w1@%h")
    assert cmd == ["/venv/bin/celery", *FIXED, "--concurrency=4", "--hostname=w1@%h"]


@pytest.mark.parametrize(
    "path",
    [
        CHART / "templates" / "worker" / "deployment.yaml",
        Path(local_processes.__file__),
        REPO / "services" / "dev" / "celery_harder_dev" / "dev_stack.py",
        REPO / "tests" / "support" / "stack.py",
    ],
    ids=lambda p: p.name,
)
def test_no_other_file_spells_the_fixed_flags(path):
    text = path.read_text()
    for flag in ("--pool=prefork", "--loglevel=INFO", "--hostname=worker@%h"):
        assert flag not in text, f"{path} spells {flag}, which {WORKER_DOCKERFILE} owns"
