"""Some of the report's plots drawn in a second process, on a second core.

The report's 8 matplotlib figures took 4-5 s of a 17-21 s default run on 2 cores, one
after the other in one process, while the second core was idle. :class:`PlotWorker` is a
plain Python process (``python -I -c ...`` with the run's import path, not :mod:`multiprocessing`: no
fork of a process with OpenMP threads, and a user's unguarded script is never imported
again) started when the run starts. It imports the plotting code while the run loads and
clusters, then waits for one job on its stdin: an output folder and the names
of the plots to draw (:data:`WORKER_PLOTS`); both processes read the folder's files,
insights.json included. It answers on its stdout with each plot's PNG
(or the reason it was skipped) and exits. The run draws the other plots itself meanwhile.

The pictures are the same bytes either way (the same code and matplotlib in both processes,
tested). The worker is used only where it can help and cannot change a picture: with at
least 2 CPU threads for the run, and when matplotlib was not imported before the run (in a
notebook whose style was changed the run draws everything itself, in that style). Whatever
goes wrong with it (no start, a crash, no answer within :data:`TIMEOUT_S`) the run draws
the worker's plots itself; the process is killed when the run ends, however it ends.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Sequence

__all__ = ["PlotWorker", "WORKER_PLOTS", "TIMEOUT_S", "usable"]

#: The plots the worker draws; about half the drawing time on the built-in data (the
#: weekday x hour grids and the heatmap are the slowest two, 0.7-1.0 s each).
WORKER_PLOTS = ("activity", "heatmap", "comparison")
#: Seconds the run waits for the worker's answer before drawing those plots itself.
TIMEOUT_S = 300.0


def usable(threads: int | None, report: bool) -> bool:
    """Whether a run should start a worker: a report, 2 or more CPU threads (the caller
    counts only threads that have a usable core of their own), matplotlib installed but not
    imported yet (its settings could differ from a fresh process's), and a plain Python
    interpreter to start it with."""
    import importlib.util

    if not report or (threads or 1) < 2 or "matplotlib" in sys.modules:
        return False
    exe = os.path.basename(sys.executable or "")
    if getattr(sys, "frozen", False) or not exe.lower().startswith("python"):  # uWSGI, PyInstaller, ...
        return False
    return importlib.util.find_spec("matplotlib") is not None


#: The child's code: the run's own import path (not the working folder's, not PYTHONPATH
#: before the standard library), then the worker.
_BOOT = ("import json, os, sys; sys.path[:] = json.loads(os.environ['GPUSEG_WORKER_PATH']); "
         "from gpuseg.report.worker import _serve; sys.exit(_serve())")


class PlotWorker:
    """A process with the plotting code imported, waiting for one job (module doc)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self._proc = proc

    @classmethod
    def start(cls) -> "PlotWorker | None":
        """Start the process; None when it cannot be started."""
        env = dict(os.environ, GPUSEG_WORKER_PATH=json.dumps([p for p in sys.path if isinstance(p, str)]))
        # one thread each: drawing gains nothing from more, and the run keeps its cores
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # Windows: no console window
        try:
            proc = subprocess.Popen([sys.executable, "-I", "-c", _BOOT], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                    creationflags=flags)
        except OSError:
            return None
        return cls(proc)

    def submit(self, out_dir: str | os.PathLike, include: Sequence[str]) -> bool:
        """Send the job: draw ``include`` from ``out_dir`` (its insights.json included).
        False when the worker cannot take it (it is then stopped)."""
        job = (json.dumps({"out_dir": str(out_dir), "include": list(include)}) + "\n").encode("utf-8")
        stdin = self._proc.stdin
        try:
            stdin.write(job)
            stdin.close()  # the end of the job: the worker starts drawing now
        except (OSError, ValueError):
            self.close()
            return False
        finally:
            self._proc.stdin = None  # closed: communicate() must not flush it again
        return True

    def collect(self, timeout: float = TIMEOUT_S) -> dict[str, bytes | str] | None:
        """The submitted plots (name -> PNG bytes or the reason it was skipped), or None
        when the worker gave no answer in time (it is then stopped) or failed."""
        try:
            out, _ = self._proc.communicate(timeout=timeout)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            self.close()
            return None
        if self._proc.returncode != 0:
            return None
        try:
            answer = json.loads(out.decode("utf-8").strip().splitlines()[-1])
            return {name: base64.b64decode(v["png"]) if "png" in v else str(v["skipped"])
                    for name, v in answer.items()}
        except (ValueError, IndexError, KeyError, TypeError, AttributeError):
            return None

    def close(self) -> None:
        """Stop the process if it still runs (idempotent)."""
        if self._proc.poll() is None:
            self._proc.kill()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
                pass
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()


def _serve() -> int:
    """The worker's side: import, wait for the job, draw, answer on stdout."""
    try:  # the run's own work first, should the two ever compete for a core
        os.nice(5)
    except (AttributeError, OSError):  # Windows; a forbidden nice
        pass
    from .plots import _figure, _png, make_plots

    _png(_figure(1.0, 1.0), None)  # load the fonts while the run is busy with its own stages
    # one line: a forked process that still holds the pipe cannot delay the end of input
    line = sys.stdin.buffer.readline()
    if not line.strip():  # the run ended without a report
        return 0
    job = json.loads(line.decode("utf-8"))
    plots = make_plots(job["out_dir"], include=job["include"])
    answer = {name: {"png": base64.b64encode(v).decode("ascii")} if isinstance(v, bytes) else {"skipped": v}
              for name, v in plots.items()}
    sys.stdout.write("\n" + json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process by PlotWorker
    sys.exit(_serve())
