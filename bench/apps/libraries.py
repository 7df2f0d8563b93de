"""B7's floor: the hello-world with every library module the API loads, and none of ours.

The API must import redis-py, Celery, kombu, pydantic-settings and the Prometheus
client; their share of its RSS is no code of this project's to trim. The factory asks a
child Python which modules a freshly built API holds (`loaded_modules`), imports the
ones outside this project's packages, in the order the API loaded them, and serves the
hello-world. What the API adds above this app is its own code and state.
"""

import importlib
import json
import subprocess
import sys

from fastapi import FastAPI

from bench.apps.hello import create_app as create_hello

OWN_PACKAGES = ("celery_harder", "celery_harder_api", "bench")

# Run in a child so that this process never imports the project's code.
LIST_MODULES = """
import json, sys
from celery_harder_api.app import create_app
create_app()
print(json.dumps(list(sys.modules)))
"""


def loaded_modules() -> list[str]:
    """The modules a freshly built API has loaded, in the order it loaded them."""
    out = subprocess.run(
        [sys.executable, "-c", LIST_MODULES], capture_output=True, text=True, check=True
    )
    names: list[str] = json.loads(out.stdout)
    return names


def is_library(name: str) -> bool:
    """A module of a third-party or standard library, not of this project."""
    top = name.split(".", maxsplit=1)[0]
    return top not in OWN_PACKAGES and top != "__main__"


def import_libraries(names: list[str]) -> list[str]:
    """Import the library modules among `names`; the ones that cannot load on their own.

    A few modules only load as a side effect of their package (platform shims, modules
    that a package puts into sys.modules under another name); they are skipped.
    """
    failed = []
    for name in names:
        if not is_library(name) or name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module that does not load alone is no floor
            failed.append(name)
    return failed


def create_app() -> FastAPI:
    app = create_hello()
    app.state.not_loaded = import_libraries(loaded_modules())
    return app
