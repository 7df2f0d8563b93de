"""Chart policy, the operator's RBAC."""

import pytest

from .chartlib import HELMS, pod_spec, render_case


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_operator_rbac_is_minimal(helm):
    render = render_case(helm, "defaults")
    (role,) = render.of_kind("ClusterRole")
    rules = {
        (g, r): set(rule["verbs"])
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    # create: a CronTaskWorkflow's runs; delete: TTLs and history limits.
    assert rules[("celery-harder.io", "taskworkflows")] == {
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "delete",
    }
    assert rules[("celery-harder.io", "taskworkflows/status")] == {"get", "patch", "update"}
    # CronTaskWorkflows are never created or deleted by the operator, only watched and patched.
    assert rules[("celery-harder.io", "crontaskworkflows")] == {"get", "list", "watch", "patch"}
    assert rules[("celery-harder.io", "crontaskworkflows/status")] == {"get", "patch", "update"}
    # blockOwnerDeletion on a run's owner reference, under OwnerReferencesPermissionEnforcement
    assert rules[("celery-harder.io", "crontaskworkflows/finalizers")] == {"update"}
    assert not any("create" in v for k, v in rules.items() if k[0] == "celery-harder.io"
                   and k[1] != "taskworkflows")  # fmt: skip
    assert {"list", "watch"} <= rules[("apiextensions.k8s.io", "customresourcedefinitions")]
    assert {"list", "watch"} <= rules[("", "namespaces")]
    assert "create" in rules[("", "events")]
    assert not any("kopfpeerings" in r for _, r in rules), "--standalone needs no peering rights"
    assert all("*" not in v for v in rules.values()) and all("*" not in k[1] for k in rules)
    # delete only where ttlSecondsAfterFinished and history limits need it: TaskWorkflows.
    assert not any(
        v & {"delete", "deletecollection", "escalate", "bind", "impersonate"}
        for k, v in rules.items()
        if k != ("celery-harder.io", "taskworkflows")
    )
    assert "deletecollection" not in rules[("celery-harder.io", "taskworkflows")]
    dep = render.get("Deployment", "celery-harder-operator")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    cmd = pod_spec(dep)["containers"][0]["command"]
    assert cmd[:4] == ["kopf", "run", "--standalone", "--all-namespaces"]
    (binding,) = render.of_kind("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == pod_spec(dep)["serviceAccountName"]
