"""How many threads read a batch of local chips: whichever of one or all cores costs less.

Threads pay where a read decodes (a DEFLATE 512x512 tile, ~2 ms: GDAL decodes in parallel)
and lose where a read is a copy out of GDAL's block cache or of an uncompressed file
(~0.1 ms: the threads queue on the block cache's lock, and handing chips to them costs more
than it saves). Which case a dataset is in is not known before reading and changes as the
cache fills, so :class:`ThreadRule` measures it: it times every batch it chose, keeps a
cost a chip for each choice, reads with the cheaper one and times the other again (two
batches) every :data:`EXPLORE` batches, or at once when the cost of the one in favour has
moved by :data:`CHANGE` since towards the other (many threads' reads got cheaper: the tiles
are now cached; one thread's got dearer), so that a change of what reads cost is followed
within a few batches. One thread getting cheaper as a first pass fills the cache is no
reason to time threads again: on grid B that re-timing took a third of the first pass's
batches, at twice the cost. The first batch after a change of choice is not
counted: it opens the files of new threads, or runs with caches the other choice left
cold (measured: ~30 % slower than the next, which would bias every look against a switch).
The second takes its cost as it is (the one before is stale); later ones keep a running
cost (one batch is noisy).
"""

from __future__ import annotations

EXPLORE = 16
"""Every this many batches the choice not in favour is timed again (two batches: at most
an eighth of the batches, where one choice is much the better)."""
CHANGE = 1.5
"""The choice in favour costing this many times more (one thread) or less (many) than when
the other was last timed means the reads changed (the first passes decode, later ones hit
the block cache): the other is timed again at once."""
WEIGHT = 0.5
"""Weight of the latest batch in the running cost of a choice read batch after batch."""


class ThreadRule:
    """One thread or ``many``, chosen per batch from the measured cost a chip of each.

    Args:
        many: the threads of the other choice (the CPU count); 1 makes the rule moot.
    """

    def __init__(self, many: int) -> None:
        self.many = max(1, many)
        self.cost: dict[int, float | None] = {1: None, self.many: None}
        """Running seconds a chip of each choice (``None``: not measured yet)."""
        self._last: int | None = None
        self._run = 0
        """Batches read in a row with the last choice."""
        self._looking: int | None = None
        """The choice being timed again, until it has a counted batch."""
        self._since = 0
        """Batches since the choice not in favour was last timed."""
        self._anchor: float | None = None
        """What the choice in favour cost when the other was last timed."""

    def pick(self) -> int:
        """The threads to read the next batch with."""
        if self.many == 1:
            return 1
        for threads in (1, self.many):  # each choice measured first (one thread opens files)
            if self.cost[threads] is None:
                return threads
        if self._looking is not None:
            return self._looking
        best = self._best()
        now = self.cost[best]
        assert now is not None
        # Reads that got dearer can make threads pay, cheaper ones one thread; a move
        # the other way only widens the gap the rule already acts on.
        changed = self._anchor is not None and (
            now > self._anchor * CHANGE if best == 1 else now < self._anchor / CHANGE
        )
        if self._since >= EXPLORE - 2 or changed:
            self._looking = self.many if best == 1 else 1
            return self._looking
        return best

    def _best(self) -> int:
        one, many = self.cost[1], self.cost[self.many]
        assert one is not None and many is not None
        return 1 if one <= many else self.many

    def record(self, threads: int, seconds: float, chips: int) -> None:
        """Count a batch of ``chips`` read with ``threads`` in ``seconds``."""
        if threads not in self.cost or chips < 1:
            return
        self._since += 1
        self._run = self._run + 1 if threads == self._last else 1
        self._last = threads
        if self._run == 1:
            return  # new threads' files, cold caches: not what the next batches cost
        latest, before = seconds / chips, self.cost[threads]
        if self._run == 2 or before is None:
            self.cost[threads] = latest
        else:
            self.cost[threads] = WEIGHT * latest + (1 - WEIGHT) * before
        other = self.many if threads == 1 else 1
        if (self._looking == threads or self._anchor is None) and self.cost[other] is not None:
            # Both choices now timed with what reads cost lately: compare from here.
            self._looking, self._since = None, 0
            self._anchor = self.cost[self._best()]

    def __repr__(self) -> str:
        shown = {k: None if v is None else round(v * 1e6) for k, v in self.cost.items()}
        return f"ThreadRule(many={self.many}, µs a chip={shown})"
