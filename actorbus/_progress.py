"""A one-line terminal progress bar (plain lines when the output is not a terminal)."""

from __future__ import annotations

from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Progress over ``total`` steps, drawn in place on a terminal.

    Off a terminal (CI logs, pipes) it prints one line per :meth:`start` and
    nothing per update, so logs stay readable.
    """

    def __init__(self, out: TextIO, total: int, width: int = 30) -> None:
        self.out = out
        self.total = max(1, total)
        self.width = width
        self.tty = out.isatty()
        self.index = 0
        self.label = ""
        self._fraction = 0.0

    def start(self, index: int, label: str) -> None:
        """Begin step ``index`` (0-based) named ``label``."""
        self.index = index
        self.label = label
        if not self.tty:
            print(f"[{index + 1}/{self.total}] {label} ...", file=self.out, flush=True)
        self.update(0.0)

    def update(self, fraction: float) -> None:
        """Redraw with the current step ``fraction`` done (0 to 1)."""
        self._fraction = fraction
        if not self.tty:
            return
        done = (self.index + max(0.0, min(1.0, fraction))) / self.total
        filled = int(done * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.out.write(f"\r[{bar}] {done * 100:5.1f}%  {self.label:<36.36}")
        self.out.flush()

    def note(self, text: str) -> None:
        """Print a line of text, never over the bar: clear it, print, draw it again."""
        if not self.tty:
            print(text, file=self.out, flush=True)
            return
        self.out.write("\r" + " " * (self.width + 48) + "\r" + text + "\n")
        self.update(self._fraction)

    def finish(self) -> None:
        """Clear the bar."""
        if self.tty:
            self.out.write("\r" + " " * (self.width + 48) + "\r")
            self.out.flush()
