"""Where kopf keeps its own state on a TaskWorkflow: nowhere that costs a write of its own.

kopf's defaults add a PATCH of the main object after each create handler, besides the
handler's own /status PATCH, and every PATCH is one more watch event for every
watcher. Two things go into it:

- The diff-base, a copy of the spec that tells a new resource from a changed one. No
  TaskWorkflow handler reacts to a change of spec (spec.workflow is immutable, and
  spec.shutdown is read by an event handler and by the sync timer), so the one fact
  kopf needs is "the create handler has run". status.phase already says it: that
  handler writes a phase on every path that ends its work (the run's phase, or Failed
  for a spec it rejects). A handler that raised wrote none, and kopf retries it as
  before.
- kopf's "<prefix>/kopf-managed" marker, which tells other kopf operators to ignore
  this operator's progress annotations. It is written with the first progress record
  and kept even when that record is purged in the same patch, as it is whenever a
  handler succeeds at its first try. It is now written only with a record that stays.
"""

from collections.abc import Mapping
from typing import Any

import kopf

MARKER = "kopf-managed"


class PhaseDiffBaseStorage(kopf.DiffBaseStorage):
    """A resource with a status phase is handled as it is; one without is new."""

    def fetch(self, *, body: kopf.Body) -> Any:
        """The resource's own essence once it has a phase (no diff), else None (new)."""
        if body.get("status", {}).get("phase") is None:
            return None
        return self.build(body=body)

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        """Nothing to write: the phase in the create handler's patch is the record."""


class ProgressAnnotations(kopf.AnnotationsProgressStorage):
    """kopf's progress annotations, with the prefix marker only beside a record kept."""

    def purge(self, *, key: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        super().purge(key=key, body=body, patch=patch)
        drop_lone_marker(patch, body.metadata.annotations, self.prefix)


def drop_lone_marker(patch: dict[str, Any], existing: Mapping[str, str], prefix: str) -> None:
    """Take a new marker out of the patch when no annotation of the prefix is written with it."""
    marker = f"{prefix}/{MARKER}"
    annotations = patch.get("metadata", {}).get("annotations", {})
    if marker not in annotations or marker in existing:
        return
    if any(k.startswith(f"{prefix}/") and k != marker and v is not None
           for k, v in annotations.items()):  # fmt: skip
        return
    del annotations[marker]
    if not annotations:
        del patch["metadata"]["annotations"]
        if not patch["metadata"]:
            del patch["metadata"]
