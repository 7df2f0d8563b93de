"""Create the chart's generated Secrets (Redis password, Flower basic auth, the API key) when absent.

Runs in the `<release>-secrets` Job, a Helm pre-install/pre-upgrade hook (Argo CD runs it
as a PreSync hook), from the API image: Python's standard library, the pod's
ServiceAccount token and CA, nothing else. So no rendered manifest ever holds a generated
password, and the password is made once, in the cluster, and never changed:

* absent Secret: created with a random password (letters and digits, URL-safe, because
  the Redis password is put into redis:// URLs);
* existing Secret: its password is kept. Only the Flower user name follows
  `flower.basicAuth.username` (`username` and `basic-auth` are rewritten around the same
  password);
* existing Secret that Helm owns (rendered by an older chart version, or while a password
  was set in values): annotated `helm.sh/resource-policy: keep`, so the upgrade that drops
  it from the release does not delete the password the running pods use.

The created Secret is not part of the Helm release, so `helm uninstall` leaves it (like
the Redis PersistentVolumeClaim); its annotations say so. The chart's pods hash its state
into `checksum/credentials` through `celery-harder.io/data-sha256` and
`celery-harder.io/created-at-revision` (see templates/_helpers.tpl).

The API key Secret holds the key itself (`api-key`, for clients: the helm test pod, you)
and the API's configuration (`api-keys`: `admin:read,submit:<sha256 of the key>`, the
`CELERY_HARDER_API_KEYS` format); the API pod reads only the digest.

Environment: NAMESPACE, RELEASE, REVISION, JOB_NAME, SECRETS (a JSON list of
{"name", "kind": "redis-password" | "basic-auth" | "api-keys", "username", "labels"}),
SERVICEACCOUNT_DIR, KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT.
"""

import base64
import hashlib
import json
import os
import secrets
import ssl
import string
import sys
import time
import urllib.error
import urllib.request

ALPHABET = string.ascii_letters + string.digits
LENGTHS = {"redis-password": 32, "basic-auth": 24, "api-keys": 40}
REQUIRED_KEYS = {
    "redis-password": ["redis-password"],
    "basic-auth": ["password"],
    "api-keys": ["api-keys"],
}
API_KEY_NAME, API_KEY_SCOPES = "admin", "read,submit"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(RuntimeError):
    pass


class Api:
    """The Kubernetes API, as this pod's ServiceAccount."""

    def __init__(self, sa_dir, host, port):
        if ":" in host:
            host = f"[{host}]"
        self.base = f"https://{host}:{port}"
        self.sa_dir = sa_dir
        self.context = ssl.create_default_context(cafile=os.path.join(sa_dir, "ca.crt"))

    def call(self, method, path, body=None, content_type="application/json"):
        # Read the token on every call: projected ServiceAccount tokens are rotated.
        with open(os.path.join(self.sa_dir, "token")) as handle:
            token = handle.read().strip()
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in range(6):
            request = urllib.request.Request(self.base + path, data, headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=30, context=self.context) as resp:
                    return resp.status, json.loads(resp.read() or b"null")
            except urllib.error.HTTPError as err:
                text = err.read()
                try:
                    return err.code, json.loads(text or b"null")
                except ValueError:
                    return err.code, {"message": text.decode(errors="replace")}
            except OSError as err:
                if attempt == 5:
                    raise ApiError(f"{method} {path}: {err}") from err
                time.sleep(2**attempt)
        raise AssertionError("unreachable")


def b64(text):
    return base64.b64encode(text.encode()).decode()


def unb64(text):
    return base64.b64decode(text).decode()


