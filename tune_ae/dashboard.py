"""`tune-ae dashboard EXPERIMENT|STORAGE [--port P]` (also `python -m tune_ae.dashboard`): a live page.

Given a folder of experiments (a storage path) it serves storage_page.py's page of all of them
instead; what follows is the page of one experiment.

optuna-dashboard serves the experiment's Optuna journal (journal.py), which the sweep's driver
writes as results arrive: every trial with its status and parameters, val_loss per epoch as
learning curves, the history, and for more than one swept field parallel coordinates and
parameter importance. A thin page at / links it with the report's figures and report.md once
they are written. A folder without a journal (an older experiment), with one cut short, or
with one behind its tables, gets it rebuilt from its tables; a folder that cannot be written
(read-only) gets it rebuilt in a temporary file instead, removed when the page stops, and the
page then shows the tables as they are, not live.

Bound to 127.0.0.1: from a laptop, forward the port over SSH (`ssh -L 8080:localhost:8080
HEAD`). There is no login: a --host that is not loopback says so. Either page only reads:
every request that is not a GET or HEAD is refused (403). `--stop-with PID` stops the
page when process PID ends, however it ends (run --dashboard names its driver). Exit codes: 0
stopped with Ctrl-C or by --stop-with, 2 bad input (no experiment there, the port in use,
optuna-dashboard missing, a journal that cannot be written).
"""

from __future__ import annotations

import errno
import html
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tune_ae import journal, lifeline, lock, ray_internals
from tune_ae.args import OK, USAGE_ERROR, Parser, exit_now
from tune_ae.config import ConfigError
from tune_ae.experiment import META_FILE, has_record, read_meta, recorded_grid

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SHOWN_FILES = ("report.md", "trials.csv", "epochs.csv", "spread.csv")  # and figures/*: what / links to
NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)  # a folder the page reads but cannot write


def build_parser(prog: str = "python -m tune_ae.dashboard") -> Parser:
    p = Parser(prog=prog, description="A live page of an experiment (running, interrupted or finished): trials, "
               "learning curves, parallel coordinates and importance (optuna-dashboard), and the report once written. "
               "Stop it with Ctrl-C.")
    p.add_argument("experiment", help="the experiment folder (STORAGE_PATH/NAME), or a storage path: one page of "
                                      "all its experiments, each opening its own, and a compare view")
    p.add_argument("--port", type=int, default=8080, help="port to serve on (default 8080)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1, this machine only; anything else serves every machine "
                        "that reaches this one, without a login)")
    p.add_argument("--stop-with", type=int, metavar="PID",
                   help="stop (as Ctrl-C does) when process PID ends, however it ends; `run --dashboard` passes "
                        "the sweep's driver, so that the page does not outlive it")
    return p


def check(folder: Path, port: int, stop_with: int | None = None) -> None:
    if not has_record(folder):
        raise ConfigError(f"{folder} is not a tune_ae experiment (no {META_FILE}) nor a folder of experiments; "
                          "give STORAGE_PATH/NAME of one, or the storage path")
    check_port(port, stop_with)
    read_meta(folder)  # a record that does not read is one line here, not a traceback later


def check_port(port: int, stop_with: int | None = None) -> None:
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {port}")
    if stop_with is not None and stop_with <= 0:  # 0 and below name process groups to os.kill, not a process
        raise ConfigError(f"--stop-with takes a process id (a positive integer), got {stop_with}")


def journal_to_serve(folder: Path) -> tuple[Path, bool]:
    """(the journal file the page serves, whether it is a temporary one the caller removes).

    The folder's own journal, rebuilt from the tables when missing, cut short or behind them,
    unless a sweep is running there (its driver writes it: it rebuilds one it finds so itself).
    A folder that cannot be written gets the rebuilt journal in a temporary folder instead, and
    one line saying that the page shows the tables as they are, not live."""
    if lock.held(folder) or journal.current(folder):
        return journal.path(folder), False
    grid = recorded_grid(read_meta(folder))
    try:
        journal.rebuild(folder, grid)
        return journal.path(folder), False
    except OSError as err:
        if err.errno not in NOT_WRITABLE:
            raise
        why = err.strerror
    file = Path(tempfile.mkdtemp(prefix="tune_ae-dashboard-")) / journal.JOURNAL
    try:
        journal.rebuild(folder, grid, file)
    except BaseException:  # Ctrl-C or a full /tmp: nothing left behind
        shutil.rmtree(file.parent, ignore_errors=True)
        raise
    print(f"warning: {folder} is read-only here ({why}): the page shows its tables as they are now, not live "
          "(from a journal rebuilt in a temporary file)", file=sys.stderr, flush=True)
    return file, True


