"""`tune-ae dashboard EXPERIMENT [--port P]` (also `python -m tune_ae.dashboard`): a live page.

optuna-dashboard serves the experiment's Optuna journal (journal.py), which the sweep's driver
writes as results arrive: every trial with its status and parameters, val_loss per epoch as
learning curves, the history, and for more than one swept field parallel coordinates and
parameter importance. A thin page at / links it with the report's figures and report.md once
they are written. A folder without a journal (an older experiment), or with one cut short,
gets it rebuilt from its tables.

Bound to 127.0.0.1: from a laptop, forward the port over SSH (`ssh -L 8080:localhost:8080
HEAD`). There is no login: a --host that is not loopback says so. Exit codes: 0 stopped with
Ctrl-C, 2 bad input (no experiment there, the port in use, optuna-dashboard missing).
"""

from __future__ import annotations

import errno
import html
import signal
import sys
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tune_ae import journal, lock
from tune_ae.args import OK, USAGE_ERROR, Parser, exit_now
from tune_ae.config import ConfigError
from tune_ae.experiment import META_FILE, read_meta, recorded_grid

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SHOWN_FILES = ("report.md", "trials.csv", "epochs.csv", "spread.csv")  # and figures/*: what / links to


def build_parser(prog: str = "python -m tune_ae.dashboard") -> Parser:
    p = Parser(prog=prog, description="A live page of an experiment (running, interrupted or finished): trials, "
               "learning curves, parallel coordinates and importance (optuna-dashboard), and the report once written. "
               "Stop it with Ctrl-C.")
    p.add_argument("experiment", help="the experiment folder (STORAGE_PATH/NAME)")
    p.add_argument("--port", type=int, default=8080, help="port to serve on (default 8080)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1, this machine only; anything else serves every machine "
                        "that reaches this one, without a login)")
    return p


def check(folder: Path, port: int) -> None:
    if not (folder / META_FILE).is_file():
        raise ConfigError(f"{folder} is not a tune_ae experiment (no {META_FILE}); give STORAGE_PATH/NAME of one")
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {port}")
    read_meta(folder)  # a record that does not read is one line here, not a traceback later


def sweep_running(folder: Path) -> bool:
    try:
        lock.check_free(folder)
        return False
    except ConfigError:
        return True


def ensure_journal(folder: Path) -> None:
    """A journal the page can show: rebuilt from the tables when missing or cut short, unless a
    sweep is running there (its driver writes it: it rebuilds one it finds cut short itself)."""
    if not journal.readable(folder) and not sweep_running(folder):
        journal.rebuild(folder, recorded_grid(read_meta(folder)))


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


def app_for(folder: Path):
    """optuna-dashboard's app for the folder's journal, with the thin page at / and the folder's
    report files under /files/."""
    import optuna
    from bottle import HTTPError, static_file
    from optuna_dashboard import wsgi

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = journal.open_storage(folder)
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
        return serve_experiment(args)
    except KeyboardInterrupt:  # Ctrl-C whenever it comes, serving or still starting: a stop, not a traceback
        print("dashboard stopped", flush=True)
        return OK


def serve_experiment(args) -> int:
    folder = Path(args.experiment).expanduser().resolve()
    try:
        check(folder, args.port)
        try:
            import optuna_dashboard
        except ImportError:
            raise ConfigError("optuna-dashboard is not installed; pip install optuna-dashboard (a dependency of "
                              "tune_ae: reinstall it)") from None
        del optuna_dashboard  # imported here to say so in one line; app_for uses it
        ensure_journal(folder)
        app = app_for(folder)
        server = make_server(args.host, args.port, app, server_class=ThreadedServer, handler_class=QuietHandler)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
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
        print(f"dashboard of {folder.name}: http://{host}:{server.server_port}/  (Ctrl-C stops it)", flush=True)
        serve_until_interrupted(server)
    finally:
        server.server_close()
    return OK


if __name__ == "__main__":
    exit_now(main())
