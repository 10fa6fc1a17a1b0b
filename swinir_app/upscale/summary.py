"""What a run did: its counts, added up over every rank and said in one line at the end."""
from __future__ import annotations

import sys
from dataclasses import dataclass

from .. import distributed


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    megapixels: float = 0.0
    frames: int = 0  # of animations and videos

    def report(self, d, seconds: float, where=None) -> int:
        """Add up every rank's counts; rank 0 says them in one line, with ``where`` the outputs went (the
        output file of a single input, else the output folder) when any was written. Returns the exit code:
        1 if any input failed on any rank, else 0."""
        world = d.world_size
        totals = distributed.all_sum(d, [self.done, self.skipped, self.failed, self.megapixels, seconds, self.frames])
        if d.rank == 0:
            done, skipped, failed, mp, secs = totals[0], totals[1], totals[2], totals[3], (totals[4] / world)
            rate = mp / secs if secs > 0 else 0.0
            frames = f", {int(totals[5])} frames" if totals[5] else ""
            print(f"done {int(done)}, skipped {int(skipped)}, failed {int(failed)} in {secs:.1f} s "
                  f"({rate:.3f} input megapixels/s{frames})" + (f" on {world} processes" if world > 1 else "") +
                  (f"; written to {where}" if where is not None and done else ""), file=sys.stderr)
        return 1 if totals[2] else 0
