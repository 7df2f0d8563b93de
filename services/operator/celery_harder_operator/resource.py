"""The TaskWorkflow resource's coordinates and naming (the CRD file is their source)."""

GROUP = "celery-harder.io"
VERSION = "v1alpha1"
PLURAL = "taskworkflows"
KIND = "TaskWorkflow"
# kopf's own bookkeeping (progress, diff base, finalizer) lives under the project's prefix.
ANNOTATION_PREFIX = GROUP
FINALIZER = f"{GROUP}/cancel-workflow"
SHUTDOWN_STOP = "Stop"
SHUTDOWN_TERMINATE = "Terminate"


def workflow_id(uid: str) -> str:
    """The engine's workflow id for a resource: its uid, so a restart finds the same run."""
    return f"taskworkflow-{uid}"
