"""The service's own figures in Prometheus' text format (``GET /metrics``), with
``prometheus_client``: requests by endpoint and status, a latency histogram by endpoint, and
each model's load time. One registry per app, so two apps in one process never share counts.

Under ``serve --processes N`` (``$PROMETHEUS_MULTIPROC_DIR`` set by its supervisor) every
process writes its counts to files in that folder and ``render`` adds them up: the answer is
the service's, whichever process gives it. A model's load time is then the largest of the
processes'.

Endpoint labels are the service's routes only (anything else counts as ``other``), so a
scanner's random paths cannot grow the label set without bound.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ROUTES = frozenset(
    {"/", "/healthz", "/readyz", "/metrics", "/v1/models", "/v1/predict", "/v1/segment",
     "/v1/detect", "/v1/preview"}
)  # fmt: skip
#: Latency buckets in seconds: a 28 px classification takes milliseconds, a volume seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServiceMetrics:
    """The counters of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "medlens_requests",
            "HTTP requests answered, by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "medlens_request_duration_seconds",
            "Time from the request's arrival to its response (s), by endpoint",
            ["endpoint"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.model_load = Gauge(
            "medlens_model_load_seconds",
            "Time to load and warm up each served model at start-up (s)",
            ["model", "engine"],
            registry=self.registry,
            multiprocess_mode="max",
        )

    def observe(self, path: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        endpoint = path if path in ROUTES or path.startswith("/static/") else "other"
        endpoint = "/static" if endpoint.startswith("/static/") else endpoint
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def loaded(self, model: str, engine: str, seconds: float) -> None:
        """Record a model's load time."""
        self.model_load.labels(model=model, engine=engine).set(seconds)

    def render(self) -> bytes:
        """The text exposition of every metric (of every process, under ``--processes``)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
