"""ttlSecondsAfterFinished: a daemon per finished resource that has one, asleep until then.

The sync timer stops when a run ends (it follows running workflows only). A finished
resource with a TTL gets this daemon instead: it computes when the TTL runs out,
sleeps until then without waking, and deletes the resource. 10,000 resources waiting
out a day's TTL cost 10,000 sleeping coroutines and no CPU. A restarted operator
spawns the daemon again for every resource that still has a TTL to serve, and one
whose TTL passed while the operator was down is deleted at once.
"""

import asyncio
from datetime import UTC, datetime
from typing import Any

import kopf

from celery_harder_operator import status as st
from celery_harder_operator.kube import delete_taskworkflow
from celery_harder_operator.resource import GROUP, PLURAL, VERSION


def wants_ttl(spec: kopf.Spec, status: kopf.Status, **_: Any) -> bool:
    """kopf's filter: a finished resource with a TTL."""
    return st.needs_ttl(status, spec.get("ttlSecondsAfterFinished"))


@kopf.daemon(GROUP, VERSION, PLURAL, when=wants_ttl, cancellation_timeout=5.0)
async def expire(
    spec: kopf.Spec,
    status: kopf.Status,
    body: kopf.Body,
    name: str,
    namespace: str | None,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """Delete the resource when its TTL runs out; return at once if stopped first."""
    ttl = spec.get("ttlSecondsAfterFinished")
    remaining = st.ttl_remaining(status, ttl, datetime.now(UTC))
    if remaining > 0:
        await stopped.wait(remaining)
    if stopped:
        return  # deleted by someone else, or the operator is exiting
    kopf.event(body, type="Normal", reason="TTLExpired", message="deleting")
    await asyncio.to_thread(delete_taskworkflow, namespace or "default", name)
