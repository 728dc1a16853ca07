"""Writing a run's output files without destroying anything the user owns.

Files are written into a temporary folder inside the output folder and moved into place
only when all of them are written, so a failed run leaves the previous run's files as they
were. Only gpuseg's own file names are ever replaced; other files in the folder are left
alone.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from ..errors import ConfigError

__all__ = [
    "OUTPUT_FILES", "OUTPUT_DIRS", "check_out_dir", "check_outside", "check_output_dir", "write_outputs", "to_json",
    "spreadsheet_safe", "write_csv", "recover", "output_lock", "MANIFEST", "LOCK",
]

#: The files a run writes.
OUTPUT_FILES = (
    "segments.parquet", "features.parquet", "excluded.csv", "profiles.csv", "comparison.csv", "sensitivity.csv",
    "insights.json", "backtest.csv", "backtest.json", "report.html", "metrics.json",
)
#: The folders a run writes (replaced as a whole).
OUTPUT_DIRS = ("plots", "model")
#: What a saved model folder may hold (gpuseg.model): it is replaced as a whole.
_MODEL_FILES = re.compile(r"model\.json|arrays\.npz|weights(_\d+)?\.pt")


#: A text cell starting with one of these is a formula to Excel, LibreOffice or Sheets.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
#: A plain signed number ("-42", "+4917612345") is a number to a spreadsheet, not a formula:
#: it is left as it is, so ids still join back.
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")


def spreadsheet_safe(frame: Any) -> Any:
    """A copy of a host frame whose text cells that a spreadsheet would run as a formula
    (``=HYPERLINK(...)``, ``+cmd|...``, ``@SUM(...)``, ``-2+3``) start with ``'``, as OWASP's
    CSV-injection rule says; numbers (also as text: ``-42``), and text cells that start
    otherwise, are unchanged."""
    import pandas as pd

    out = None
    for col in frame.columns:
        s = frame[col]
        if not (s.dtype == object or isinstance(s.dtype, (pd.StringDtype, pd.CategoricalDtype))):
            continue
        text = s.astype("object")
        risky = text.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_LEADS) and not _NUMBER.fullmatch(v))
        if bool(risky.any()):
            out = frame.copy() if out is None else out
            out[col] = text.where(~risky, "'" + text.astype(str))
    return frame if out is None else out


def write_csv(frame: Any, path: str | os.PathLike, **kwargs: Any) -> None:
    """``frame.to_csv(path, index=False, **kwargs)`` with :func:`spreadsheet_safe` cells."""
    spreadsheet_safe(frame).to_csv(path, index=False, **kwargs)


def check_out_dir(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Validate the output folder before any work is done.

    Raises
    ------
    ConfigError
        The path is a file or not writable; it is the root or the home folder; an output
        name is taken by a folder; the folder holds files that no earlier gpuseg run wrote
        (gpuseg writes only into an empty or new folder, or one a run wrote); or an output
        file would overwrite an input.
    """
    if not str(out).strip():
        raise ConfigError("--out is empty; give an output folder")
    p = Path(out).expanduser()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    resolved = p.resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        raise ConfigError(f"--out {out}: that is the {'root' if resolved == Path(resolved.anchor) else 'home'} "
                          "folder; give gpuseg a folder of its own (it is created)")
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"--out {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: {probe} is not writable")
    targets = {(p / name).resolve() for name in OUTPUT_FILES}
    for inp in inputs:
        if Path(inp).resolve() in targets:
            raise ConfigError(f"--out {out}: would overwrite the input file {inp}; choose another folder")
    if p.is_dir():
        present = [name for name in OUTPUT_FILES if (p / name).exists() or (p / name).is_symlink()]
        for name in present:
            if (p / name).is_dir():
                raise ConfigError(f"--out {out}: {name} is a folder; gpuseg writes a file of that name")
        for name in OUTPUT_DIRS:
            if (p / name).exists() or (p / name).is_symlink():
                check_output_dir(p / name)
                present.append(name)
        if present and not _written_by_gpuseg(p):
            raise ConfigError(
                f"--out {out}: holds {present[0]} that gpuseg did not write; choose another folder or move it away"
            )
        unlisted = _unlisted(p, present)
        if unlisted:
            raise ConfigError(f"--out {out}: holds {unlisted[0]}, which the previous gpuseg run there did not write "
                              "(its manifest does not list it); move it away or choose another folder")
    if p.is_dir() and (p / "migration.json").is_file():  # migrate's summary: its files and a run's would mix
        raise ConfigError(f"--out {out}: holds migration.json, which gpuseg migrate wrote; give the run a folder "
                          "of its own")
    if p.is_dir() and not _written_by_gpuseg(p):
        foreign = next((q.name for q in sorted(p.iterdir()) if not q.name.startswith(".gpuseg-")), None)
        if foreign is not None:
            raise ConfigError(f"--out {out}: holds {foreign}, which gpuseg did not write; give an empty or new "
                              "folder (a folder a gpuseg run wrote may be used again)")
    return p


