"""The page of a storage path (`tune-ae dashboard STORAGE`): every experiment in one table,
each opening its own curves, and a compare view of those selected.

- `/`: `tune-ae list`'s table (catalog.py), redrawn every 5 s from `/rows` (a selection
  survives the redraw); each name opens the experiment's learning curves, trials and
  importance in optuna-dashboard, served from many_journals.ExperimentsStorage.
- `/experiments/NAME`: opens the experiment's study, from its own journal, or, where that is
  missing, cut short or behind its tables, from one rebuilt from them in this page's scratch
  folder (never in the experiment).
- `/compare?e=A&e=B`: report/comparison.py's table and figures for the experiments selected.

Every request that is not a GET or HEAD is refused (dashboard.read_only): the page writes
nothing into the experiments.
"""

from __future__ import annotations

import functools
import hashlib
import html
import io
import os
import threading
from pathlib import Path
from urllib.parse import quote

from tune_ae import catalog, journal, lock
from tune_ae.catalog import best_cell, duration
from tune_ae.experiment import LEGACY_META_FILE, META_FILE, read_meta, recorded_grid
from tune_ae.record import TRIALS_FILE

REFRESH_S = 5
DRAWING = threading.Lock()  # pyplot is not thread-safe, and the server answers each request in a thread


def readable(text: str) -> str:
    """`text` with any bytes of a name that is not UTF-8 shown as U+FFFD: the page is sent as UTF-8."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def row_cells(entry: catalog.Entry) -> str:
    name = html.escape(readable(entry.name))
    usable = readable(entry.name) == entry.name  # a name that is not UTF-8 cannot go into a link
    link = f'<a class="open" href="/experiments/{quote(entry.name)}">{name}</a>' if entry.kind and usable else name
    status = html.escape(readable(entry.status + (f" ({entry.why})" if entry.why else "")))
    box = (f'<input type="checkbox" name="e" value="{name}">' if entry.best and usable else "")
    cells = [box, link, html.escape(entry.kind or "-"), f'<span class="status">{status}</span>',
             f"{entry.finished}/{entry.total}" if entry.total else "-",
             "<br>".join(html.escape(part) for part in best_cell(entry).split("  ")),
             html.escape(entry.started[:19].replace("T", " ") or "-"), html.escape(entry.host or "-"),
             duration(entry.duration_s)]
    return f'<tr data-name="{name}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def rows_html(root: Path) -> str:
    return "".join(row_cells(e) for e in catalog.scan(root)) or '<tr><td colspan="9">no experiments yet</td></tr>'


def index_page(root: Path) -> str:
    where = html.escape(readable(str(root)))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tune_ae: {where}</title>
<style>body {{font-family: sans-serif; margin: 1em 2em}} td, th {{padding: 0.2em 0.6em; text-align: left}}
tr:nth-child(even) {{background: #f3f3f3}} td {{vertical-align: top}} td:nth-child(7) {{white-space: nowrap}}</style></head>
<body><h1>Experiments in {where}</h1>
<p>Every experiment under this folder, newest first, from its records; redrawn every {REFRESH_S} s. A name opens
its learning curves, trials and importance; tick two or more finished ones and compare them.</p>
<form action="/compare" method="get">
<table><thead><tr><th></th><th>name</th><th>kind</th><th>status</th><th>trials finished</th>
<th>best final val_loss by width (x PCA at k = h)</th><th>started (UTC)</th><th>host</th><th>ran</th></tr></thead>
<tbody id="rows">{rows_html(root)}</tbody></table>
<p><button id="compare" type="submit">compare selected</button></p></form>
<script>
setInterval(async () => {{
  const ticked = new Set([...document.querySelectorAll('input[name=e]:checked')].map(b => b.value));
  const reply = await fetch('/rows');
  if (!reply.ok) return;
  document.getElementById('rows').innerHTML = await reply.text();
  document.querySelectorAll('input[name=e]').forEach(b => {{ b.checked = ticked.has(b.value); }});
}}, {REFRESH_S * 1000});
</script></body></html>"""


def compare_page(names: list[str], rows: list[list[str]]) -> str:
    """The compare view: `rows` is report/comparison.table's (a header row, then a row per width)."""
    query = "&".join(f"e={quote(n)}" for n in names)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tune_ae: compare</title></head>
