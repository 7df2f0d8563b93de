"""T0: when a CRD counts as Established (the wait that replaced `kubectl wait`)."""

from typing import Any

from celery_harder_dev.cluster.kubectl import crds_established


def crd(conditions: Any) -> dict[str, Any]:
    return {"kind": "CustomResourceDefinition", "status": {"conditions": conditions}}


ESTABLISHED = [{"type": "NamesAccepted", "status": "True"},
               {"type": "Established", "status": "True"}]  # fmt: skip


def test_a_crd_is_established_only_once_its_condition_is_true() -> None:
    assert crds_established(crd(ESTABLISHED))
    assert not crds_established(crd(None))  # just created: what broke `kubectl wait`
    assert not crds_established({"kind": "CustomResourceDefinition"})  # no status yet
    assert not crds_established(crd([{"type": "Established", "status": "False"}]))
    assert not crds_established(crd([{"type": "NamesAccepted", "status": "True"}]))


def test_a_list_is_established_when_every_crd_in_it_is() -> None:
    assert crds_established({"kind": "List", "items": [crd(ESTABLISHED), crd(ESTABLISHED)]})
    assert not crds_established({"kind": "List", "items": [crd(ESTABLISHED), crd(None)]})
