"""report/figures.py: every figure of the registry drawn from a Tables made in memory.

The Tables here names no real folder and no checkpoint, so a figure that read a file would
fail: the figures only arrange what tables.build computed. A figure added to FIGURES without
an entry in CHECKS fails test_every_registered_figure_draws_from_tables_alone.
"""

import dataclasses
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from tune_ae.grids import Grid, Range
from tune_ae.report import figures, tables

WIDTHS, DROPOUTS = (32, 64), (0.0, 0.1)


def small_tables(**changes) -> tables.Tables:
    """Two widths x two dropouts, one seed, three epochs: a Tables as build returns it, made by hand."""
    epochs = pd.DataFrame([{"trial_id": f"{h}-{d}", "hidden": h, "dropout": d, "seed": 0, "epoch": e,
                            "train_loss": 0.05 / e / h ** 0.5, "val_loss": 0.06 / e / h ** 0.5}
                           for h in WIDTHS for d in DROPOUTS for e in (1, 2, 3)])
    trials = pd.DataFrame([{"trial_id": f"{h}-{d}", "hidden": h, "dropout": d, "seed": 0, "epochs_done": 3,
                            "epochs_planned": 3, "final_val_loss": 0.02 / h ** 0.5, "best_val_loss": 0.02 / h ** 0.5,
                            "status": "done", "error": None, "trial_dir": f"/nowhere/trial_{h}_{d}"}
                           for h in WIDTHS for d in DROPOUTS])
    summary = trials[["hidden", "dropout", "epochs_done", "final_val_loss", "best_val_loss", "status"]].assign(
        pca_val_mse=lambda t: 0.01 / t["hidden"] ** 0.5, dead_units=3.0, probe_accuracy=0.8)
    spread = tables.seed_spread(summary)
    rng = np.random.default_rng(0)
    images = [("original", rng.random((10, 28, 28), dtype=np.float32))]
    images += [(f"h = {h}\ndropout = {d:g}", rng.random((10, 28, 28), dtype=np.float32))
               for h in WIDTHS for d in DROPOUTS]
    meta = {"grid_name": "custom", "grid": Grid({"hidden": WIDTHS, "dropout": DROPOUTS, "epochs": (3,)}).to_dict(),
            "data": {"train_images": 3000, "test_images": 500},
            "runs": [{"command": ["tune-ae", "run"], "versions": {"torch": "2.x", "ray": "2.x"},
                      "git_commit": "abc123"}]}
    built = tables.Tables(folder=Path("/nowhere/experiment"), meta=meta, epochs=epochs, trials=trials,
                          left_out=pd.DataFrame(columns=["hidden", "dropout", "path", "reason", "trial_dir"]),
                          summary=summary, spread=spread, findings=tables.findings(spread),
                          reference={"mean_image_mse": 0.09, "raw_pixel_probe_accuracy": 0.84}, reconstructions=images)
    return dataclasses.replace(built, **changes)


def check_width(figure: Figure, built: tables.Tables) -> None:
    ax = figure.axes[0]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["PCA, k = h", "dropout 0", "dropout 0.1",
                                                                        "mean image"]
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["32", "64"]
    assert any(list(line.get_ydata()) == [0.09, 0.09] for line in ax.get_lines())  # the mean image's ceiling


def check_loss_curves(figure: Figure, built: tables.Tables) -> None:
    assert [ax.get_title() for ax in figure.axes] == ["dropout = 0", "dropout = 0.1"]  # a panel per dropout
    assert len(figure.axes[0].get_lines()) == len(WIDTHS) * 2  # train and validation per width
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["h = 32", "h = 64", "validation", "train"]


def check_reconstructions(figure: Figure, built: tables.Tables) -> None:
    (ax,) = figure.axes
    assert ax.get_images()[0].get_array().shape == (5 * 30, 10 * 30)  # 1 + 4 rows of 10 tiles, 28 + 2 pixels each
    assert [t.get_text() for t in ax.get_yticklabels()] == [label for label, _ in built.reconstructions]


def search_tables() -> tables.Tables:
    """A random search of lr and output activation, 3 samples at each of two widths."""
    grid = Grid({"hidden": WIDTHS, "output_activation": ("relu", "sigmoid")}, ranges={"lr": Range(1e-4, 1e-2, log=True)},
                search="random", num_samples=3)
    summary = pd.DataFrame([{"hidden": c.hidden, "lr": c.lr, "output_activation": c.output_activation,
                             "epochs_done": 3, "final_val_loss": 0.02 / c.hidden ** 0.5 * (1 + abs(c.lr - 3e-3) * 100),
                             "best_val_loss": 0.02, "status": "done", "pca_val_mse": 0.01 / c.hidden ** 0.5}
                            for c in grid.trial_configs()])
    built = small_tables()
    return dataclasses.replace(built, meta={**built.meta, "grid": grid.to_dict()}, summary=summary,
                               search=tables.search_table(summary, grid), importance=tables.importance(summary, grid))


def check_search(figure: Figure, built: tables.Tables) -> None:
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title().split(":")[0] for ax in panels] == ["h = 32", "h = 64"]  # a panel per point
    assert all(sum(line.get_linewidth() > 0.5 for line in ax.get_lines()) == 3 for ax in panels)  # a line per sample
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["lr\n0.0001:0.01:log", "output_activation\nrelu/sigmoid"]
    best = built.search.set_index("hidden")["x_pca"]
    assert panels[0].get_title().endswith(f"best {best[32]:.3g}x PCA")


CHECKS = {"val_loss_vs_width": check_width, "loss_curves": check_loss_curves,
          "reconstructions": check_reconstructions, "search": check_search}
BUILT = {"search": search_tables}  # figures that need a search's tables; the rest draw from small_tables


@pytest.mark.parametrize("entry", figures.FIGURES, ids=lambda entry: entry.stem)
def test_every_registered_figure_draws_from_tables_alone(entry):
    built = BUILT.get(entry.stem, small_tables)()
    assert entry.applies(built)
    figure = entry.draw(built)
    try:
        assert isinstance(figure, Figure)
        CHECKS[entry.stem](figure, built)
        figure.savefig(io.BytesIO(), format="png", dpi=figures.SCREEN_DPI)  # renders, in memory
    finally:
        figures.plt.close(figure)


def test_the_registry():
    stems = [entry.stem for entry in figures.FIGURES]
    assert sorted(stems) == sorted(CHECKS) and len(set(stems)) == len(stems)
    assert [entry.stem for entry in figures.FIGURES if not entry.vector] == ["reconstructions"]  # pixels: no PDF
    nothing_finished = small_tables(spread=small_tables().spread.iloc[:0])
    assert [entry.stem for entry in figures.FIGURES if not entry.applies(nothing_finished)] == ["val_loss_vs_width",
                                                                                               "search"]  # a grid


def test_a_searchs_loss_curves_are_a_line_per_sample_and_it_has_no_width_figure():
    """A search's samples share no configuration: nothing to average, no line per configuration."""
    built = search_tables()
    figure = figures.loss_curves(built)
    try:
        (ax,) = figure.axes
        assert len(ax.get_lines()) == built.epochs["trial_id"].nunique()
    finally:
        figures.plt.close(figure)
    assert not next(e for e in figures.FIGURES if e.stem == "val_loss_vs_width").applies(built)
