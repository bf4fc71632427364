"""Redis keeps jobs across its own restarts in both deployments: jobs, results, events and idempotency keys
must live for JOB_TTL_S, so the Compose and Kubernetes Redis run with the append-only file on, never evict,
and keep /data on storage that outlives the container (a named volume; a PersistentVolumeClaim)."""

from typing import Any

from tests.deploy.support import documents, find
from tests.deploy.test_compose import compose


def redis_flags(args: list[str]) -> dict[str, str]:
    """`--name value` pairs of a redis-server command line."""
    flags = [a for a in args if a != "redis-server"]
    return {flags[i].removeprefix("--"): flags[i + 1] for i in range(0, len(flags) - 1, 2)
            if flags[i].startswith("--")}


def test_redis_persistence_compose_runs_append_only_on_a_named_volume() -> None:
    redis = compose()["services"]["redis"]
    flags = redis_flags(redis["command"])
    assert flags["appendonly"] == "yes"
    assert flags["appendfsync"] in {"everysec", "always"}
    assert flags["maxmemory-policy"] == "noeviction"
    volume, _, target = redis["volumes"][0].partition(":")
    assert target == "/data" and volume in compose()["volumes"]


def test_redis_persistence_k8s_runs_append_only_on_a_claim() -> None:
    deployment = find("Deployment", "llm-gateway-redis")
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    flags = redis_flags(container["args"])
    assert flags["appendonly"] == "yes"
    assert flags["appendfsync"] in {"everysec", "always"}
    assert flags["maxmemory-policy"] == "noeviction"
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/data")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    claim = volume["persistentVolumeClaim"]["claimName"]
    claims = [d for d in documents("redis.yaml") if d["kind"] == "PersistentVolumeClaim"]
    assert [c["metadata"]["name"] for c in claims] == [claim]
    # One writer at a time on a ReadWriteOnce claim: the old pod stops before the new one mounts it.
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
