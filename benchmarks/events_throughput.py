"""Webhook receiver throughput: N signed webhooks over a few keep-alive connections to a
receiver subprocess (``python -m events.receiver``), on loopback.

Reports accepted webhooks per second, p50/p95 response time, that the inbox then holds
exactly the N events sent (none lost, none twice), and the receiver's peak RSS (``VmHWM``).
For scale, each round also sends the same number of ``GET /healthz`` requests over the same
connections (no signature, no body, no commit): the HTTP floor of this client and server on
this machine. Rounds alternate webhook and health runs so machine noise hits both.

Bounded: ``--events`` per round (default 5,000), ``--rounds`` (default 3), and every round
stops after ``--max-seconds`` (default 60) whatever it has sent. Target: >= 500 accepted/s.

    .venv/bin/python benchmarks/events_throughput.py [--events 5000] [--connections 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from events.inbox import open_inbox  # noqa: E402
from tests.events.receiver_kit import (  # noqa: E402
    cdc_body,
    free_port,
    new_secret,
    signed_headers,
    write_member,
)

ORG = "bench_trust"


def _request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{head}content-length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _send_all(port: int, requests: list[bytes], connections: int, deadline: float):
    """Send ``requests`` over ``connections`` keep-alive connections, one at a time each;
    return (statuses, bodies, latencies)."""
    statuses: list[int] = []
    bodies: list[bytes] = []
    latencies: list[float] = []
    todo = iter(requests)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in todo:
                if time.monotonic() > deadline:
                    return
                start = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                statuses.append(int(head[9:12]))
                bodies.append(body)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return statuses, bodies, latencies


def _vm(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (all its threads): a figure other
    processes on a busy machine do not inflate, unlike wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="webhooks per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per round")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="events_bench_"))
    secret = new_secret()
    write_member(
        work / "members", ORG, events={"webhook_secret": {"env": "HUB_BENCH_TRUST_WEBHOOK_SECRET"}}
    )
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HUB_HOME": str(work / "home"),
        "HUB_MEMBERS_DIR": str(work / "members"),
        "HUB_BENCH_TRUST_WEBHOOK_SECRET": secret,
    }
    env.pop("HUB_EVENTS_INBOX", None)
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "events.receiver", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=work,
    )
    try:
        import httpx

        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.02)
            if child.poll() is not None or time.monotonic() - started > 30:
                sys.exit("the receiver did not start")
        startup = time.monotonic() - started
        base_rss = _vm(child.pid, "VmRSS:")
        print(
            f"receiver up in {startup:.2f} s, RSS {base_rss:.0f} MB; {args.events:,} webhooks x "
            f"{args.rounds} rounds over {args.connections} connections"
        )
        health = _request("/healthz", b"", {}).replace(b"POST", b"GET", 1)
        rows = []
        sent_total = 0
        for rnd in range(args.rounds):
            requests = []
            for i in range(args.events):
                body = cdc_body(ids=[f"003B{rnd:04d}{i:010d}"])
                eid = f"r{rnd}-{i}"
                requests.append(
                    _request(f"/members/{ORG}/webhook", body, signed_headers(secret, body, eid))
                )
            for which, batch in (("webhooks", requests), ("healthz", [health] * args.events)):
                deadline = time.monotonic() + args.max_seconds
                cpu0 = _cpu_seconds(child.pid)
                t0 = time.perf_counter()
                statuses, bodies, lat = asyncio.run(
                    _send_all(port, batch, args.connections, deadline)
                )
                seconds = time.perf_counter() - t0
                cpu = _cpu_seconds(child.pid) - cpu0
                ok = sum(1 for s in statuses if s == 200)
                if which == "webhooks":
                    sent_total += len(statuses)
                    queued = sum(1 for b in bodies if b == b'{"status":"queued"}')
                else:
                    queued = ok
                rows.append(
                    {
                        "round": rnd + 1,
                        "what": which,
                        "sent": len(statuses),
                        "ok": queued,
                        "seconds": round(seconds, 3),
                        "per_second": round(queued / seconds, 1),
                        "p50_ms": round(_pct(lat, 50), 2),
                        "p95_ms": round(_pct(lat, 95), 2),
                        "receiver_cpu_ms_per_request": round(1000 * cpu / max(len(statuses), 1), 3),
                    }
                )
                r = rows[-1]
                print(
                    f"round {r['round']} {which:8} {r['ok']:>6,}/{r['sent']:<6,} in "
                    f"{seconds:6.2f} s = {r['per_second']:>8,.0f}/s  p50 {r['p50_ms']:6.2f} ms"
                    f"  p95 {r['p95_ms']:6.2f} ms  receiver CPU "
                    f"{r['receiver_cpu_ms_per_request']:.3f} ms/request"
                )
        peak = _vm(child.pid, "VmHWM:")
    finally:
        child.terminate()
        child.wait(30)
    inbox = open_inbox(work / "home" / "events" / "inbox.sqlite3")
    kept = inbox.received_after(0, limit=10 * sent_total + 10)
    ids = [e.event_id for e in kept]
    exact = len(ids) == sent_total == len(set(ids))
    hooks = [r for r in rows if r["what"] == "webhooks"]
    summary = {
        "events_sent": sent_total,
        "inbox_events": len(ids),
        "inbox_exact": exact,
        "accepted_per_second_median": statistics.median(r["per_second"] for r in hooks),
        "healthz_per_second_median": statistics.median(
            r["per_second"] for r in rows if r["what"] == "healthz"
        ),
        "receiver_cpu_ms_per_webhook_median": statistics.median(
            r["receiver_cpu_ms_per_request"] for r in hooks
        ),
        "receiver_cpu_ms_per_healthz_median": statistics.median(
            r["receiver_cpu_ms_per_request"] for r in rows if r["what"] == "healthz"
        ),
        "p50_ms_median": statistics.median(r["p50_ms"] for r in hooks),
        "p95_ms_median": statistics.median(r["p95_ms"] for r in hooks),
        "receiver_peak_rss_mb": round(peak, 1),
        "receiver_start_rss_mb": round(base_rss, 1),
        "receiver_startup_s": round(startup, 2),
    }
    print(
        f"inbox holds {len(ids):,} events for {sent_total:,} sent: "
        f"{'exactly those, none lost' if exact else 'MISMATCH'}; receiver peak RSS {peak:.0f} MB"
    )
    print(json.dumps(summary))
    if not exact:
        sys.exit(1)


if __name__ == "__main__":
    main()
