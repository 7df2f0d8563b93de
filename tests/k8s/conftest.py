"""T2 fixtures: a real kube-apiserver + etcd started by the tests (see tests/support/kube.py).

The binaries come from `bash scripts/build-control-plane.sh` (kube-apiserver, etcd) and
`bash scripts/install-k8s-tools.sh` (kubectl); `make test` runs both first. When they are
missing the fixtures fail (never skip) and say which command to run.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.kube import REPO_ROOT

CRDS = REPO_ROOT / "charts" / "celery-harder" / "crds"
CRD_PATH = CRDS / "taskworkflows.celery-harder.io.yaml"
CRD_NAME = "taskworkflows.celery-harder.io"
CRON_CRD_PATH = CRDS / "crontaskworkflows.celery-harder.io.yaml"
CRON_CRD_NAME = "crontaskworkflows.celery-harder.io"


@pytest.fixture(scope="session")
def taskworkflow_crd(kube_api) -> Path:
    """The chart's CRDs, TaskWorkflow and CronTaskWorkflow (the operator serves both)."""
    for path, name in ((CRD_PATH, CRD_NAME), (CRON_CRD_PATH, CRON_CRD_NAME)):
        kube_api.kubectl("apply", "-f", str(path))
        kube_api.wait_for_crd(name)
    return CRD_PATH


@pytest.fixture
def kube_namespace(kube_api) -> str:
    """A fresh namespace per test (namespaces are never deleted: no namespace controller runs)."""
    return kube_api.create_namespace(f"t-{uuid.uuid4().hex[:10]}")
