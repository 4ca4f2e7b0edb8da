"""Sessions served in turn: one line of waiting jobs per session, round robin between the lines.

A free worker takes the oldest job of the session served longest ago. One session's transfer map
of a hundred units therefore delays another session's single Run by one unit, not by the map.

    >>> turns = Turns()
    >>> for unit in map_units: turns.add("alice", unit)
    >>> turns.add("bob", run)
    >>> turns.pop() is map_units[0], turns.pop() is run      # then alice's second unit, ...

Not thread-safe: `JobQueue` holds its lock around every call.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from typing import Any

__all__ = ["Turns"]


class Turns:
    """The waiting jobs, in one first-in-first-out line per owner ("" for none)."""

    def __init__(self):
        self.lines: dict[str, deque] = {}
        self._served: dict[str, int] = {}  # owner -> when a worker last took its job (a counter)
        self._clock = itertools.count()
        self._since: dict[str, int] = {}  # owner -> when its line last became non-empty

    def __len__(self) -> int:
        return sum(map(len, self.lines.values()))

    def __iter__(self) -> Iterator[Any]:
        """Every waiting job, in the order `pop` will give them (if nothing is added meanwhile)."""
        lines = [self.lines[o] for o in self.order()]
        for turn in range(max(map(len, lines), default=0)):
            yield from (line[turn] for line in lines if turn < len(line))

    def waiting(self, owner: str | None) -> int:
        return len(self.lines.get(owner or "", ()))

    def add(self, owner: str | None, job) -> None:
        line = self.lines.setdefault(owner or "", deque())
        if not line:
            self._since[owner or ""] = next(self._clock)
        line.append(job)

    def line_of(self, job) -> str | None:
        return next((owner for owner, line in self.lines.items() if job in line), None)

    def remove(self, job) -> bool:
        """Take `job` out of its line; False when it was not waiting."""
        owner = self.line_of(job)
        if owner is not None:
            self.lines[owner].remove(job)
        return owner is not None

    def order(self) -> list[str]:
        """The owners with jobs waiting: the one served longest ago (then waiting longest) first."""
        waiting = [o for o, line in self.lines.items() if line]
        return sorted(waiting, key=lambda o: (self._served.get(o, -1), self._since[o]))

    def pop(self):
        """The next job to start (None when none waits); its owner goes to the back."""
        order = self.order()
        if not order:
            return None
        self._served[order[0]] = next(self._clock)
        return self.lines[order[0]].popleft()

    def ahead(self, job) -> int | None:
        """How many waiting jobs `pop` gives before `job` (None when it does not wait)."""
        owner = self.line_of(job)
        if owner is None:
            return None
        order, turn = self.order(), self.lines[owner].index(job)
        # Each turn takes one job from every line that still has one, in `order`.
        before = sum(min(len(line), turn) for line in self.lines.values())
        return before + sum(len(self.lines[o]) > turn for o in order[: order.index(owner)])
