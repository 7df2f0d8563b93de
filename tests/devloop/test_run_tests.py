"""scripts/run-tests.sh, make test's test run: its phases cover every folder of tests/.

A test folder that no phase names would never run under `make test`, so the script
refuses to start; these tests run its `--plan` against this repo's tests/ and against
a tests/ with a folder added.
"""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "run-tests.sh"


def plan(tests_root: Path) -> subprocess.CompletedProcess[str]:
    """`run-tests.sh --plan` for the tests folder TESTS_ROOT."""
    return subprocess.run(
        ["bash", str(SCRIPT), "--plan"],
        env={"PATH": "/usr/bin:/bin", "TESTS_ROOT": str(tests_root)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def planned_folders(stdout: str) -> list[str]:
    """The folders a `--plan` output lists, in phase order."""
    folders = []
    for line in stdout.splitlines():
        _, rest = line.split(": ", 1)
        folders += rest.split(" (needs:")[0].split()
    return folders


def test_every_folder_with_tests_is_in_exactly_one_phase() -> None:
    run = plan(REPO / "tests")
    assert run.returncode == 0, run.stderr
    folders = planned_folders(run.stdout)
    with_tests = {
        p.parent.relative_to(REPO / "tests").parts[0] for p in (REPO / "tests").rglob("test_*.py")
    }
    assert sorted(folders) == sorted(with_tests)


def test_the_node_phase_comes_last_and_needs_the_node() -> None:
    # T4-local takes the machine (and tears its node down); the tiers before it run quiet
    run = plan(REPO / "tests")
    last = run.stdout.splitlines()[-1]
    assert last.startswith("node: cluster_build cluster "), last
    assert "cluster-images" in last


def test_a_folder_in_no_phase_stops_the_run_by_name(tmp_path: Path) -> None:
    for folder in ("unit", "a_new_tier"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "test_x.py").write_text("")
    run = plan(tmp_path)
    assert run.returncode == 2
    assert f"in no phase of scripts/run-tests.sh: {tmp_path}/a_new_tier" in run.stderr
    assert run.stdout == ""
