"""`helm lint --strict` with helm 4 and helm 3, on the defaults and on every matrix case."""
import pytest

from .chartlib import CASE_FILES, CHART, HELMS, MATRIX, run_helm


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_lint_strict_defaults(helm):
    proc = run_helm(helm, "lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


@pytest.mark.parametrize("case", MATRIX)
@pytest.mark.parametrize("helm", sorted(HELMS))
def test_lint_strict_matrix(helm, case):
    proc = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(CASE_FILES[case]))
    assert "0 chart(s) failed" in proc.stdout, proc.stdout