def check_outside(out: str | os.PathLike, folder: str | os.PathLike | None, what: str) -> None:
    """Refuse an output (file or folder) at or inside ``folder``: a model folder (gpuseg's
    files there break the model), or an input given as a folder, for an output file (the
    next command would read it as data; output folders carry a manifest, and readers skip
    them).

    Raises
    ------
    ConfigError
    """
    if folder is None or not str(folder).strip() or not Path(folder).expanduser().is_dir():
        return
    o, f = Path(out).expanduser().resolve(), Path(folder).expanduser().resolve()
    if o == f or o.is_relative_to(f):
        raise ConfigError(f"--out {out}: is inside {what} {folder}; choose a place outside it")


def check_output_dir(folder: Path) -> None:
    """An output folder (``plots/``, ``model/``) is replaced as a whole, so it may hold
    nothing but the files gpuseg writes there.

    Raises
    ------
    ConfigError
        The name is taken by something other than a folder, or the folder holds anything
        else (a user's own file would be lost).
    """
    if not folder.is_dir() or folder.is_symlink():
        raise ConfigError(f"{folder} is not a folder; gpuseg writes a folder of that name")
    if folder.name == "plots":
        from .plots import PLOTS

        ours = {f"{name}.png" for name in PLOTS}.__contains__
    else:
        ours = _MODEL_FILES.fullmatch
    foreign = sorted(q.name for q in folder.iterdir() if not ours(q.name) or not q.is_file() or q.is_symlink())
    if foreign:
        raise ConfigError(
            f"{folder} holds {foreign[0]}, which gpuseg did not write; gpuseg replaces that folder as a whole, "
            f"so move it away first"
        )


def _unlisted(folder: Path, names: Iterable[str]) -> list[str]:
    """The ``names`` present in ``folder`` that its manifest does not list and no commit under
    way there moves (a journal's names, settled by :func:`recover`): a user's files that carry
    gpuseg's output names. Without a readable manifest (a folder an older gpuseg wrote) none."""
    listed = _listed(folder)
    if listed is None:
        return []
    for journal in folder.glob(f".gpuseg-tmp-*/{_JOURNAL}"):
        try:
            moving = json.loads(journal.read_text())
            listed |= {str(n) for n in list(moving.get("names", [])) + list(moving.get("remove", []))}
        except (OSError, ValueError, AttributeError, TypeError):
            continue
    return [n for n in names if n not in listed and ((folder / n).exists() or (folder / n).is_symlink())]


def _listed(folder: Path) -> set[str] | None:
    """The names the folder's manifest lists; None when it has no readable manifest."""
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        return {str(n) for n in files} if isinstance(files, list) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _written_by_gpuseg(folder: Path) -> bool:
    """True when the folder's metrics.json is one a gpuseg run wrote, or the folder holds a
    gpuseg commit's manifest or an interrupted commit's journal (which recover() settles)."""
    if (folder / MANIFEST).is_file() or any(folder.glob(f".gpuseg-tmp-*/{_JOURNAL}")):
        return True
    try:
        return "gpuseg_version" in json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


