"""Sessions served in turn: the waiting jobs, taken round robin between the sessions that want them.

A free worker takes a job for the session served longest ago. One session's transfer map of a
hundred units therefore delays another session's single Run by one unit per turn, not by the map.
A job is wanted by every session among its `owners` (a shared arm, joined by several), so it can
be taken on any of their turns. Jobs of one batch (a comparison's arms: `job.batch_of(owner)`)
are one turn of that owner's, taken together, so a verdict does not wait a round between its arms.

Among a session's jobs, the one most sessions wait for goes first, and starting it counts as a turn
for each of them. Eight students at eight depths share one scratch arm: it trains first, then each
one's finetune arm in the order they pressed Run, so the first verdict comes after two runs and the
last after nine (sixteen if each trained its own scratch).

    >>> turns = Turns()
    >>> for unit in map_units: turns.add("alice", unit)
    >>> turns.add("bob", run)
    >>> turns.pop() is map_units[0], turns.pop() is run      # then alice's second unit, ...

Jobs need an `owners` set and may have `batch_of(owner)`. Not thread-safe: `JobQueue` holds its lock around
every call, and calls `changed` when it changes a waiting job's owners.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

__all__ = ["Turns"]


class Turns:
    """The waiting jobs, each added by one owner ("" for none), in the order they were added."""

    def __init__(self):
        self._jobs: list = []
        self._by: dict[int, str] = {}  # id(job) -> the owner whose line it counts in (`waiting`)
        self._served: dict[str, int] = {}  # owner -> when a worker last took a job for it
        self._clock = itertools.count()
        self._order: list | None = None  # `list(self)`, until something changes

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[Any]:
        """Every waiting job, in the order `pop` will give them (if nothing changes meanwhile)."""
        if self._order is None:
            self._order = list(self._take(list(self._jobs), dict(self._served), itertools.count(next(self._clock))))
        return iter(list(self._order))

    def changed(self) -> None:
        """The owners of a waiting job changed: the order may have too."""
        self._order = None

    def waiting(self, owner: str | None) -> int:
        """How many jobs `owner` added are waiting (the queue caps this per session)."""
        return sum(by == (owner or "") for by in self._by.values())

    def add(self, owner: str | None, job) -> None:
        self._jobs.append(job)
        self._by[id(job)] = owner or ""
        self.changed()

    def line_of(self, job) -> str | None:
        """The owner whose line `job` counts in, or None when it does not wait."""
        return self._by.get(id(job))

    def move(self, job, owner: str) -> None:
        """Count a waiting job in another owner's line (its adder let go of it)."""
        self._by[id(job)] = owner
        self.changed()

    def remove(self, job) -> bool:
        """Take `job` out; False when it was not waiting."""
        if id(job) not in self._by:
            return False
        self._jobs = [j for j in self._jobs if j is not job]
        del self._by[id(job)]
        self.changed()
        return True

    def pop(self):
        """The next job to start (None when none waits); the sessions it serves go to the back."""
        job = next(self._take(self._jobs, self._served, self._clock), None)
        if job is not None:
            self.remove(job)
        return job

    def ahead(self, job) -> int | None:
        """How many waiting jobs `pop` gives before `job` (None when it does not wait)."""
        return next((i for i, waiting in enumerate(self) if waiting is job), None)

    def _take(self, jobs: list, served: dict[str, int], clock) -> Iterator[Any]:
        """Yield `jobs` in the order workers take them, marking `served` as it goes."""
        wants: dict[str, list[int]] = {}  # owner -> indices of the jobs it waits for, oldest first
        for i, job in enumerate(jobs):
            for owner in {self._by[id(job)], *job.owners}:
                wants.setdefault(owner, []).append(i)
        left = {owner: len(indices) for owner, indices in wants.items()}
        head = dict.fromkeys(wants, 0)
        taken: set[int] = set()

        def oldest(owner: str) -> int:  # the oldest job `owner` still waits for
            while wants[owner][head[owner]] in taken:
                head[owner] += 1
            return wants[owner][head[owner]]

        while len(taken) < len(jobs):
            owner = min((o for o in left if left[o]), key=lambda o: (served.get(o, -1), oldest(o), o))
            mine = [i for i in wants[owner] if i not in taken]
            i = max(mine, key=lambda i: (len(jobs[i].owners), -i))  # the most shared; the oldest of those
            job, turn = jobs[i], next(clock)
            taken.add(i)
            for o in {self._by[id(job)], *job.owners}:
                served[o], left[o] = turn, left[o] - 1
                if any(_batch(jobs[j], o) == _batch(job, o) for j in wants[o] if j not in taken):
                    served[o] = -2  # the rest of o's batch is this turn's too: it goes next, before anyone
            yield job


def _batch(job, owner: str):
    return job.batch_of(owner) if hasattr(job, "batch_of") else id(job)
