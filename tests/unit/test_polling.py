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


def test_the_value_that_held_is_returned() -> None:
    answers = iter([None, {}, {"phase": "Succeeded"}])
    assert wait_until(lambda: next(answers), 5, "the phase", interval=0) == {"phase": "Succeeded"}


def test_an_error_outside_retry_on_ends_the_wait_at_once() -> None:
    def check() -> bool:
        raise TypeError("a broken probe")

    with pytest.raises(TypeError, match="a broken probe"):
        wait_until(check, 60, "the service", retry_on=(OSError,))


def test_a_timeout_names_the_last_error_the_check_raised() -> None:
    def check() -> bool:
        raise ConnectionRefusedError("port 6379")

    with pytest.raises(TimeoutError, match=r"the service not ready after 0s \(last error: "):
        wait_until(check, 0.05, "the service", interval=0.01, retry_on=(OSError,))


def test_kubectl_waits_without_an_import_cycle() -> None:
    # local_processes imports the cluster package, whose node code imports kubectl: had
    # kubectl taken wait_until from local_processes, importing local_processes first
    # would find it half-initialised (ImportError). A fresh interpreter, so order counts.
    code = "import celery_harder_dev.local_processes, celery_harder_dev.cluster.kubectl"
    subprocess.run([sys.executable, "-c", code], check=True)
