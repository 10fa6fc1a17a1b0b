"""The log book of a training run: the console and the log file (``train_<name>_<time>.log``), TensorBoard
(``tb_logger/``), and the progress line with its speed and ETA."""
from __future__ import annotations

import datetime
import logging
import sys
from typing import List, Optional

from .experiment import Experiment

log = logging.getLogger("swinir_app.train")


def format_eta(seconds: float) -> str:
    s = int(max(seconds, 0))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m {s % 60}s" if m else f"{s}s"


class LogBook:
    """Where a run reports. :meth:`open` (rank 0, once the folder exists) adds the log file and the
    console to the ``swinir_app.train`` logger; :meth:`quiet` leaves the other ranks errors only;
    :meth:`open_tb` starts TensorBoard (``tb``, None without); :meth:`line` is the progress line;
    :meth:`close` releases all."""

    def __init__(self, exp: Experiment, name: str):
        self.exp, self.name = exp, name
        self.tb = None
        self._handlers: List[logging.Handler] = []

    def open(self) -> None:
        stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
        fmt = logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")
        handlers = [logging.FileHandler(self.exp.root / f"train_{self.name}_{stamp}.log"),
                    logging.StreamHandler(sys.stdout)]
        handlers[1].setLevel(logging.INFO)  # the console: progress; the log file also has the options dump
        for h in handlers:
            h.setFormatter(fmt)
            log.addHandler(h)
        log.setLevel(logging.DEBUG)
        log.propagate = False
        self._handlers = handlers

    @staticmethod
    def quiet() -> None:
        log.setLevel(logging.ERROR)  # as BasicSR: the other ranks only report errors

    def open_tb(self, it: int) -> None:
        """TensorBoard in ``tb_logger/``, continuing after iteration ``it`` (later events of a resumed
        run are purged)."""
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(self.exp.tb), purge_step=it + 1 if it else None)

    def line(self, it: int, total: int, loss: float, lr: float, rate: float, skipped: int, epoch: int,
             d_loss: Optional[float] = None) -> None:
        """The progress line of iteration ``it``: the mean loss(es) since the last, lr, speed, ETA."""
        extra = f", {skipped} skipped" if skipped else ""
        d_text = f" l_d {d_loss:.4g}" if d_loss is not None else ""
        log.info("[iter %d/%d] loss %.4g%s lr %.1e %.2f it/s eta %s (epoch %d%s)", it, total, loss, d_text, lr,
                 rate, format_eta((total - it) / max(rate, 1e-9)), epoch, extra)
        if self.tb is not None:
            self.tb.add_scalar("losses/l_g" if d_loss is not None else "losses/l_pix", loss, it)
            if d_loss is not None:
                self.tb.add_scalar("losses/l_d", d_loss, it)
            self.tb.add_scalar("lr", lr, it)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        for h in self._handlers:
            log.removeHandler(h)
            h.close()
        self._handlers = []


__all__ = ["LogBook", "format_eta"]