def index_page(folder: Path, study_id: int | None) -> str:
    """The thin page: where each part is. Everything it shows is a link or an image of the folder."""
    name = html.escape(folder.name)
    live = f"/dashboard/studies/{study_id}" if study_id is not None else "/dashboard"
    files = [f for f in SHOWN_FILES if (folder / f).is_file()]
    figures = sorted(p.name for p in (folder / "figures").glob("*.png")) if (folder / "figures").is_dir() else []
    items = "".join(f'<li><a href="/files/{f}">{f}</a></li>' for f in files) or "<li>not written yet</li>"
    images = "".join(f'<h3>{html.escape(f)}</h3><img src="/files/figures/{f}" style="max-width:100%">' for f in figures)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tune_ae: {name}</title></head>
<body style="font-family: sans-serif; max-width: 70em; margin: 1em auto">
<h1>Experiment {name}</h1>
<p><a id="live" href="{live}">Live view</a>: every trial with its status and hyperparameters, val_loss per epoch
(learning curves), history, parallel coordinates and parameter importance (optuna-dashboard; it refreshes itself).</p>
<h2>Report</h2><ul>{items}</ul>
{images}
<p>Tune's own TensorBoard files are in every trial folder: <code>tensorboard --logdir {html.escape(str(folder))}</code>.</p>
</body></html>"""


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # a line per request would bury the address
        pass


class ThreadedServer(ThreadingMixIn, WSGIServer):
    """A thread per request (as optuna-dashboard's own command serves): a client that connects and
    sends nothing, or a slow one, holds up only itself."""

    daemon_threads = True  # an open request never holds up the exit


def serve_until_interrupted(server) -> None:
    """Serve from a thread while this (main) thread waits for Ctrl-C. wsgiref catches every
    exception a request raises, KeyboardInterrupt too: served from the main thread, a Ctrl-C that
    lands while a request is handled (the live view polls every few seconds) would be swallowed."""
    failed = []

    def serve():
        try:
            server.serve_forever()
        except BaseException as err:  # raised again below, in this thread: not an exit 0
            failed.append(err)

    serving = threading.Thread(target=serve, name="dashboard", daemon=True)
    serving.start()
    try:
        while serving.is_alive():
            serving.join(0.5)  # a timed wait: Ctrl-C interrupts it
    finally:
        server.shutdown()
    if failed:
        raise failed[0]


def app_for(folder: Path, file: Path | None = None):
    """optuna-dashboard's app for the folder's journal (or `file`, one rebuilt elsewhere), with the
    thin page at / and the folder's report files under /files/."""
    import optuna
    from bottle import HTTPError, static_file
    from optuna_dashboard import wsgi

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = journal.open_storage(folder, file)
    app = wsgi(storage)

    def study_id():
        try:
            return storage.get_study_id_from_name(folder.name)
        except KeyError:  # the driver has not written it yet
            return None

    @app.get("/")
    def index():
        return index_page(folder, study_id())

    @app.get("/files/<name:path>")
    def files(name):
        if name not in SHOWN_FILES and not (name.startswith("figures/") and name.count("/") == 1):
            raise HTTPError(404, "not a report file")
        return static_file(name, root=str(folder))

    return app


def main(argv: list[str] | None = None, prog: str = "python -m tune_ae.dashboard") -> int:
    # Python leaves SIGINT ignored when it starts so (e.g. a shell script's background job, where
    # the shell ignores it for the job): Ctrl-C, or a `kill -INT`, would then do nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return serve(args)
    except KeyboardInterrupt:  # Ctrl-C whenever it comes, serving or still starting: a stop, not a traceback
        # One stop: a second SIGINT (--stop-with's, a second Ctrl-C) would cut this one short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        say("dashboard stopped")
        return OK


def say(line: str) -> None:
    """Print `line` on stdout. With no one reading it any more (the driver that started the page,
    and the pipe it read, gone), the line and all later output go to /dev/null instead of
    failing the stop."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def start_checks(args) -> None:
    """What either page does before its slow part: --stop-with's watch (a driver gone meanwhile
    stops it too), and optuna-dashboard there, or one line saying so."""
    if args.stop_with is not None:
        lifeline.stop_with(args.stop_with)
    try:
        import optuna_dashboard
    except ImportError:
        raise ConfigError("optuna-dashboard is not installed; pip install optuna-dashboard (a dependency of "
                          "tune_ae: reinstall it)") from None
    del optuna_dashboard  # imported here to say so in one line; the app is built from it later


def serve(args) -> int:
    """One experiment's page, or, for a folder of experiments, the storage page (storage_page.py)."""
    folder = Path(args.experiment).expanduser().resolve()
    trial_folder = (folder / ray_internals.PARAMS_FILE).exists()  # a trial's folder is not a storage path
    if not has_record(folder) and folder.is_dir() and not (folder / META_FILE).parent.is_dir() and not trial_folder:
        return serve_storage(folder, args)
    return serve_experiment(folder, args)


