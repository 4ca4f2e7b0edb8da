"""Sessions served in turn: one line of waiting jobs per session, round robin between the lines.

A free worker takes a job from the session served longest ago. One session's transfer map of a
hundred units therefore delays another session's single Run by one unit per turn, not by the map.

Within a line, a job that more sessions wait for goes first, and starting it counts as a turn for
every session that waits for it. Eight students at eight depths share one scratch arm: it trains
first, and then each one's finetune arm in the order they pressed Run, so the first verdict comes
after two runs and the last after nine (sixteen if each trained its own scratch).

    >>> turns = Turns()
    >>> for unit in map_units: turns.add("alice", unit)
    >>> turns.add("bob", run)
    >>> turns.pop() is map_units[0], turns.pop() is run      # then alice's second unit, ...

Jobs need an `owners` set. Not thread-safe: `JobQueue` holds its lock around every call.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

__all__ = ["Turns"]


class Turns:
    """The waiting jobs, in one line per owner ("" for none), in the order each was added."""

    def __init__(self):
        self.lines: dict[str, list] = {}
        self._served: dict[str, int] = {}  # owner -> when a worker last took a job it waits for
        self._since: dict[str, int] = {}  # owner -> when its line last became non-empty
        self._clock = itertools.count()

    def __len__(self) -> int:
        return sum(map(len, self.lines.values()))

    def __iter__(self) -> Iterator[Any]:
        """Every waiting job, in the order `pop` will give them (if nothing changes meanwhile)."""
        lines = {owner: list(line) for owner, line in self.lines.items()}
        served, clock = dict(self._served), itertools.count(next(self._clock))
        while job := self._take(lines, served, clock):
            yield job

    def waiting(self, owner: str | None) -> int:
        return len(self.lines.get(owner or "", ()))

    def add(self, owner: str | None, job) -> None:
        line = self.lines.setdefault(owner or "", [])
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

    def pop(self):
        """The next job to start (None when none waits); the sessions it serves go to the back."""
        return self._take(self.lines, self._served, self._clock)

    def ahead(self, job) -> int | None:
        """How many waiting jobs `pop` gives before `job` (None when it does not wait)."""
        return next((i for i, waiting in enumerate(self) if waiting is job), None)

    def _take(self, lines: dict[str, list], served: dict[str, int], clock) -> Any:
        waiting = [owner for owner, line in lines.items() if line]
        if not waiting:
            return None
        owner = min(waiting, key=lambda o: (served.get(o, -1), self._since[o]))
        line = lines[owner]
        job = max(line, key=lambda j: len(j.owners))  # the most shared; the oldest of those
        line.remove(job)
        turn = next(clock)
        for o in {owner, *job.owners}:
            served[o or ""] = turn
        return job
