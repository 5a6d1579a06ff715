"""Publishing a run: its rows as the next leaderboard version, exactly once.

The worker that writes a run's last row publishes it (:func:`publish_if_complete`: whoever takes
the run folder's publication lock first); ``fer-bench bench --collect RUN_DIR`` publishes by hand
(:func:`collect`), a partial version while jobs are left.  A version is
``leaderboards/<suite>/vNNN.csv`` (:mod:`fer_bench.bench.leaderboard`) with the suite's README,
its transfer matrix when it has cross rows, and its page.
"""
from __future__ import annotations

from pathlib import Path

from fer_bench.bench import leaderboard as lb
from fer_bench.bench.job import cross_key
from fer_bench.bench.runfolder import RunFolder
from fer_bench.files import atomic_write_text


def publish(rf: RunFolder, echo=print) -> Path | None:
    """Publish the run's rows as the next leaderboard version (with papers.csv, README, page)."""
    plan = rf.read_plan()
    suite, leaderboards = plan["suite"], Path(plan["launch"].leaderboards)
    keys = {j.key for j, _ in plan["entries"]} | {cross_key(j, d) for j, _ in plan["entries"] for d in j.cross_eval}
    keys |= set(plan["launch"].external)  # a suite's external entries, scored when it was planned
    rows = [r for r in rf.read_rows() if r["job"] in keys]
    if not rows:
        echo("no job finished: no leaderboard version written")
        return None
    folder = leaderboards / suite
    path = lb.write_version(folder, rows)
    lb.write_papers_csv(leaderboards)  # first: the README reads the paper numbers from it
    lb.write_readme(folder, suite)
    if not lb.transfer_matrix(lb.read_version(folder)).empty:
        lb.plot_transfer(folder, folder / "transfer.png")
    from fer_bench.bench.page import write_page

    write_page(folder, suite)
    echo(f"wrote {path} ({len(rows)} rows), {folder / 'README.md'} and {folder / 'index.html'}")
    return path


def publish_if_complete(rf: RunFolder, echo=print) -> Path | None:
    """Publish once, by whoever sees the last row first: ``leaderboard.txt`` records the version."""
    if rf.unfinished() or not rf.take_publication():
        return None
    return _publish_final(rf, echo)


def _publish_final(rf: RunFolder, echo) -> Path | None:
    """Publish the complete run and record its version in ``leaderboard.txt`` (the publication lock is held)."""
    path = publish(rf, echo)
    atomic_write_text(rf.path / "leaderboard.txt", (str(path) if path else "") + "\n")
    return path


def collect(run_dir: str | Path, echo=print) -> Path | None:
    """``fer-bench bench --collect RUN_DIR``: publish the run's rows by hand (once complete, only once)."""
    rf = RunFolder(run_dir)
    planned = len(rf.read_plan()["entries"])  # and a clear error for a folder that is no run
    published = rf.published()
    if published is not None:
        echo(f"{rf.path}: already published as {published or '(no rows)'}")
        return Path(published) if published else None
    left = rf.unfinished()
    if not left:
        rf.take_publication()  # a publisher that died half-way leaves the lock: take over
        return _publish_final(rf, echo)
    echo(f"{len(left)} of {planned} jobs have no row yet (first: {left[0]}); "
         "publishing the rows there are as a partial version")
    return publish(rf, echo)
