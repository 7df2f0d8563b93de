"""T1: an external Redis over TLS with an ACL user, reached by the URL the chart renders.

A real redis-server 7.0 (Debian's, the chart's Redis, built with TLS) listens on TLS
only, with the `default` user off and one ACL user. The worker and the API get the
broker URL exactly as `helm template` renders it for `externalRedis.tls`, with the two
substitutions the cluster makes: the kubelet expands `$(REDIS_PASSWORD)`, and the CA
Secret is mounted where the URL points. Negative controls show each guard is real:
another CA, a plain connection and the `default` user are all refused.
"""

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from celery_harder import metric_names as mn
from celery_harder_dev.cluster.pki import SERVER, CertificateAuthority
from celery_harder_dev.local_processes import (
    RedisTls,
    free_port,
    start_process,
    stop_process,
    tls_redis_command,
)
from celery_harder_dev.polling import wait_until
from tests.chart.chartlib import pod_spec, render_sets
from tests.chart.policylib import BROKER_URL
from tests.support.polling import poll_json
from tests.support.prom import parse, value
from tests.support.stack import READY_TIMEOUT, StackEnv, running_api, running_worker

CA_MOUNT = "/etc/celery-harder/redis-ca"  # where the chart mounts externalRedis.tls.caSecret


@dataclass(frozen=True)
class TlsRedis:
    """A running TLS-only Redis and what a client needs to reach it."""

    port: int
    tls: RedisTls
    workdir: Path


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    workdir = tmp_path_factory.mktemp("redis-tls")
    ca = CertificateAuthority.create("celery-harder test Redis CA")
    cert = ca.issue(
        workdir, "server", "redis", usages=(SERVER,), dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
    )  # fmt: skip
    tls = RedisTls(
        cert=cert,
        key=workdir / "server.key",
        ca=ca.write(workdir / "ca", "ca"),
        username="celery-app",
        password=secrets.token_urlsafe(16),
    )
    port = free_port()
    proc = start_process(tls_redis_command(port, workdir, tls), log=workdir / "redis.log")
    server = TlsRedis(port, tls, workdir)
    try:
        wait_until(lambda: bool(redis.Redis.from_url(chart_url(server)).ping()),
                   READY_TIMEOUT, "TLS redis-server")  # fmt: skip
        yield server
    finally:
        stop_process(proc)


def chart_url(server: TlsRedis, ca_dir: Path | None = None) -> str:
    """The worker's CELERY_BROKER_URL from `helm template`, as the cluster would fill it in."""
    render = render_sets(
        "helm4",
        (
            "redis.enabled=false",
            "externalRedis.host=127.0.0.1",
            f"externalRedis.port={server.port}",
            f"externalRedis.username={server.tls.username}",
            "externalRedis.existingSecret=shared-redis",
            "externalRedis.tls.enabled=true",
            "externalRedis.tls.caSecret=shared-redis-ca",
            f"externalRedis.tls.caSecretKey={server.tls.ca.name}",
        ),
    )
    worker = render.get("Deployment", "celery-harder-worker")
    env = {e["name"]: e.get("value") for e in pod_spec(worker)["containers"][0]["env"]}
    url: str = env["CELERY_BROKER_URL"]
    assert url.startswith(f"rediss://{server.tls.username}:$(REDIS_PASSWORD)@"), url
    return url.replace("$(REDIS_PASSWORD)", server.tls.password).replace(
        CA_MOUNT, str(ca_dir or server.tls.ca.parent)
    )


def test_worker_and_api_run_a_task_over_tls_as_an_acl_user(
    tls_redis: TlsRedis, tmp_path: Path
) -> None:
    stack = StackEnv(broker_url=chart_url(tls_redis), workdir=tmp_path)
    # The worker is ready only after its heartbeat's PING answered: over TLS, as the user.
    with (
        running_worker(stack, "tls", concurrency=1),
        running_api(stack) as api,
        api.client() as http,
    ):
        assert http.get("/readyz").status_code == 200
        # The queue gauges read Redis over the same TLS connection settings, as the user.
        samples = parse(http.get("/metrics").text)
        assert value(samples, mn.REDIS_UP.series) == 1
        assert value(samples, mn.QUEUE_WAITING.series, {"queue": "celery"}) == 0
        response = http.post("/add", json={"x": 2, "y": 3})
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        done = poll_json(http, f"/result/{task_id}", lambda b: b["state"] == "SUCCESS", 60)
    assert done["result"] == 5
    clients = redis.Redis.from_url(chart_url(tls_redis)).client_list()
    assert clients and {c["user"] for c in clients} == {tls_redis.tls.username}


def test_the_certificate_the_user_and_the_scheme_are_all_checked(
    tls_redis: TlsRedis, tmp_path: Path
) -> None:
    url = chart_url(tls_redis)
    assert BROKER_URL.match(url.replace(tls_redis.tls.password, "$(REDIS_PASSWORD)"))
    # A CA that did not sign the server's certificate: the handshake fails.
    other = CertificateAuthority.create("some other CA").write(
        tmp_path / "other", tls_redis.tls.ca.stem
    )
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis.Redis.from_url(chart_url(tls_redis, ca_dir=other.parent)).ping()
    # Plain Redis protocol to the TLS port: no answer a client could take for Redis.
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=tls_redis.port, socket_timeout=2).ping()
    # The `default` user is off: only the ACL user gets in.
    as_default = url.replace(f"//{tls_redis.tls.username}:", "//:")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(as_default).ping()
    # The API with the wrong CA says so instead of serving: 503 from /readyz.
    stack = StackEnv(broker_url=chart_url(tls_redis, ca_dir=other.parent), workdir=tmp_path)
    with running_api(stack) as api, api.client() as http:
        assert http.get("/readyz").status_code == 503
        assert http.post("/add", json={"x": 2, "y": 3}).status_code == 503