#: Written last by every commit: which run the folder's files are (``run_id``) and their names.
MANIFEST = ".gpuseg-manifest.json"
#: The journal of a commit under way, inside its temporary folder.
_JOURNAL = ".journal.json"
#: The advisory lock of an output folder.
LOCK = ".gpuseg-lock"
#: Test hook: seconds to sleep between the moves of a commit (widens the window a fault test
#: kills the process in). Unset in normal use.
_PAUSE_ENV = "GPUSEG_TEST_COMMIT_PAUSE"


def write_outputs(out: str | os.PathLike, writers: Mapping[str, Callable[[Path], None]],
                  remove: Iterable[str] = ()) -> list[Path]:
    """Write every file with its writer, then move them all into ``out`` in one commit.

    All files are written into a temporary folder ``out/.gpuseg-tmp-*`` first. Then a
    journal is written there, the previous versions (and the files named in ``remove``) are
    moved aside into it while the new ones are moved in, and the folder's manifest
    (:data:`MANIFEST`, naming this commit) replaces the old one with one ``rename``: that is
    the commit point. If anything fails before it, the moves are undone here (Ctrl-C and
    SIGTERM wait while files move); if the process is killed (kill -9), the next
    :func:`recover` of the folder (``run``, ``report`` and
    ``migrate`` do it first, holding the folder's lock) undoes them from the journal. Either way the folder holds every
    new file or every old one, never a mix.

    Parameters
    ----------
    out : path
        Output folder; created when missing.
    writers : mapping
        File (or folder) name -> function writing it to the path it is given. Writers run
        in order, in the temporary folder, so a writer may read the files written before
        it (the report reads the others).
    remove : iterable of str
        gpuseg's files of an earlier run that this commit takes away (a stale report,
        model or backtest), moved aside with the rest so they go if and only if the new
        files come. A name the folder's manifest does not list is the user's file and stays.

    Raises
    ------
    ConfigError
        A file to be replaced is one the folder's manifest does not list (the user's).

    Returns
    -------
    list of Path
        The files written.
    """
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gpuseg-tmp-", dir=out))
    settled = False  # the folder is all-new or all-old and the journal says nothing more
    try:
        for name, write in writers.items():
            write(tmp / name)
        names = list(writers)
        _refuse_unlisted(out, names)
        listed = _listed(out)  # a file the manifest does not list is the user's: never taken away
        gone = [n for n in remove if n not in writers and (listed is None or n in listed)
                and ((out / n).exists() or (out / n).is_symlink())]
        had_old = [n for n in names if (out / n).exists() or (out / n).is_symlink()] + gone
        run_id = f"{os.getpid()}-{time.time_ns()}"
        manifest = json.dumps({"run_id": run_id, "files": sorted(set(_manifest_files(out)) - set(gone) | set(names))})
        (tmp / MANIFEST).write_text(manifest)
        (tmp / _JOURNAL).write_text(json.dumps({"run_id": run_id, "names": names, "remove": gone,
                                                "had_old": had_old}))
        with _signals_held():  # a second Ctrl-C or SIGTERM waits until the folder is consistent
            try:
                _move_in(out, tmp, names, gone)
                os.replace(tmp / MANIFEST, out / MANIFEST)  # the commit point
            except BaseException:
                _roll_back(out, tmp, names + gone, set(had_old))
                (tmp / _JOURNAL).unlink()
                settled = True
                raise
            (tmp / _JOURNAL).unlink()  # committed: what is left in tmp is the old files, garbage
            settled = True
        _pause()
        return [out / name for name in names]
    finally:
        if settled or not (tmp / _JOURNAL).exists():
            shutil.rmtree(tmp, ignore_errors=True)
        # else: a journal of moves not undone stays for recover()