<body style="font-family: sans-serif; margin: 1em 2em"><p><a href="/">all experiments</a></p>
<h1>Compared: {html.escape(", ".join(names))}</h1>
<p>Each width's best final val_loss, and its multiple of PCA's error at k = h (the best linear code of that width).</p>
<table id="compared"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Best final val_loss against h</h2><img id="final" src="/compare/final_vs_h.png?{query}" style="max-width:100%">
<h2>Loss curves, side by side</h2><img id="curves" src="/compare/curves.png?{query}" style="max-width:100%">
</body></html>"""


def stamps(folder: Path) -> tuple:
    """What a comparison of `folder` depends on, by modification time: its record and its tables."""
    found = []
    for name in (META_FILE, LEGACY_META_FILE, TRIALS_FILE, "trials.parquet", "epochs.parquet"):
        try:
            found.append((folder / name).stat().st_mtime_ns)
        except OSError:
            found.append(None)
    return tuple(found)


@functools.lru_cache(maxsize=16)  # a compare view asks for it three times (the table and two figures)
def cached_best(key: tuple):
    from tune_ae.report import comparison

    return comparison.best_by_width([folder for folder, *_ in key])


def figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def chosen(root: Path, names: list[str]) -> list[Path]:
    """The experiment folders a compare request names: of `root`, each with a record that reads."""
    from bottle import HTTPError

    names = list(dict.fromkeys(names))
    folders = [root / n for n in names if n and "/" not in n and not n.startswith(".")]
    if not folders or len(folders) < len(names) or not all(catalog.describe(f).kind for f in folders):
        raise HTTPError(404, "choose experiments of this folder (ones whose record reads) to compare")
    return folders


def best_of(folders: list[Path]):
    """report/comparison.best_by_width, computed once per state of the folders' records and tables."""
    from bottle import HTTPError

    try:
        return cached_best(tuple((f, *stamps(f)) for f in folders))
    except Exception as err:  # tables or data that do not read: said, and the page stands
        raise HTTPError(409, f"cannot compare: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")


def add_routes(app, root: Path, storage, scratch: Path) -> None:
    """The storage page's routes on optuna-dashboard's app `app`, whose storage is `storage`
    (a many_journals.ExperimentsStorage of `root`); journals of folders the page cannot write
    are rebuilt in `scratch`."""
    from bottle import HTTPError, HTTPResponse, redirect, request

    @app.get("/")
    def index():
        return index_page(root)

    @app.get("/rows")
    def rows():
        return rows_html(root)

    @app.get("/experiments/<name>")
    def open_experiment(name):
        folder = root / name
        if "/" in name or name.startswith(".") or not folder.is_dir():
            raise HTTPError(404, "no such experiment")
        try:
            if lock.held(folder) or journal.current(folder):  # a running sweep's driver writes its own
                storage.files.pop(name, None)
            else:  # missing, cut short or behind its tables: rebuilt here, never in the experiment
                file = storage.files.setdefault(name, scratch / f"{hashlib.sha1(os.fsencode(name)).hexdigest()}.journal")
                journal.rebuild(folder, recorded_grid(read_meta(folder)), file)
            storage.opened.pop(name, None)
            storage.scanned = (-1.0, [])
            study_id = storage.get_study_id_from_name(name)
        except Exception as err:  # a record or journal that does not read: said, and the rest of the page stands
            raise HTTPError(409, f"{name} cannot be shown: {type(err).__name__}: {err}")
        redirect(f"/dashboard/studies/{study_id}")

    @app.get("/compare")
    def compare():
        from tune_ae.report import comparison

        folders = chosen(root, request.query.getall("e"))
        return compare_page(comparison.names(folders), comparison.table(best_of(folders)))

    @app.get("/compare/<figure>.png")
    def compare_figure(figure):
        from tune_ae.report import comparison

        folders = chosen(root, request.query.getall("e"))
        if figure not in ("final_vs_h", "curves"):
            raise HTTPError(404, "no such figure")
        best = best_of(folders)
        try:
            with DRAWING:
                fig = (comparison.final_against_width(best) if figure == "final_vs_h"
                       else comparison.curves_side_by_side(folders, best))
                png = figure_png(fig)
        except Exception as err:  # an experiment removed or cut short since the table was read
            raise HTTPError(409, f"cannot draw: {type(err).__name__}: {err}")
        return HTTPResponse(png, headers={"Content-Type": "image/png"})