def read_only(app) -> None:
    """Refuse every request that would change something (optuna-dashboard's deleting a study,
    telling a trial, saving a note): only a sweep's driver writes its experiment."""
    from bottle import HTTPError, request

    def refuse():
        if request.method not in ("GET", "HEAD"):
            raise HTTPError(403, "this page is read-only: only a sweep's driver writes its experiment")

    app.add_hook("before_request", refuse)


def serve_storage(root: Path, args) -> int:
    """The page of every experiment under `root` until Ctrl-C."""
    try:
        check_port(args.port, args.stop_with)
        start_checks(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    from optuna_dashboard import wsgi

    from tune_ae import storage_page
    from tune_ae.many_journals import ExperimentsStorage

    scratch = Path(tempfile.mkdtemp(prefix="tune_ae-dashboard-"))
    try:
        storage = ExperimentsStorage(root)
        app = wsgi(storage)
        storage_page.add_routes(app, root, storage, scratch)
        return serve_app(app, f"the experiments in {root}", args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def serve_experiment(folder: Path, args) -> int:
    try:
        check(folder, args.port, args.stop_with)
        start_checks(args)
        file, temporary = journal_to_serve(folder)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as err:  # rebuilding the journal: a full disk, an I/O error
        print(f"error: cannot rebuild the page's journal: {err.filename or journal.path(folder)}: {err.strerror}",
              file=sys.stderr)
        return USAGE_ERROR
    try:
        return serve_journal(folder, file, args)
    finally:
        if temporary:
            shutil.rmtree(file.parent, ignore_errors=True)


def serve_journal(folder: Path, file: Path, args) -> int:
    """Serve the page of `folder` from the journal `file` until Ctrl-C."""
    return serve_app(app_for(folder, file), folder.name, args)


def serve_app(app, what: str, args) -> int:
    """Serve `app`, read-only, on --host and --port until Ctrl-C."""
    read_only(app)
    try:
        server = make_server(args.host, args.port, app, server_class=ThreadedServer, handler_class=QuietHandler)
    except OSError as err:
        if err.errno in (errno.EADDRINUSE, errno.EACCES):
            print(f"error: port {args.port} on {args.host} is {'in use' if err.errno == errno.EADDRINUSE else 'not allowed'}; "
                  "pass --port with a free one", file=sys.stderr)
        else:
            print(f"error: cannot serve on {args.host}:{args.port} ({err.strerror})", file=sys.stderr)
        return USAGE_ERROR
    try:
        if args.host not in LOOPBACK:
            print(f"warning: serving on {args.host}: every machine that reaches this one sees the experiment, with no "
                  "login; prefer the default 127.0.0.1 and an SSH port forward", file=sys.stderr)
        host = f"[{args.host}]" if ":" in args.host else args.host
        say(f"dashboard of {what}: http://{host}:{server.server_port}/  (Ctrl-C stops it)")
        serve_until_interrupted(server)
    finally:
        server.server_close()
    return OK


if __name__ == "__main__":
    exit_now(main())