def _refuse_unlisted(out: Path, names: list[str]) -> None:
    """Refuse to replace a file of ``names`` that the folder's manifest does not list (the
    user's, not a previous run's); nothing has moved yet.

    Raises
    ------
    ConfigError
    """
    unlisted = _unlisted(out, names)
    if unlisted:
        raise ConfigError(f"{out}: holds {unlisted[0]}, which no gpuseg run there wrote (the folder's manifest "
                          "does not list it); move it away first")


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP (delivered when the block ends) in the main thread."""
    import signal
    import threading

    sigs = {getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)}
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _manifest_files(out: Path) -> list[str]:
    try:
        return list(json.loads((out / MANIFEST).read_text()).get("files", []))
    except (OSError, ValueError, AttributeError):
        return []


def _pause() -> None:
    pause = os.environ.get(_PAUSE_ENV)
    if pause:
        time.sleep(float(pause))


def _move_in(out: Path, tmp: Path, names: list[str], gone: list[str]) -> None:
    """The old files aside into ``tmp`` as ``.previous-NAME``, the new ones in."""
    for name in gone:
        os.replace(out / name, tmp / f".previous-{name}")
        _pause()
    for name in names:
        target = out / name
        if target.exists() or target.is_symlink():
            os.replace(target, tmp / f".previous-{name}")
            _pause()
        os.replace(tmp / name, target)
        _pause()


def _roll_back(out: Path, tmp: Path, names: list[str], had_old: set[str]) -> None:
    """Undo :func:`_move_in`, any number of times: a new file that went in comes out, every
    old one goes back. A name with an old version is touched only while its old version is
    still aside (so a second undo never deletes a restored file); a name without one is
    removed only when its new file left ``tmp``."""
    for name in reversed(names):
        target, backup = out / name, tmp / f".previous-{name}"
        aside = backup.exists() or backup.is_symlink()
        came_in = not (tmp / name).exists() and (target.exists() or target.is_symlink())
        if (name in had_old and aside and came_in) or (name not in had_old and came_in):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        if aside:
            os.replace(backup, target)


def recover(out: str | os.PathLike) -> list[str]:
    """Finish what runs killed in ``out`` left: a commit that reached its commit point is
    kept (its temporary folder goes), one that did not is undone from its journal, and a
    temporary folder without a journal (killed while writing) is removed. Returns what was
    done, one line per folder. Call it holding the folder's lock (:func:`output_lock`), or
    where no run can be writing."""
    out = Path(out).expanduser()
    done = []
    if not out.is_dir():
        return done
    current = _manifest_run(out / MANIFEST)
    for tmp in sorted(out.glob(".gpuseg-tmp-*")):
        if not tmp.is_dir() or tmp.is_symlink():
            continue
        try:
            journal = json.loads((tmp / _JOURNAL).read_text())
        except (OSError, ValueError):
            journal = None
        if journal is None:
            done.append(f"removed {tmp.name}, the unfinished files of a run that was stopped")
        elif journal.get("run_id") == current:
            done.append(f"removed {tmp.name}: its run had committed")
        else:
            names = list(journal.get("names", [])) + list(journal.get("remove", []))
            had_old = set(journal.get("had_old", names))
            _roll_back(out, tmp, names, had_old)
            done.append(f"undid the interrupted commit of {tmp.name}: the previous run's files are back")
        (tmp / _JOURNAL).unlink(missing_ok=True)  # settled: never undone twice
        shutil.rmtree(tmp, ignore_errors=True)
    return done


def _manifest_run(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


@contextlib.contextmanager
def output_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold ``out``'s advisory lock (``flock`` on :data:`LOCK`) for a run; a second run
    into the same folder is refused at once. Where ``fcntl`` is missing (Windows) there is
    no lock.

    Raises
    ------
    ConfigError
        Another process holds the lock.
    """
    out = Path(out).expanduser()
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield out
        return
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise ConfigError(f"--out {out}: another gpuseg run (pid {holder}) is writing this folder; wait for it "
                              "or choose another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield out
        finally:
            if created and [p.name for p in out.iterdir()] == [LOCK]:  # a run that wrote nothing leaves nothing
                (out / LOCK).unlink(missing_ok=True)
                out.rmdir()
    finally:
        os.close(fd)  # releases the lock


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def to_json(obj: Any) -> str:
    """JSON text of plain data with NumPy scalars converted and NaN/inf as null."""
    return json.dumps(_plain(obj), indent=2, allow_nan=False) + "\n"