def data_sha256(data):
    """What the chart's templates compute as `toJson .data | sha256sum` (sorted keys, compact)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def random_password(length):
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def fresh_data(spec):
    password = random_password(LENGTHS[spec["kind"]])
    if spec["kind"] == "redis-password":
        return {"redis-password": b64(password)}
    if spec["kind"] == "api-keys":
        digest = hashlib.sha256(password.encode()).hexdigest()
        entry = f"{API_KEY_NAME}:{API_KEY_SCOPES}:{digest}"
        return {"api-key": b64(password), "api-keys": b64(entry)}
    user = spec["username"]
    return {
        "username": b64(user),
        "password": b64(password),
        "basic-auth": b64(f"{user}:{password}"),
    }


def created_metadata(spec, env):
    where = f"{env['NAMESPACE']}/{env['JOB_NAME']}"
    return {
        "name": spec["name"],
        "labels": spec["labels"],
        "annotations": {
            "celery-harder.io/generated-by": (
                f"Job {where}, the pre-install/pre-upgrade hook of Helm release {env['RELEASE']}"
            ),
            "celery-harder.io/created-at-revision": str(env["REVISION"]),
            "celery-harder.io/lifecycle": (
                "not part of the Helm release: helm uninstall keeps it; "
                "kubectl delete secret removes it (the next install or upgrade makes a new one)"
            ),
            # Argo CD: never prune it, and do not count it as out of sync.
            "argocd.argoproj.io/sync-options": "Prune=false",
            "argocd.argoproj.io/compare-options": "IgnoreExtraneous",
        },
    }


def reconcile(api, path, spec, secret, env):
    """An existing Secret: keep its password, follow the Flower user name, keep Helm off it."""
    name = spec["name"]
    data = secret.get("data") or {}
    missing = [k for k in REQUIRED_KEYS[spec["kind"]] if k not in data]
    if missing:
        raise ApiError(
            f"Secret {name} exists without the key(s) {', '.join(missing)}; it is not overwritten. "
            "Delete it to have a new one generated, or point the chart at it with existingSecret."
        )
    annotations = secret["metadata"].get("annotations") or {}
    patch = {}
    if spec["kind"] == "basic-auth":
        password = unb64(data["password"])
        want = {
            "username": b64(spec["username"]),
            "basic-auth": b64(f"{spec['username']}:{password}"),
        }
        if any(data.get(k) != v for k, v in want.items()):
            patch["data"] = want
            if annotations.get("celery-harder.io/data-sha256") == data_sha256(data):
                # Still as generated: keep it recognisable as such after the rename.
                patch["metadata"] = {
                    "annotations": {"celery-harder.io/data-sha256": data_sha256({**data, **want})}
                }
    if (
        "meta.helm.sh/release-name" in annotations
        and annotations.get("helm.sh/resource-policy") != "keep"
    ):
        adopted = {
            "helm.sh/resource-policy": "keep",
            "celery-harder.io/kept-by": (
                f"Job {env['NAMESPACE']}/{env['JOB_NAME']}: Helm rendered this Secret before; "
                "kept so that the running pods keep their password"
            ),
        }
        patch.setdefault("metadata", {}).setdefault("annotations", {}).update(adopted)
    if not patch:
        print(f"Secret {name}: exists, kept as it is")
        return
    status, body = api.call("PATCH", f"{path}/{name}", patch, MERGE_PATCH)
    if status != 200:
        raise ApiError(f"patch Secret {name}: HTTP {status}: {body}")
    print(f"Secret {name}: exists, password kept; updated {', '.join(sorted(patch))}")


def ensure(api, spec, env):
    path = f"/api/v1/namespaces/{env['NAMESPACE']}/secrets"
    name = spec["name"]
    status, body = api.call("GET", f"{path}/{name}")
    if status == 404:
        data = fresh_data(spec)
        metadata = created_metadata(spec, env)
        metadata["annotations"]["celery-harder.io/data-sha256"] = data_sha256(data)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": metadata,
            "data": data,
        }
        status, body = api.call("POST", path, secret)
        if status == 201:
            what = "API key" if spec["kind"] == "api-keys" else "password"
            print(f"Secret {name}: created with a new random {what}")
            return
        if status != 409:
            raise ApiError(f"create Secret {name}: HTTP {status}: {body}")
        # Another run created it first: treat it as existing.
        status, body = api.call("GET", f"{path}/{name}")
    if status != 200:
        raise ApiError(f"get Secret {name}: HTTP {status}: {body}")
    reconcile(api, path, spec, body, env)


def main(env):
    api = Api(
        env["SERVICEACCOUNT_DIR"], env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]
    )
    for spec in json.loads(env["SECRETS"]):
        ensure(api, spec, env)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(os.environ))
    except ApiError as err:
        sys.exit(f"generate-secrets: {err}")
