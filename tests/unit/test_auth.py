"""T0: the API key format, constant-time lookup and the 401/403 decisions."""

import hashlib

import pytest

from celery_harder_api import auth
from celery_harder_api.auth import (
    READ,
    SUBMIT,
    ApiKeyConfigError,
    AuthPolicy,
    decide,
    entry_for,
    find_key,
    parse_api_keys,
    policy_from,
)

RW = entry_for("ci", ["read", "submit"], "rw-key")
RO = entry_for("grafana", ["read"], "ro-key")


def test_an_entry_is_name_scopes_and_the_sha256_of_the_key() -> None:
    digest = hashlib.sha256(b"rw-key").hexdigest()
    assert f"ci:read,submit:{digest}" == RW
    (key,) = parse_api_keys(RW)
    assert (key.name, key.scopes, key.digest.hex()) == ("ci", {"read", "submit"}, digest)


def test_entries_are_separated_by_any_whitespace() -> None:
    keys = parse_api_keys(f"  {RW}\n\t{RO}\n")
    assert [k.name for k in keys] == ["ci", "grafana"]
    assert parse_api_keys("") == ()
    assert parse_api_keys(" \n ") == ()


def test_uppercase_hex_digests_are_accepted() -> None:
    name, scopes, digest = RW.split(":")
    (key,) = parse_api_keys(f"{name}:{scopes}:{digest.upper()}")
    assert find_key("rw-key", [key]) == key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ci:read", "expected name:scopes:sha256hex"),
        ("ci:read:abc:def", "expected name:scopes:sha256hex"),
        (f"-ci:read:{'a' * 64}", "the name must match"),
        (f"ci:admin:{'a' * 64}", "unknown scope(s) admin"),
        (f"ci::{'a' * 64}", "needs at least one scope"),
        ("ci:read:rw-key", "the digest must be 64 hex digits"),
        (f"ci:read:{'g' * 64}", "the digest must be 64 hex digits"),
        (f"{RW} {RW.replace('rw', 'xx')}", "given twice: ci"),
        (f"{RW} {RW.replace('ci:', 'cd:')}", "the same digest"),
    ],
)
def test_a_malformed_configuration_is_refused_without_echoing_it(text: str, message: str) -> None:
    with pytest.raises(ApiKeyConfigError) as caught:
        parse_api_keys(text)
    assert message in str(caught.value)
    assert "rw-key" not in str(caught.value)
    assert hashlib.sha256(b"rw-key").hexdigest() not in str(caught.value)


def test_find_key_matches_by_digest_only() -> None:
    keys = parse_api_keys(f"{RW} {RO}")
    assert find_key("rw-key", keys) == keys[0]
    assert find_key("ro-key", keys) == keys[1]
    assert find_key("rw-ke", keys) is None
    assert find_key("rw-key ", keys) is None
    assert find_key("", keys) is None


def test_find_key_compares_every_entry_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []

    def compare(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(auth.hmac, "compare_digest", compare)
    keys = parse_api_keys(f"{RW} {RO}")
    assert find_key("rw-key", keys) == keys[0]
    # Both entries compared although the first matched: no early exit.
    assert [b for _, b in compared] == [keys[0].digest, keys[1].digest]


POLICY = AuthPolicy(enabled=True, keys=parse_api_keys(f"{RW} {RO}"))


@pytest.mark.parametrize(
    ("presented", "scope", "status", "name"),
    [
        (None, READ, 401, None),
        ("", SUBMIT, 401, None),
        ("wrong", READ, 401, None),
        ("ro-key", SUBMIT, 403, "grafana"),
        ("ro-key", READ, None, "grafana"),
        ("rw-key", READ, None, "ci"),
        ("rw-key", SUBMIT, None, "ci"),
    ],
)
def test_decide(presented: str | None, scope: auth.Scope, status: int | None, name: str) -> None:
    decision = decide(POLICY, presented, scope)
    assert decision.status == status
    assert decision.allowed is (status is None)
    assert decision.key_name == name


def test_refusals_say_why_without_the_key() -> None:
    assert "X-API-Key" in decide(POLICY, None, READ).detail
    assert decide(POLICY, "wrong", READ).detail == "invalid API key"
    assert decide(POLICY, "ro-key", SUBMIT).detail == "API key 'grafana' lacks the 'submit' scope"


def test_auth_on_without_keys_lets_nobody_in() -> None:
    policy = policy_from(True, "")
    assert policy.enabled and policy.keys == ()
    assert decide(policy, "anything", READ).status == 401


def test_auth_off_lets_every_request_in_and_ignores_the_keys() -> None:
    policy = policy_from(False, "not even parsed")
    assert not policy.enabled
    assert decide(policy, None, SUBMIT).allowed


def test_the_command_line_prints_a_key_and_an_entry_that_accepts_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert auth.main(["ci", "read,submit"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    key, entry = lines["key"].strip(), lines["entry"].strip()
    assert len(key) >= 43
    (parsed,) = parse_api_keys(entry)
    assert find_key(key, [parsed]) == parsed
    assert parsed.scopes == {"read", "submit"}


def test_the_command_line_refuses_an_unknown_scope(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        auth.main(["ci", "admin"])
    assert caught.value.code == 2
    assert "unknown scope" in capsys.readouterr().err
