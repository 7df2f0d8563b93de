"""`helm lint --strict` with helm 4 and helm 3, on the defaults and on every matrix case."""

import re

import pytest

from . import chartlib
from .chartlib import CASE_FILES, CHART, HELMS, MATRIX, render_case, run_helm


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_lint_strict_defaults(helm):
    proc = run_helm(helm, "lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


@pytest.mark.parametrize("case", MATRIX)
@pytest.mark.parametrize("helm", sorted(HELMS))
def test_lint_strict_matrix(helm, case):
    proc = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(CASE_FILES[case]))
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


def test_missing_helm_fails_naming_the_install_script(monkeypatch, tmp_path):
    monkeypatch.delenv("HELM4", raising=False)
    monkeypatch.setitem(
        chartlib.HELMS, "helm4", ("HELM4", [tmp_path / "helm-v4" / "helm", tmp_path / "helm-v4"])
    )
    with pytest.raises(chartlib.ToolMissing, match=r"scripts/install-k8s-tools\.sh"):
        chartlib.helm_binary.__wrapped__("helm4")
    monkeypatch.setenv("HELM4", str(tmp_path / "nope"))
    with pytest.raises(chartlib.ToolMissing, match=r"\$HELM4"):
        chartlib.helm_binary.__wrapped__("helm4")


@pytest.mark.parametrize("case", MATRIX)
@pytest.mark.parametrize("helm", sorted(HELMS))
def test_render_has_no_whitespace_only_lines(helm, case):
    text = render_case(helm, case).text
    assert not re.search(r"^[ \t]+$", text, re.M), "a template leaves an indented blank line"
