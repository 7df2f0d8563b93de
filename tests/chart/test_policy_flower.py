"""Chart policy, Flower's basic auth."""

import pytest

from .chartlib import HELMS, pod_spec, render_case


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_flower_basic_auth_from_a_secret(helm):
    render = render_case(helm, "defaults")
    flower = render.get("Deployment", "celery-harder-flower")
    (c,) = pod_spec(flower)["containers"]
    assert c["command"][3:5] == ["flower", "--port=5555"]
    env = {e["name"]: e for e in c["env"]}
    ref = env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "celery-harder-flower", "key": "basic-auth"}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthcheck"
    auth = render_case(helm, "auth-on").get("Deployment", "celery-harder-flower")
    env = {e["name"]: e for e in pod_spec(auth)["containers"][0]["env"]}
    assert env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"] == {
        "name": "platform-flower",
        "key": "auth",
    }
