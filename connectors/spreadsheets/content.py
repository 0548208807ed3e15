"""What a member's file holds, in a few bytes: a cheap stamp and a content hash.

Why both: deciding "did this file change?" from the modification time alone starts a load
each time someone opens and saves a file without changing it (or a sync tool touches it);
hashing every file on every sensor tick reads gigabytes for nothing. So the stamp (size,
modification time, and the file's identity) says when to look again, and the hash of the
bytes says whether anything changed. The hash is streamed (blake2b, 1 MiB at a time): a file
is never held in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

CHUNK = 1024 * 1024
MISSING = "missing"


@dataclass(frozen=True)
class FileState:
    """One file as last seen: its ``stamp`` and ``digest`` (the content hash, or a word
    such as ``missing`` or ``problem:…`` when there is no content to hash)."""

    stamp: str
    digest: str

    def to_json(self) -> list[str]:
        return [self.stamp, self.digest]

    @classmethod
    def from_json(cls, value: object) -> FileState | None:
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return cls(value[0], value[1])
        return None


def new_hash() -> hashlib.blake2b:
    """The content hash: blake2b, 160 bits (collisions are not a concern at this size)."""
    return hashlib.blake2b(digest_size=20)


def stream_digest(handle: IO[bytes], limit: int | None = None) -> str:
    """Hash ``handle`` to its end in chunks; ValueError past ``limit`` bytes."""
    digest = new_hash()
    read = 0
    while chunk := handle.read(CHUNK):
        read += len(chunk)
        if limit is not None and read > limit:
            raise ValueError(f"over {limit:,} bytes")
        digest.update(chunk)
    return digest.hexdigest()


def states_digest(states: Mapping[str, FileState]) -> str:
    """One hash of a member's files' names and contents (stamps left out): it moves when a
    file's bytes change, one appears or one goes, and not when a file is only touched."""
    digest = new_hash()
    for key in sorted(states):
        digest.update(f"{key}\0{states[key].digest}\n".encode())
    return digest.hexdigest()
