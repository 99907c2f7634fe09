"""A progress bar: tqdm when it is installed (as vLLM draws it), else a plain one on stderr. tqdm is optional."""

from __future__ import annotations

import sys
import time
from typing import Any, Optional


class _PlainBar:
    """One line redrawn in place on a terminal; on anything else one line at the end."""

    def __init__(self, total: int, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self.last = 0.0

    def _line(self) -> str:
        dt = max(time.monotonic() - self.start, 1e-9)
        width = 30
        done = int(width * self.n / self.total) if self.total else width
        return f"{self.desc}: {self.n}/{self.total} [{'#' * done}{'.' * (width - done)}] {dt:.1f}s, {self.n / dt:.2f} {self.unit}/s"

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if self.tty and (now - self.last > 0.1 or self.n >= self.total):
            self.last = now
            sys.stderr.write("\r" + self._line())
            sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write(("\r" if self.tty else "") + self._line() + "\n")
        sys.stderr.flush()


class _NoBar:
    def update(self, k: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str = "it", enabled: bool = True) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm  # optional
    except ImportError:
        return _PlainBar(total, desc, unit)
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", dynamic_ncols=True)


class CallbackBar:
    """Adapts a (done, total) callback from the native code to a bar made on the first call."""

    def __init__(self, desc: str, unit: str = "it", enabled: bool = True) -> None:
        self.desc, self.unit, self.enabled = desc, unit, enabled
        self.bar: Optional[Any] = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = progress_bar(total, self.desc, self.unit, self.enabled)
        if done > self.done:
            self.bar.update(done - self.done)
            self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
