"""What the numbers were taken on: cores, memory, kernel, load, and every version."""

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path

from celery_harder_dev.local_processes import find_redis_server

PACKAGES = ("celery", "kombu", "redis", "fastapi", "uvicorn", "uvloop", "httptools", "pydantic")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unavailable ({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def memory_total() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "?"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def machine_info() -> dict[str, str]:
    """Cores, memory, kernel, Python and the versions of everything measured."""
    info = {
        "cores": f"{os.cpu_count()} ({cpu_model()})",
        "memory": memory_total(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis-server": _first_line([find_redis_server(), "--version"]),
        "redis-benchmark": _first_line(["redis-benchmark", "--version"])
        if shutil.which("redis-benchmark")
        else "not installed",
        "hey": _first_line(["dpkg-query", "-W", "-f", "${Version}", "hey"])
        if shutil.which("dpkg-query")
        else "?",
    }
    info.update({name: _version(name) for name in PACKAGES})
    return info
