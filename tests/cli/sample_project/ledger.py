"""A tiny stdlib-only library used to demonstrate ``retrace test``: a ledger of timestamped
entries with random ids, stored as JSON files in a directory."""

from __future__ import annotations

import datetime
import json
import os
import random
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    id: str
    amount: int
    note: str
    created: float
    day: str


def new_entry(amount: int, note: str = "") -> Entry:
    """An entry stamped with the current time and a random id."""
    return Entry(
        id=uuid.uuid4().hex[:12],
        amount=amount,
        note=note,
        created=time.time(),
        day=datetime.date.today().isoformat(),
    )


class Ledger:
    """Entries kept in one JSON file per entry under *directory*."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def add(self, entry: Entry) -> Path:
        path = self.directory / f"{entry.id}.json"
        with open(path, "w", encoding="utf-8") as out:
            json.dump(asdict(entry), out)
        return path

    def entries(self) -> list[Entry]:
        found = []
        for name in sorted(os.listdir(self.directory)):
            if name.endswith(".json"):
                with open(self.directory / name, encoding="utf-8") as src:
                    found.append(Entry(**json.load(src)))
        return found

    def balance(self) -> int:
        return sum(e.amount for e in self.entries())

    def sample(self, k: int, seed: int | None = None) -> list[Entry]:
        """*k* entries chosen at random (reproducibly with *seed*)."""
        rng = random.Random(seed) if seed is not None else random
        items = self.entries()
        return rng.sample(items, min(k, len(items)))

    def age(self, entry: Entry) -> float:
        return time.time() - entry.created
