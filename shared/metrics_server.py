"""The Prometheus listener of a gateway process, on a port of its own: `API_METRICS_PORT` for the API,
`WORKER_METRICS_PORT` for a worker, never the public API port. The metrics name every tenant with its
request counts, refusals and budget use, so they are for the operator's network only: Prometheus reaches
this port, clients do not (it is not published, not behind the Service or the load balancer).

It answers `GET /metrics` (Prometheus' own WSGI app: text or OpenMetrics, gzip) from a thread, so a scrape
never waits on the event loop and a flood of the public port never starves it; any other path is 404.
With `reuse_port`, several processes (the API's `serve --workers N`) listen on the same port and each
answers with the sum of all of them read from `PROMETHEUS_MULTIPROC_DIR`."""

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

__all__ = ["METRICS_PATH", "MetricsServer", "start_metrics_server"]

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
NOT_FOUND = b"Not found: the metrics are at /metrics\n"

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class MetricsServer:
    """A running listener: its bound port (useful with port 0) and `stop()`."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def stop(self) -> None:
        """Stop accepting and release the port; blocks up to half a second (the serve loop's poll)."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(host: str, port: int, registry: CollectorRegistry, *,
                         before_scrape: Callable[[], None] | None = None,
                         reuse_port: bool = False) -> MetricsServer | None:
    """Serve `registry` on host:port in a daemon thread; `before_scrape` runs first on each scrape (the API
    reads its queue gauges from Redis there). Port 0 or less: not served. A taken port is logged, not fatal:
    the process still does its work, only unscraped."""
    if port <= 0:
        return None
    server_class: type[_Server] = _ReusePortServer if reuse_port else _Server
    if ":" in host:  # an IPv6 address such as "::" (every interface, both families where the OS allows)
        server_class = type("_Server6", (server_class,), {"address_family": socket.AF_INET6})
    try:
        httpd = make_server(host, port, _app(registry, before_scrape), server_class, handler_class=_QuietHandler)
    except OSError as exc:
        logger.warning("metrics not served: %s:%d unavailable (%s)", host, port, exc.strerror)
        return None
    thread = threading.Thread(target=httpd.serve_forever, name=f"metrics-{port}", daemon=True)
    thread.start()
    return MetricsServer(httpd, thread)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True  # a restarted process binds again at once, whatever TIME_WAIT holds


class _ReusePortServer(_Server):
    allow_reuse_port = True


class _QuietHandler(WSGIRequestHandler):
    """No line on stderr per scrape (wsgiref's default)."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def _app(registry: CollectorRegistry, before_scrape: Callable[[], None] | None) -> WsgiApp:
    exposition: WsgiApp = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                             ("Content-Length", str(len(NOT_FOUND)))])
            return [NOT_FOUND]
        if before_scrape is not None:
            before_scrape()
        return exposition(environ, start_response)

    return app
