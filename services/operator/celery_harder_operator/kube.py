"""The one Kubernetes call kopf does not make for us: deleting a resource (TTL)."""

from functools import lru_cache

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from celery_harder_operator.resource import GROUP, PLURAL, VERSION


@lru_cache(maxsize=1)
def custom_objects() -> client.CustomObjectsApi:
    """An API client from the pod's service account, or from KUBECONFIG outside a cluster."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi()


def delete_taskworkflow(namespace: str, name: str) -> None:
    """Delete a TaskWorkflow; already gone is fine."""
    try:
        custom_objects().delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status != 404:
            raise
