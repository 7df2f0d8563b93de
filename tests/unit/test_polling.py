"""T0: the dev package's poll with a deadline, and that it stands below the cluster code."""

import subprocess
import sys

import pytest

from celery_harder_dev.polling import ProcessExited, wait_until


def test_a_check_that_fails_then_holds_is_polled_until_it_holds() -> None:
    answers = iter([ConnectionRefusedError("not up"), False, True])

    def check() -> bool:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    wait_until(check, timeout=5, what="the service", interval=0)
    assert next(answers, "spent") == "spent"  # three probes, none after it held


def test_a_check_that_never_holds_times_out_naming_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match="the service not ready after 0s"):
        wait_until(lambda: False, timeout=0.05, what="the service", interval=0.01)


def test_a_process_that_exited_ends_the_wait_at_once() -> None:
    def check() -> bool:
        raise ProcessExited("worker exited")

    with pytest.raises(ProcessExited, match="worker exited"):
        wait_until(check, timeout=60, what="the worker")


def test_kubectl_waits_without_an_import_cycle() -> None:
    # local_processes imports the cluster package, whose node code imports kubectl: had
    # kubectl taken wait_until from local_processes, importing local_processes first
    # would find it half-initialised (ImportError). A fresh interpreter, so order counts.
    code = "import celery_harder_dev.local_processes, celery_harder_dev.cluster.kubectl"
    subprocess.run([sys.executable, "-c", code], check=True)
