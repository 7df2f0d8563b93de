"""kubectl against one kubeconfig: run, parse JSON, apply, wait."""

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery_harder_dev.polling import wait_until


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message holds its arguments and output."""

    def __init__(self, args: Sequence[str], proc: "subprocess.CompletedProcess[str]") -> None:
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        super().__init__(
            f"kubectl {' '.join(args)} exited {proc.returncode}\n"
            f"stderr: {proc.stderr.strip()}\nstdout: {proc.stdout.strip()}"
        )


def crds_established(found: Mapping[str, Any]) -> bool:
    """Whether every CRD in `kubectl get -o json`'s answer (one object or a List) has its
    Established condition True; a CRD whose `status.conditions` is still null has not."""
    items = found.get("items", [found]) if found.get("kind") == "List" else [found]
    return all(
        any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in (item.get("status") or {}).get("conditions") or []
        )
        for item in items
    )


@dataclass(frozen=True)
class Kubectl:
    """A kubectl binary bound to one kubeconfig."""

    binary: Path
    kubeconfig: Path

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for subprocesses (kubectl, helm, an operator) aimed at this cluster."""
        env = dict(os.environ if base is None else base)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.pop("KUBERNETES_SERVICE_PORT", None)
        return env

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> "subprocess.CompletedProcess[str]":
        """Run kubectl; raises KubectlError on a non-zero exit when `check`."""
        proc = subprocess.run(
            self.argv(*args),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            check=False,
        )
        if check and proc.returncode != 0:
            raise KubectlError([str(a) for a in args], proc)
        return proc

    def argv(self, *args: str) -> list[str]:
        """The command line of one kubectl call (for a caller that reads it as it runs)."""
        return [str(self.binary), "--kubeconfig", str(self.kubeconfig), *map(str, args)]

    def json(self, *args: str, **kwargs: Any) -> Any:
        """kubectl ... -o json, parsed."""
        return json.loads(self(*args, "-o", "json", **kwargs).stdout)

    def wait_established(self, *target: str, timeout: float = 60) -> None:
        """Poll until the CRDs `target` names (`crd/NAME`, or `-f PATH`) are Established.

        Not `kubectl wait --for=condition=Established`: a CRD just created has
        `status.conditions: null` for a moment, and kubectl wait then exits with
        ".status.conditions accessor error" instead of waiting.
        """
        what = f"{' '.join(target)} Established"
        wait_until(lambda: crds_established(self.json("get", *target)), timeout, what)

    def apply(
        self, manifest: str | Mapping[str, Any] | Sequence[Mapping[str, Any]], *extra: str
    ) -> "subprocess.CompletedProcess[str]":
        """kubectl apply -f - with YAML/JSON text, an object, or a list of objects."""
        if not isinstance(manifest, str):
            items = [manifest] if isinstance(manifest, Mapping) else list(manifest)
            manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        return self("apply", "-f", "-", *extra, input=manifest)
