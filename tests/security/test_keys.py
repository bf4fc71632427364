"""API keys: generated with `secrets`, stored only as SHA-256 hashes (in the database and in Redis's auth
cache), compared in constant time, never logged, and revoked at once in every API process on rotation.

How keys are compared: a tenant key is never compared with a stored key. Its SHA-256 is computed and looked
up (Redis `gw:auth:<hash>`, else an indexed equality on `api_key.key_hash`), so any timing difference depends
on the hash, which an attacker cannot steer towards a valid key's hash. The one secret compared directly, the
admin key, goes through `hmac.compare_digest` (api/deps.py `current_admin`)."""

import hashlib
import inspect
import time
from collections.abc import Callable

import asyncpg
import httpx
import redis

import api.deps
import shared.tenants
from shared.tenants import KEY_PREFIX, generate_key, hash_key
from tests.e2e.conftest import Gateway
from tests.security.conftest import ADMIN_KEY, DATABASE, REDIS_URL

CHAT = {"model": "fake-openai", "messages": [{"role": "user", "content": "key test"}]}


def test_keys_are_generated_with_secrets_and_carry_256_random_bits() -> None:
    assert "secrets.token_urlsafe(32)" in inspect.getsource(shared.tenants.generate_key)
    keys = {generate_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(key.startswith(KEY_PREFIX) and len(key) >= len(KEY_PREFIX) + 43 for key in keys)


def test_keys_are_compared_by_hash_lookup_and_admin_key_with_compare_digest() -> None:
    assert "hmac.compare_digest" in inspect.getsource(api.deps.current_admin)
    # The tenant's key is looked up by its hash (in the auth cache of the hash's shard, else the database).
    assert "_cached_tenant(state, key)" in inspect.getsource(api.deps.current_tenant)
    assert "hash_key(key)" in inspect.getsource(api.deps._cached_tenant)
    assert "ApiKey.key_hash) == hash_key(plain_key)" in inspect.getsource(shared.tenants.authenticate)
    assert hash_key("gw-x") == hashlib.sha256(b"gw-x").hexdigest()


async def test_keys_are_stored_only_as_sha256_hashes(secure_gateway: Gateway,
                                                     secure_tenant: Callable[..., tuple[str, str]]) -> None:
    tenant_id, key = secure_tenant()
    assert httpx.get(f"{secure_gateway.base_url}/v1/models", headers={"X-API-Key": key}).status_code == 200
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{DATABASE}")
    try:
        rows = await conn.fetch("SELECT * FROM api_key WHERE tenant_id = $1", tenant_id)
        everything = [*await conn.fetch("SELECT * FROM tenant"), *await conn.fetch("SELECT * FROM api_key")]
        dump = " ".join(str(value) for row in everything for value in row.values())
    finally:
        await conn.close()
    assert [row["key_hash"] for row in rows] == [hash_key(key)]
    assert key not in dump and key[len(KEY_PREFIX) + 12:] not in dump  # at most the display prefix is kept
    cache = redis.Redis.from_url(REDIS_URL)
    stored = b" ".join([*cache.keys("*"), *(cache.dump(k) or b"" for k in cache.keys("gw:auth*"))])
    assert key.encode() not in stored and hash_key(key).encode() in stored


def test_keys_are_never_logged(secure_gateway: Gateway, secure_tenant: Callable[..., tuple[str, str]]) -> None:
    tenant_id, key = secure_tenant()
    base = secure_gateway.base_url
    httpx.post(f"{base}/v1/chat/completions", json=CHAT, headers={"X-API-Key": key}, timeout=20)
    httpx.post(f"{base}/v1/messages", json={**CHAT, "max_tokens": 5}, headers={"x-api-key": key}, timeout=20)
    httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {key}x"}, timeout=10)  # a wrong key
    rotated = httpx.post(f"{base}/api/v1/admin/tenants/{tenant_id}/rotate-key", headers={"X-API-Key": ADMIN_KEY})
    new_key = rotated.json()["api_key"]
    time.sleep(0.5)  # let the processes write their logs (LOG_LEVEL=DEBUG)
    logs = "".join(path.read_text(errors="replace") for path in secure_gateway.log_dir.glob("*.log"))
    assert "/v1/chat/completions" in logs  # the logs are there to search
    for secret in (key, new_key, key[len(KEY_PREFIX):], ADMIN_KEY):
        assert secret not in logs


def test_keys_rotation_revokes_old_key_at_once_in_another_process(
        secure_gateway: Gateway, secure_tenant: Callable[..., tuple[str, str]]) -> None:
    tenant_id, old_key = secure_tenant()
    second, second_url = secure_gateway.start_api("api-rotation")
    try:
        for url in (secure_gateway.base_url, second_url):  # both processes have authenticated (and cached) it
            assert httpx.get(f"{url}/v1/models", headers={"X-API-Key": old_key}).status_code == 200
        rotated = httpx.post(f"{secure_gateway.base_url}/api/v1/admin/tenants/{tenant_id}/rotate-key",
                             headers={"X-API-Key": ADMIN_KEY})
        assert rotated.status_code == 200, rotated.text
        new_key = rotated.json()["api_key"]
        refused = httpx.get(f"{second_url}/v1/models", headers={"X-API-Key": old_key})
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
        assert httpx.get(f"{second_url}/v1/models", headers={"X-API-Key": new_key}).status_code == 200
        assert httpx.get(f"{secure_gateway.base_url}/v1/models", headers={"X-API-Key": old_key}).status_code == 401
    finally:
        second.stop()
