"""A worker process serving several Redis shards (docs/SHARDING.md): one arq worker (`GatewayWorker`) per
shard in WORKER_SHARDS, all in one event loop, sharing the providers, routes, prices, usage sink and metrics
listener (`ProcessResources`); each has its own Redis client, `WorkerDeps`, job store, usage writer, leases,
heartbeat and doorbell on its shard. A shard that is down only stalls its own worker, whose poll loop retries
until the shard answers again (worker/gateway_worker.py); the others go on serving."""

import asyncio
import logging
import signal

from redis.exceptions import RedisError

from shared.config import Settings
from shared.shard_clients import open_shard_clients
from worker.gateway_worker import GatewayWorker
from worker.main import build_worker, close_process, on_shutdown, open_process

__all__ = ["run_shard_workers"]

logger = logging.getLogger(__name__)


async def run_shard_workers(settings: Settings) -> None:
    """Run one arq worker per served shard until SIGINT/SIGTERM, then drain each (WORKER_DRAIN_S)."""
    served = settings.served_shards()
    clients = open_shard_clients(settings)
    process = open_process(settings)
    workers: list[GatewayWorker] = []
    try:
        for index in served:
            worker = build_worker(settings, clients.clients[index], handle_signals=False)
            worker.ctx["process"] = process
            worker.ctx["shard"] = index
            workers.append(worker)
        stopping = _forward_signals(workers)
        logger.info("worker process serving Redis shards %s", ", ".join(map(str, served)))
        runs = [asyncio.ensure_future(worker.async_run()) for worker in workers]
        await asyncio.wait(runs, return_when=asyncio.FIRST_COMPLETED)
        if not stopping.is_set():
            # A worker ended by itself (a Redis outage never ends one: its poll loop waits it out). Serving
            # the other shards on would leave this one unserved unnoticed: stop them all, exit with an error,
            # and let the supervisor (systemd, Kubernetes) start the process again.
            for worker in workers:
                _stop(worker, signal.SIGTERM)
        results = await asyncio.gather(*runs, return_exceptions=True)
        crashed = [(index, result) for index, result in zip(served, results, strict=True)
                   if not isinstance(result, asyncio.CancelledError | None)]
        if crashed and not stopping.is_set():
            raise RuntimeError(f"the worker of Redis shard {crashed[0][0]} ended: {crashed[0][1]!r}")
    finally:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        for worker in workers:
            try:
                await worker.close()
            except (RedisError, OSError) as exc:
                # arq's close talks to the shard before it runs on_shutdown: with the shard down, stop this
                # worker's usage writer, heartbeat and sender directly.
                logger.warning("the worker of a shard that is down stops without it: %s", type(exc).__name__)
                await on_shutdown(worker.ctx)
        await close_process(process)
        await clients.aclose()


def _forward_signals(workers: list[GatewayWorker]) -> asyncio.Event:
    """arq installs one signal handler per worker and the last would win: install one that tells them all.
    The event is set once a signal came (the workers then end on purpose)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def stop(signum: signal.Signals) -> None:
        stopping.set()
        for worker in workers:
            _stop(worker, signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    return stopping


def _stop(worker: GatewayWorker, signum: signal.Signals) -> None:
    """What arq's own handler does for `signum`: drain for WORKER_DRAIN_S when set, else stop at once."""
    if worker._job_completion_wait:  # arq's own choice between its two handlers (Worker.__init__)
        worker.handle_sig_wait_for_completion(signum)
    else:
        worker.handle_sig(signum)
