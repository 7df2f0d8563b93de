"""A Helm release of the chart on the local node (T4-local), and the ways tests reach it."""

import base64
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from celery_harder_dev.cluster import LocalCluster
from celery_harder_dev.cluster.kubectl import Kubectl

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "celery-harder"
LOCAL_VALUES = CHART / "ci" / "local-cluster-values.yaml"
API_NODE_PORT = 30800
FLOWER_NODE_PORT = 30555


@dataclass
class Release:
    """One `helm install` of the chart, in a namespace of its own."""

    cluster: LocalCluster
    kubectl: Kubectl
    helm_binary: Path
    name: str = "celery-harder"
    namespace: str = "celery-harder"

    # ------------------------------------------------------------ helm

    def helm(self, *args: str, timeout: float = 600) -> "subprocess.CompletedProcess[str]":
        """Run helm against the node; raises AssertionError with its output on failure."""
        proc = subprocess.run(
            [str(self.helm_binary), *args, "--kubeconfig", str(self.kubectl.kubeconfig)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.kubectl.env(),
        )
        if proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)}: {proc.stderr}\n{proc.stdout}")
        return proc

    def install(self, *values: str, sets: Sequence[str] = ()) -> None:
        """helm upgrade --install with the local-cluster values plus `values` files and `sets`."""
        args = ["upgrade", "--install", self.name, str(CHART), "-n", self.namespace]
        args += ["--create-namespace", "-f", str(LOCAL_VALUES)]
        for path in values:
            args += ["-f", path]
        for item in sets:
            args += ["--set", item]
        self.helm(*args, "--wait", "--timeout", "8m")

    # --------------------------------------------------------- objects

    def component(self, name: str) -> str:
        """The name of a component's objects: <release>-celery-harder-<component>."""
        prefix = self.name if "celery-harder" in self.name else f"{self.name}-celery-harder"
        return f"{prefix}-{name}"

    def get(self, *args: str) -> Any:
        return self.kubectl.json("get", *args, "-n", self.namespace)

    def pods(self, component: str | None = None) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.name}"
        if component:
            selector += f",app.kubernetes.io/component={component}"
        items: list[dict[str, Any]] = self.get("pods", "-l", selector)["items"]
        return items

    def restarts(self) -> dict[str, int]:
        """Container restarts per pod of the release."""
        return {
            p["metadata"]["name"]: sum(
                c.get("restartCount", 0) for c in p["status"].get("containerStatuses", [])
            )
            for p in self.pods()
        }

    def secret(self, name: str, key: str) -> str:
        data = self.get("secret", name)["data"]
        return base64.b64decode(data[key]).decode()

    def replicas(self, component: str) -> int:
        """The Deployment's current `.status.replicas` (0 when scaled to zero)."""
        status = self.get("deployment", self.component(component)).get("status", {})
        return int(status.get("replicas", 0))

    def rollout(self, kind_name: str, timeout: int = 300) -> None:
        self.kubectl(
            "rollout", "status", kind_name, "-n", self.namespace, f"--timeout={timeout}s",
            timeout=timeout + 30,
        )  # fmt: skip

    # ----------------------------------------------------------- clients

    @property
    def api_url(self) -> str:
        """The API through its NodePort on the node's address (kind maps the same port)."""
        return f"http://{self.cluster.network.node_ip}:{API_NODE_PORT}"

    @property
    def flower_url(self) -> str:
        return f"http://{self.cluster.network.node_ip}:{FLOWER_NODE_PORT}"

    @property
    def api_key(self) -> str:
        """The generated API key (admin: read, submit), from the release's `api-keys` Secret."""
        return self.secret(self.component("api-keys"), "api-key")

    def api(self, timeout: float = 10.0, key: str | None = None) -> httpx.Client:
        """A client of the API's NodePort that sends `key`, by default the release's own."""
        headers = {"X-API-Key": key if key is not None else self.api_key}
        return httpx.Client(base_url=self.api_url, timeout=timeout, headers=headers)

    def redis(self) -> redis.Redis:
        """A client of the chart's Redis at its Service address, with the release's password."""
        service = self.get("service", self.component("redis"))
        password = self.secret(self.component("redis"), "redis-password")
        return redis.Redis(
            host=service["spec"]["clusterIP"],
            port=6379,
            password=password,
            socket_timeout=5,
            socket_connect_timeout=3,
        )

    def exec(self, pod: str, *command: str, timeout: float = 60) -> str:
        """Run a command in a pod; its stdout."""
        return self.kubectl(
            "exec", "-n", self.namespace, pod, "--", *command, timeout=timeout
        ).stdout

    def describe(self) -> str:
        """Pods, events and recent logs, for a failure message."""
        parts = [self.kubectl("get", "pods", "-n", self.namespace, "-o", "wide").stdout]
        events = self.kubectl(
            "get", "events", "-n", self.namespace, "--sort-by=.lastTimestamp", check=False
        ).stdout
        parts.append("\n".join(events.splitlines()[-30:]))
        return "\n".join(parts)
