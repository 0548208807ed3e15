"""A minimal, fast APIv4-shaped server for benchmarks: pre-rendered JSON rows, raw asyncio.

The project's sandbox (sandboxes/civicrm.py) models CiviCRM's behaviour and is slow
doing it, which hides a client's own overhead. This server does only what a keyset reader
needs, as cheaply as Python allows, so that what a benchmark measures is the client:

- ``POST /civicrm/ajax/api4/{Entity}/get`` with the form field ``params`` (JSON), HTTP/1.1
  keep-alive; the answer is APIv4's envelope (``values``, ``count``, ``countFetched``);
- ``where``: ``id >`` (and ``>=``, ``<=``) bounds found by bisection; any other clause must
  hold for every row of the entity (checked once per distinct clause list, else a 500), so
  both sides of a benchmark always get the same rows;
- ``select``: each row is rendered to JSON once per distinct select list (``warm`` does it
  before timing) and pages are joined from those bytes; ``orderBy`` must be ``id ASC``.

Data is synthetic: ``--contacts`` Individuals, one activity each, and 2 or 3 activity roles
per activity (567,000 roles at 200,000 contacts, as in issue #19). Run as
``python benchmarks/fast_civicrm.py --port N --contacts N``; it prints ``ready`` when it
listens, and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import random
import sys
from typing import Any
from urllib.parse import parse_qs

PREFIX = "/civicrm/ajax/api4/"
OPTION_NAMES = {
    "activity_type_id": {1: "Meeting", 2: "Phone Call", 3: "Advice Session"},
    "status_id": {1: "Scheduled", 2: "Completed"},
    "record_type_id": {1: "Activity Assignees", 2: "Activity Source", 3: "Activity Targets"},
    "Outcomes.outcome": {1: "tenancy_sustained", 2: "debt_reduced", 3: "felt_listened_to"},
    "Outcomes.status": {1: "achieved", 2: "progressing", 3: "not_achieved"},
}
REFERENCES = {
    ("ActivityContact", "activity_id"): "Activity",
    ("ActivityContact", "contact_id"): "Contact",
}


def generate(contacts: int, seed: int = 19) -> dict[str, dict[int, dict[str, Any]]]:
    """Synthetic tables (entity -> id -> row); made-up values only, never real people."""
    rng = random.Random(seed)
    tables: dict[str, dict[int, dict[str, Any]]] = {
        "Contact": {},
        "Activity": {},
        "ActivityContact": {},
    }
    names = ("Ada", "Bo", "Cai", "Dee", "Eli", "Fen")
    role_id = 0
    for cid in range(1, contacts + 1):
        stamp = f"2025-{1 + cid % 12:02d}-{1 + cid % 28:02d} {cid % 24:02d}:{cid % 60:02d}:00"
        tables["Contact"][cid] = {
            "id": cid,
            "contact_type": "Individual",
            "first_name": rng.choice(names),
            "last_name": rng.choice(names) + "son",
            "birth_date": f"19{50 + cid % 50}-0{1 + cid % 9}-1{cid % 9}",
            "is_deleted": False,
            "modified_date": stamp,
            "Consent.share_data": cid % 5 != 0,
        }
        review = cid % 3 == 0
        tables["Activity"][cid] = {
            "id": cid,
            "activity_type_id": 1 + cid % 3,
            "activity_date_time": stamp,
            "status_id": 2,
            "duration": 30,
            "case_id": None,
            "is_deleted": False,
            "modified_date": stamp,
            "Outcomes.outcome": 1 + cid % 3 if review else None,
            "Outcomes.status": 1 + cid % 2 if review else None,
            "Outcomes.value": float(cid % 5) if review else None,
        }
        roles = 3 if rng.random() < 0.835 else 2
        for record_type in range(1, roles + 1):
            role_id += 1
            who = cid if record_type == 3 else rng.randrange(1, contacts + 1)
            tables["ActivityContact"][role_id] = {
                "id": role_id,
                "activity_id": cid,
                "contact_id": who,
                "record_type_id": record_type,
            }
    return tables


class Store:
    """The tables, their ids in order, and rows rendered per select list."""

    def __init__(self, tables: dict[str, dict[int, dict[str, Any]]]) -> None:
        self.tables = tables
        self.ids = {entity: sorted(rows) for entity, rows in tables.items()}
        self.rendered: dict[tuple[str, tuple[str, ...]], list[bytes]] = {}
        self.checked: set[str] = set()
        self.fields: dict[str, bytes] = {}  # getFields answers, rendered once

    def value(self, entity: str, row: dict[str, Any], name: str) -> Any:
        base, _, suffix = name.partition(":")
        head, dot, rest = base.partition(".")
        if dot and base not in row:  # an implicit join through a reference field
            target = REFERENCES[(entity, head)]
            joined = self.tables[target].get(row[head])
            return None if joined is None else self.value(target, joined, rest)
        value = row[base]
        return OPTION_NAMES[base][value] if suffix and value is not None else value

    def rows(self, entity: str, select: tuple[str, ...]) -> list[bytes]:
        key = (entity, select)
        if key not in self.rendered:
            dumps = json.JSONEncoder(separators=(",", ":")).encode
            self.rendered[key] = [
                dumps({name: self.value(entity, row, name) for name in select}).encode()
                for row in (self.tables[entity][i] for i in self.ids[entity])
            ]
        return self.rendered[key]

    def check(self, entity: str, clauses: list[Any]) -> None:
        """Every non-id clause must hold for every row: the answer is then just a range."""
        signature = json.dumps([entity, clauses])
        if signature in self.checked:
            return
        for clause in clauses:
            field, op, arg = clause
            for row in self.tables[entity].values():
                value = self.value(entity, row, field)
                ok = value == arg if op == "=" else value in arg if op == "IN" else False
                if not ok:
                    raise ValueError(f"clause {clause} does not hold for every {entity}")
        self.checked.add(signature)

    def call(self, entity: str, action: str, params: dict[str, Any]) -> bytes:
        """One APIv4 call: ``get``, or ``getFields`` listing the generated columns (the
        connector checks that every field it selects is listed before it reads)."""
        if action == "getFields":
            if entity not in self.fields:
                names = sorted({name for row in self.tables[entity].values() for name in row})
                values = ",".join(json.dumps({"name": n}) for n in names)
                self.fields[entity] = (
                    f'{{"entity":"{entity}","action":"getFields","version":4,'
                    f'"count":{len(names)},"values":[{values}]}}'
                ).encode()
            return self.fields[entity]
        if action != "get":
            raise ValueError(f"{action} is not served")
        return self.answer(entity, params)

    def answer(self, entity: str, params: dict[str, Any]) -> bytes:
        ids = self.ids[entity]
        lo, hi = 0, len(ids)
        rest = []
        for clause in params.get("where", []):
            if clause[0] == "id" and clause[1] in (">", ">="):
                lo = max(
                    lo,
                    (bisect.bisect_right if clause[1] == ">" else bisect.bisect_left)(
                        ids, clause[2]
                    ),
                )
            elif clause[0] == "id" and clause[1] == "<=":
                hi = min(hi, bisect.bisect_right(ids, clause[2]))
            else:
                rest.append(clause)
        self.check(entity, rest)
        if params.get("orderBy", {"id": "ASC"}) != {"id": "ASC"}:
            raise ValueError("only orderBy id ASC is served")
        limit = int(params.get("limit") or 0)
        end = min(hi, lo + limit) if limit else hi
        select = tuple(params.get("select") or ("id",))
        page = self.rows(entity, select)[lo:end]
        n = len(page)
        head = (
            f'{{"entity":"{entity}","action":"get","version":4,'
            f'"count":{n},"countFetched":{n},"values":['
        )
        return head.encode() + b",".join(page) + b"]}"


async def serve(store: Store, port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                status, payload = 200, b""
                try:
                    form = parse_qs(body.decode())
                    if path.rstrip("/") == PREFIX.rstrip("/"):  # APIv4's multi-call form
                        calls = json.loads(form["calls"][0])
                        payload = (
                            b"{"
                            + b",".join(
                                json.dumps(key).encode() + b":" + store.call(*call)
                                for key, call in calls.items()
                            )
                            + b"}"
                        )
                    else:
                        entity, action = path[len(PREFIX) :].split("/")
                        payload = store.call(entity, action, json.loads(form["params"][0]))
                except Exception as exc:  # a benchmark mistake: say it loudly
                    status = 500
                    payload = json.dumps({"error_message": str(exc)}).encode()
                writer.write(
                    f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument(
        "--warm", default="[]", help="JSON list of [entity, select] to render first"
    )
    args = parser.parse_args()
    store = Store(generate(args.contacts))
    for entity, select in json.loads(args.warm):
        store.rows(entity, tuple(select))
    for entity in store.tables:  # getFields answers too: rendering is not the connector's time
        store.call(entity, "getFields", {})
    sys.stdout.flush()
    asyncio.run(serve(store, args.port))


if __name__ == "__main__":
    main()
