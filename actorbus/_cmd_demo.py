"""``actorbus demo``: the main job on a fresh local root, start to finish, with a summary."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bus import run

from ._cmd_common import guarded

if TYPE_CHECKING:
    from ._demo import DemoReport

__all__ = ["fresh_root", "register", "runnable_command", "summary"]


def summary(report: DemoReport, out: TextIO) -> None:
    """Print what the demo did, where its files are and what to run next."""
    rate = report.events / report.seconds if report.seconds else 0.0
    socket_share = (
        f"{report.socket_events:,} over the socket from {report.socket_processes} processes"
    )
    verdict = "every line checked, order kept" if report.verified else "MISMATCH"
    root = shlex.quote(report.root)
    print(
        "\nsummary\n"
        f"  events        {report.events:,} acknowledged in {report.seconds:.2f}s "
        f"({rate:,.0f} events/s)\n"
        f"                {report.inproc_events:,} in-process, {socket_share}\n"
        f"  sessions      {report.sessions:,} opened, {report.files:,} log files, "
        f"{report.lines:,} lines on disk ({verdict})\n"
        f"  live data     {report.live_writes} writes (a full bootstrap, then host-local "
        f"and trend-finder)\n"
        f"                branches: {', '.join(report.branches)}\n"
        f"  enrichment    pass 1: {report.enriched:,} enriched by the simulated provider, "
        f"${report.first_usd:.4f} spent ({report.first_state})\n"
        f"                pass 2: {report.hits:,} cache hits, ${report.second_usd:.4f} spent, "
        f"${report.saved_usd:.4f} saved\n"
        f"  shutdown      clean: every request answered, actors drained, socket "
        f"{'removed' if report.socket_removed else 'LEFT BEHIND'}, "
        f"{report.dead_letters} dead letters\n"
        f"\nfiles under {report.root}\n"
        "  logs/users/demo-user/sessions/   one JSON Lines log per session\n"
        "  data/live-data.json              the merged live-data document\n"
        "  cache/enrichment/                the private enrichment cache\n"
        "\nnext",
        file=out,
    )
    ab = runnable_command()
    commands = [
        (f"{ab} serve --root {root}", "serve this root on its socket"),
        (f"{ab} tail --root {root} demo-user s-000 -f", "follow a session (in another shell)"),
        (f"{ab} post --root {root} --open FILE.jsonl", "post your own events"),
        (f"{ab} stats --root {root} --prometheus", "the counters, for scraping"),
        (f"{ab} bench --quick", "measure against the baselines"),
    ]
    width = max(len(command) for command, _ in commands)
    for command, what in commands:
        print(f"  {command.ljust(width)}   {what}", file=out)


def runnable_command() -> str:
    """How to run ``actorbus`` from this shell, as it can be pasted.

    ``actorbus`` itself when the command on ``PATH`` is this installation's; else the
    console script beside this interpreter (``.venv/bin/actorbus``), or
    ``python -m actorbus`` with this interpreter.
    """
    script = Path(sys.executable).parent / "actorbus"
    found = shutil.which("actorbus")
    if found is not None and script.exists() and Path(found).resolve() == script.resolve():
        return "actorbus"
    if script.exists():
        return shlex.quote(_shortest(script))
    return f"{shlex.quote(_shortest(Path(sys.executable)))} -m actorbus"


def _shortest(path: Path) -> str:
    """``path`` relative to the working directory when it is under it, else absolute."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def fresh_root(root: Path) -> tuple[Path, str | None]:
    """A root the demo can check line by line: ``root``, or a new directory inside it.

    The demo compares every line it wrote with what is on disk, so a root that already
    holds files (an earlier demo, a service's data) cannot be compared; the demo then
    runs in a new sub-directory and says why.

    Returns:
        The root to use and, when it is not ``root``, the reason to print.
    """
    if not root.exists() or not any(root.iterdir()):
        return root, None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    sub = Path(tempfile.mkdtemp(prefix=f"demo-{stamp}-", dir=root))
    return sub, (
        f"{root} already holds files (an earlier run?), which the demo's line-by-line check "
        f"cannot tell from its own: running in the fresh {sub} instead"
    )


@guarded
def _run(args: argparse.Namespace) -> int:
    from ._demo import DemoPlan, run_demo  # the service loads only when the demo runs

    out = sys.stdout
    root: Path = args.root or Path(tempfile.mkdtemp(prefix="actorbus-demo-"))
    root, why = fresh_root(root)
    if why is not None:
        print(f"actorbus demo: {why}", file=out, flush=True)
    plan = (
        DemoPlan()
        if not args.small
        else DemoPlan(
            sessions=20, inproc_events=200, socket_events=400, scoped_writes=2, enrich_items=40
        )
    )
    print(f"actorbus demo: the service on {root}", file=out, flush=True)
    report = run(run_demo, root, plan, out)
    summary(report, out)
    return 0 if report.verified and report.socket_removed else 1


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    parser = subparsers.add_parser(
        "demo",
        help="run the whole service on a fresh root and print a summary",
        description=(
            "Start the service on a fresh root (a new temporary directory unless --root; a "
            "--root that already holds files gets a new sub-directory), "
            "drive in-process and socket producers over many sessions, merge live data, run "
            "enrichment twice (the second from the cache), check every log on disk, shut "
            "down cleanly and print a summary."
        ),
    )
    parser.add_argument(
        "--root", type=Path, default=None, metavar="DIR", help="the root (default: a new temp dir)"
    )
    parser.add_argument("--small", action="store_true", help="a smaller run (for a quick look)")
    parser.set_defaults(func=_run)
