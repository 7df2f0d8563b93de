"""API keys: the `CELERY_HARDER_API_KEYS` format, constant-time checks, scope decisions.

The configuration holds only SHA-256 digests, never a key, as whitespace-separated
entries `name:scope[,scope]:sha256hex`, e.g.

    ci:read,submit:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

`python -m celery_harder_api.auth NAME SCOPES` makes a new key and prints its entry.
"""

import argparse
import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Scope = Literal["read", "submit"]
READ: Scope = "read"
SUBMIT: Scope = "submit"
SCOPES: tuple[Scope, ...] = (READ, SUBMIT)
HEADER = "X-API-Key"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DIGEST_PATTERN = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class ApiKey:
    """One configured key: who it is, what it may do, the SHA-256 digest of the key."""

    name: str
    scopes: frozenset[str]
    digest: bytes


@dataclass(frozen=True)
class AuthPolicy:
    """Whether requests need a key, and the keys that are accepted."""

    enabled: bool
    keys: tuple[ApiKey, ...] = ()


@dataclass(frozen=True)
class Decision:
    """Allowed (status None) or refused with 401/403 and a reason safe to show the client."""

    status: int | None
    detail: str = ""
    key_name: str | None = None

    @property
    def allowed(self) -> bool:
        return self.status is None


class ApiKeyConfigError(ValueError):
    """`CELERY_HARDER_API_KEYS` does not follow the `name:scopes:sha256hex` format."""


def digest_of(key: str) -> bytes:
    """The SHA-256 digest under which a key is configured."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def entry_for(name: str, scopes: Iterable[str], key: str) -> str:
    """The configuration entry that accepts `key` as `name` with `scopes`."""
    return f"{name}:{','.join(scopes)}:{digest_of(key).hex()}"


def parse_entry(entry: str, position: int) -> ApiKey:
    """One `name:scopes:sha256hex` entry; errors name the entry's position, never its digest."""
    parts = entry.split(":")
    if len(parts) != 3:
        raise ApiKeyConfigError(f"API key entry {position}: expected name:scopes:sha256hex")
    name, scope_list, digest = parts
    if not NAME_PATTERN.fullmatch(name):
        raise ApiKeyConfigError(
            f"API key entry {position}: the name must match {NAME_PATTERN.pattern}"
        )
    if not scope_list:
        raise ApiKeyConfigError(f"API key {name!r}: needs at least one scope ({', '.join(SCOPES)})")
    scopes = frozenset(scope_list.split(","))
    unknown = sorted(scopes - set(SCOPES))
    if unknown:
        raise ApiKeyConfigError(
            f"API key {name!r}: unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}"
        )
    if not DIGEST_PATTERN.fullmatch(digest):
        raise ApiKeyConfigError(f"API key {name!r}: the digest must be 64 hex digits (SHA-256)")
    return ApiKey(name, scopes, bytes.fromhex(digest))


def parse_api_keys(text: str) -> tuple[ApiKey, ...]:
    """Every entry of a `CELERY_HARDER_API_KEYS` value (entries separated by whitespace)."""
    keys = tuple(parse_entry(e, i) for i, e in enumerate(text.split(), start=1))
    names = [k.name for k in keys]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ApiKeyConfigError(f"API key name(s) given twice: {', '.join(repeated)}")
    if len({k.digest for k in keys}) != len(keys):
        raise ApiKeyConfigError("two API key entries have the same digest")
    return keys


def find_key(presented: str, keys: Sequence[ApiKey]) -> ApiKey | None:
    """The key whose digest matches, compared in constant time against every entry.

    Comparing digests (not keys) makes the time independent of the key's length, and
    the loop never stops early, so it does not tell which entry came close.
    """
    digest = digest_of(presented)
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.digest):
            found = key
    return found


def decide(policy: AuthPolicy, presented: str | None, scope: Scope) -> Decision:
    """May a request with this `X-API-Key` value use a route that needs `scope`?"""
    if not policy.enabled:
        return Decision(None)
    if not presented:
        return Decision(401, f"missing API key: send it in the {HEADER} header")
    key = find_key(presented, policy.keys)
    if key is None:
        return Decision(401, "invalid API key")
    if scope not in key.scopes:
        return Decision(403, f"API key {key.name!r} lacks the {scope!r} scope", key.name)
    return Decision(None, key_name=key.name)


def policy_from(enabled: bool, keys_text: str) -> AuthPolicy:
    """The policy for the `api_auth` and `api_keys` settings."""
    return AuthPolicy(enabled=enabled, keys=parse_api_keys(keys_text) if enabled else ())


def new_key() -> str:
    """A fresh random key (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def main(argv: list[str] | None = None) -> int:
    """Print a new key and the CELERY_HARDER_API_KEYS entry that accepts it."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("name", help="who the key is for, e.g. ci")
    parser.add_argument("scopes", help="comma-separated: read, submit or read,submit")
    ns = parser.parse_args(argv)
    key = new_key()
    entry = entry_for(ns.name, ns.scopes.split(","), key)
    try:
        parse_entry(entry, 1)
    except ApiKeyConfigError as exc:
        parser.error(str(exc))
    print(f"key:   {key}\nentry: {entry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
