"""Overall deadlines per HTTP request and per member load, on top of httpx's read timeouts.

Why: httpx's read timeout bounds each read from the socket, not the request. A server that
sends one byte every five seconds never trips a 60-second read timeout, and held `hub
check` past 150 s. So every connection the CRM clients open goes through a network stream
that gives each read and write only what is left of the request's deadline (set with
``deadline(seconds)`` around the request); past it, the read raises httpcore's
``ReadTimeout``, which httpx reports as ``httpx.ReadTimeout`` like any other timeout.

A request deadline still lets a server that answers every page just in time hold a load for
ever, so each member's load also has a ``LoadDeadline`` (``load_deadline`` in both CRM
connectors' settings): each request gets at most what is left of it, and the clients check
it before every attempt and backoff sleep, failing the load with ``LoadDeadlineExceeded``.
"""

from __future__ import annotations

import contextvars
import functools
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from connectors.errors import PermanentSourceError

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "hub_http_deadline", default=None
)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Within the block, each HTTP request made through ``deadline_client`` must be
    answered in full within ``seconds`` of the block's start (None: no deadline)."""
    token = _DEADLINE.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _remaining(timeout: float | None, *, read: bool) -> float | None:
    """The timeout for one socket operation: httpx's, cut to what is left of the deadline."""
    end = _DEADLINE.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        exc = httpcore.ReadTimeout if read else httpcore.WriteTimeout
        raise exc("the request's overall deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(timeout, read=True))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout, read=False))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _remaining(timeout, read=True))
        return _Stream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, _remaining(timeout, read=False), local_address, socket_options
        )
        return _Stream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CA bundle, or SSL_CERT_FILE/SSL_CERT_DIR),
    built once per process: loading the CA bundle took 0.05-0.15 s for every client, i.e.
    every member's load and every ``hub check``. An SSLContext is meant to be shared."""
    return httpx.create_ssl_context()


def deadline_transport() -> httpx.HTTPTransport:
    """An httpx transport whose connections honour ``deadline``."""
    transport = httpx.HTTPTransport(verify=_tls_context())
    transport._pool._network_backend = _Backend()  # httpx takes no backend argument
    return transport


class LoadDeadlineExceeded(PermanentSourceError):
    """A member's whole load ran past its ``load_deadline``.

    Not retried (by the client or by the orchestrator): a load that was given hours and did
    not finish will not finish on an immediate second try either, and retrying would hold
    the warehouse pool for hours more. A person raises the setting or looks at the server.
    """


class LoadDeadline:
    """An overall deadline for one member's load, shared by every request the load makes.

    Why a separate deadline: ``request_deadline`` bounds each request, but a CRM that answers
    every page just inside it (or a retry loop with long backoffs) can still hold a load, and
    the warehouse pool with it, for ever. The clients ask this object before each attempt
    and each backoff sleep, and give each request only what is left of it.

    It is an object handed to the source (not a context variable) so that it holds whatever
    thread or context dlt's extract step runs the resources in. The clock starts at the
    load's first request (or at ``start()``), so waiting for the warehouse lock or building
    the pipeline does not count.
    """

    def __init__(
        self, seconds: float, member: str | None = None, *, clock: Callable[[], float] | None = None
    ) -> None:
        if seconds <= 0:
            raise ValueError("load_deadline must be positive")
        self.seconds = seconds
        self.member = member
        self._clock = clock or time.monotonic
        self._end: float | None = None

    def start(self) -> None:
        """Start the clock now, unless it is already running."""
        if self._end is None:
            self._end = self._clock() + self.seconds

    def remaining(self) -> float:
        """Seconds left (negative once passed); starts the clock on first use."""
        self.start()
        assert self._end is not None
        return self._end - self._clock()

    def exceeded(self) -> LoadDeadlineExceeded:
        """The error to raise: names the member and the setting, never a URL or a value."""
        who = f"the load of {self.member}" if self.member else "the load"
        where = f"members/{self.member}.yaml" if self.member else "the member's YAML file"
        return LoadDeadlineExceeded(
            f"{who} did not finish within load_deadline = {self.seconds:g} s; raise "
            f"connector.load_deadline in {where} or check the server (it answers too slowly "
            "or keeps failing)"
        )

    def check(self) -> float:
        """Seconds left, or raise ``LoadDeadlineExceeded`` when none are."""
        left = self.remaining()
        if left <= 0:
            raise self.exceeded()
        return left

    def request_seconds(self, request_deadline: float) -> float:
        """The deadline for the next request: its own, cut to what is left of the load's."""
        return min(request_deadline, self.check())

    def pause(self, seconds: float, sleep: Callable[[float], None]) -> None:
        """Sleep before a retry, or raise at once when the load's deadline would pass first
        (a request after that sleep could not be made anyway)."""
        if seconds >= self.check():
            raise self.exceeded()
        sleep(seconds)


def request_seconds(request_deadline: float, load: LoadDeadline | None) -> float:
    """The deadline for one request of a client that may or may not run inside a load."""
    return request_deadline if load is None else load.request_seconds(request_deadline)


def pause(seconds: float, sleep: Callable[[float], None], load: LoadDeadline | None) -> None:
    """A retry's backoff sleep, bounded by the load's deadline when there is one."""
    if load is None:
        sleep(seconds)
    else:
        load.pause(seconds, sleep)
