"""``worker keys``: API keys for HMAC-signed requests, kept encrypted in Redis.

Secrets are printed once, by ``create`` and ``rotate``, and never again:
``list`` shows key ids, tenants, scopes, status and secret versions only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
import orjson

from worker.auth.credentials.base import Credential
from worker.auth.keys import IssuedSecret, KeyManager
from worker.settings import load_settings

T = TypeVar("T")


def _with_manager(action: Callable[[KeyManager], Awaitable[T]]) -> T:
    from worker.auth.credentials.redis import RedisCredentialStore
    from worker.auth.secrets import SecretBox

    settings = load_settings()

    async def run() -> T:
        store = RedisCredentialStore(settings.redis)
        try:
            return await action(KeyManager(store, SecretBox(settings.security.master_key_bytes())))
        finally:
            await store.close()

    return asyncio.run(run())


def _describe(credential: Credential) -> dict[str, Any]:
    now = time.time()
    return {
        "key_id": credential.key_id,
        "tenant": credential.tenant,
        "scopes": sorted(credential.scopes),
        "status": credential.status,
        "description": credential.description,
        "versions": [
            {
                "version": v.version,
                "created_at": v.created_at,
                "expires_at": v.expires_at,
                "valid": v.valid_at(now),
            }
            for v in credential.versions
        ],
    }


def _issued(issued: IssuedSecret, as_json: bool) -> None:
    if as_json:
        body = {**_describe(issued.credential), "version": issued.version, "secret": issued.secret}
        click.echo(orjson.dumps(body).decode())
        return
    credential = issued.credential
    click.echo(f"key id:   {credential.key_id}")
    click.echo(f"tenant:   {credential.tenant}")
    click.echo(f"scopes:   {' '.join(sorted(credential.scopes)) or '-'}")
    click.echo(f"version:  {issued.version}")
    click.echo(f"secret:   {issued.secret}")
    click.echo(f"The secret is shown once. Sign with it as version v{issued.version}.", err=True)


@click.group()
def keys() -> None:
    """API keys (REDIS_URL, SECURITY_MASTER_KEY or SECURITY_MASTER_KEY_FILE)."""


@keys.command()
@click.option("--tenant", required=True, help="The tenant every request signed with it acts for.")
@click.option("--scope", "scopes", multiple=True, help="A scope it grants (repeatable).")
@click.option("--description", default="", help="What the key is for.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def create(tenant: str, scopes: tuple[str, ...], description: str, as_json: bool) -> None:
    """Create a key and print its secret, once."""
    issued = _with_manager(lambda m: m.create(tenant, scopes, description=description))
    _issued(issued, as_json)


@keys.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines, for scripts.")
def list_keys(as_json: bool) -> None:
    """List keys (never their secrets)."""
    for credential in _with_manager(lambda m: m.list()):
        described = _describe(credential)
        if as_json:
            click.echo(orjson.dumps(described).decode())
            continue
        versions = ",".join(
            f"v{v['version']}{'' if v['valid'] else '(expired)'}" for v in described["versions"]
        )
        click.echo(
            f"{credential.key_id}  {credential.tenant}  {credential.status}  "
            f"{' '.join(described['scopes']) or '-'}  {versions}"
        )


@keys.command()
@click.argument("key_id")
@click.option(
    "--grace",
    "grace_s",
    type=float,
    default=None,
    help="Seconds the previous secrets stay valid (default SECURITY_ROTATION_GRACE_S).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def rotate(key_id: str, grace_s: float | None, as_json: bool) -> None:
    """Add a new secret version and print it; older versions expire after the grace period."""
    grace = load_settings().security.rotation_grace_s if grace_s is None else grace_s
    issued = _with_manager(lambda m: m.rotate(key_id, grace_s=grace))
    _issued(issued, as_json)


@keys.command()
@click.argument("key_id")
def revoke(key_id: str) -> None:
    """Revoke a key: workers refuse it within SECURITY_CREDENTIAL_CACHE_TTL_S seconds."""
    credential = _with_manager(lambda m: m.revoke(key_id))
    ttl = load_settings().security.credential_cache_ttl_s
    click.echo(f"revoked {credential.key_id}; refused by every worker within {ttl:g}s")


@keys.command(name="master-key")
def master_key() -> None:
    """Print a new random master key (for SECURITY_MASTER_KEY or its file)."""
    from worker.auth.secrets import new_master_key

    click.echo(new_master_key())
