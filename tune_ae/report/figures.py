"""The report's figures: each a function from Tables to a matplotlib Figure, and FIGURES, the
one list that report.md, the report command and the notebook go through.

A figure only draws: its numbers and images come computed in Tables (tables.build), and the
writer saves it (report/write.py). A new figure is a function here, a line in FIGURES and
a test in tests/test_report_figures.py; report.md gets its section from the line.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from tune_ae import labels
from tune_ae.experiment import recorded_grid
from tune_ae.report.tables import RECONSTRUCTION_SEED, Tables, finished_samples, spread_columns

SCREEN_DPI = 100  # the PNGs are for report.md on a screen; print from the PDFs (vector)
PIXEL_SCALE = 2  # screen pixels per image pixel in the reconstructions sheet


def loss_curves(tables: Tables) -> Figure:
    """Train (dashed) and validation (solid) MSE per epoch, a colour per width.

    One panel per value of the first two other fields the grid varies (e.g. dropout x lr);
    seeds are averaged, with a band of one standard deviation when there are several.
    Plain matplotlib: seaborn's relplot took a second and a half to lay out nine panels.
    """
    epochs = tables.epochs
    if recorded_grid(tables.meta).searched():
        return search_curves(tables)
    panels = labels.varying(epochs, tuple(name for name in labels.OTHER_FIELDS if name != "seed"))[:2]
    columns = sorted(epochs[panels[0]].unique()) if panels else [None]
    rows = sorted(epochs[panels[1]].unique()) if len(panels) > 1 else [None]
    widths = sorted(epochs["hidden"].unique())
    colours = dict(zip(widths, plt.cm.viridis(np.linspace(0, 0.9, len(widths)))))
    # (panel values..., hidden, epoch) -> mean and sd over whatever else differs (seeds)
    stats = epochs.groupby([*panels, "hidden", "epoch"])[["train_loss", "val_loss"]].agg(["mean", "std"])
    # Not sharex/sharey: matplotlib lays out shared axes' labels pairwise, seconds for a 3 x 3 grid;
    # the same limits everywhere (below) and labels on the outer panels only read the same.
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(4.7 * len(columns) + 1.3, 3.6 * len(rows)),
                             squeeze=False)
    for key, curve in stats.groupby(level=[*panels, "hidden"]):
        *where, hidden = key if isinstance(key, tuple) else (key,)
        ax = axes[rows.index(where[1]) if len(where) > 1 else 0, columns.index(where[0]) if where else 0]
        curve = curve.droplevel(list(range(len(where) + 1)))  # index: epoch
        for split, style in (("val_loss", "-"), ("train_loss", "--")):
            mean, sd = curve[(split, "mean")], curve[(split, "std")]
            ax.plot(curve.index, mean, style, color=colours[hidden])
            if sd.notna().any():
                ax.fill_between(curve.index, mean - sd, mean + sd, color=colours[hidden], alpha=0.2, linewidth=0)
    means = stats.xs("mean", axis=1, level=1).stack()
    means = means[np.isfinite(means) & (means > 0)]  # a diverged trial (nan, inf) has no place on a log axis
    for (i, row), (j, column) in itertools.product(enumerate(rows), enumerate(columns)):
        ax = axes[i, j]
        ax.set_yscale("log")
        if len(means):
            ax.set_ylim(means.min() / 1.1, means.max() * 1.1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.label_outer()
        # An explicit y keeps matplotlib from placing each title by measuring the axes below it.
        ax.set_title(labels.panel_title(panels, (column, row)), fontsize=10, y=1.0)
    handles = [Line2D([], [], color=colours[h], label=labels.trial_label({"hidden": h}, [])) for h in widths]
    handles += [Line2D([], [], color="k", linestyle="-", label="validation"),
                Line2D([], [], color="k", linestyle="--", label="train")]
    fig.legend(handles=handles, loc="center right", frameon=False)
    fig.supxlabel("epoch")
    fig.supylabel("MSE per pixel (log scale)")
    # Margins set here in inches (legend on the right), not found by a tight bounding box:
    # that costs another full draw of every log axis, the slowest part of saving this figure.
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.95 / width, right=1 - 1.3 / width, bottom=0.6 / height, top=1 - 0.35 / height)
    return fig


def search_curves(tables: Tables) -> Figure:
    """A search's loss curves: every sample its own validation curve (no two share a
    configuration, so nothing is averaged), a colour per width, one panel."""
    epochs = tables.epochs
    widths = sorted(epochs["hidden"].unique())
    colours = dict(zip(widths, plt.cm.viridis(np.linspace(0, 0.9, len(widths)))))
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    trial = "trial_dir" if "trial_dir" in epochs else "trial_id"  # by folder: a trial a new Tuner continued keeps it
    for (hidden, _), curve in epochs.groupby(["hidden", trial]):
        ax.plot(curve["epoch"], curve["val_loss"], color=colours[hidden], linewidth=0.8, alpha=0.7)
    values = epochs["val_loss"][np.isfinite(epochs["val_loss"]) & (epochs["val_loss"] > 0)]
    ax.set_yscale("log")
    if len(values):
        ax.set_ylim(values.min() / 1.1, values.max() * 1.1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="validation MSE per pixel (log scale)",
           title=f"{epochs[trial].nunique()} samples; an ASHA-stopped one ends early")
    ax.legend(handles=[Line2D([], [], color=colours[h], label=labels.trial_label({"hidden": h}, [])) for h in widths],
              loc="upper right", frameon=False)
    fig.tight_layout()
    return fig


def reconstructions(tables: Tables) -> Figure:
    """The validation images on top, each trial's reconstruction of them beneath, labelled.

    Drawn as one image (a tile per picture, white gaps) on one axes: a hundred trials make a
    thousand pictures, which as separate axes took seconds to lay out and save.
    """
    images = tables.reconstructions  # [(label, (n, side, side) array)], the originals first
    n, side = images[0][1].shape[:2]
    cell = side + 2  # a tile with a 1-pixel white border on every side
    sheet = np.ones((len(images) * cell, n * cell), dtype=np.float32)
    for r, (_, tiles) in enumerate(images):
        for c, tile in enumerate(tiles):
            sheet[r * cell + 1: r * cell + 1 + side, c * cell + 1: c * cell + 1 + side] = tile
    # Sized so that one image pixel is PIXEL_SCALE x PIXEL_SCALE screen pixels: sharp, and no larger than it needs.
    inches = PIXEL_SCALE / SCREEN_DPI
    fig = plt.figure(figsize=(sheet.shape[1] * inches, sheet.shape[0] * inches))
    ax = fig.add_axes((0, 0, 1, 1))  # the sheet fills the figure; savefig's tight box adds the labels' margin
    ax.imshow(sheet, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([r * cell + cell / 2 for r in range(len(images))], labels=[label for label, _ in images], fontsize=9)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


def width_figure(tables: Tables) -> Figure:
    """Final val_loss against h (log-log): a line per configuration with its seed spread (1 sd),
    PCA at k = h as the reference, the mean image as the ceiling."""
    spread = tables.spread
    columns = spread_columns(spread)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    palette = sns.color_palette("colorblind", n_colors=max(1, len(spread.groupby(columns)) if columns else 1))
    groups = spread.groupby(columns, sort=True) if columns else [((), spread)]
    for colour, (_, rows) in zip(palette, groups):
        ax.errorbar(rows["hidden"], rows["final_mean"], yerr=rows["final_sd"].fillna(0), marker="o", capsize=3,
                    color=colour, label=labels.configuration_label(rows.iloc[0], columns))
    pca = spread.drop_duplicates("hidden").sort_values("hidden")
    ax.plot(pca["hidden"], pca["pca"], "k--", marker="s", label="PCA, k = h")
    ax.axhline(tables.reference["mean_image_mse"], color="grey", linestyle=":", label="mean image")
    ax.set(xscale="log", yscale="log", xlabel="code width h", ylabel="final validation MSE per pixel")
    ax.set_xticks(sorted(spread["hidden"].unique()), labels=[str(h) for h in sorted(spread["hidden"].unique())])
    ax.minorticks_off()
    n = spread["n"].min()
    ax.set_title(f"final val_loss against width (n = {n} seed(s) per point, bars: 1 sd)", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def parallel_coordinates(tables: Tables) -> Figure:
    """A search's samples: a panel per point, an axis per searched field (log where its range is,
    a choice field's values in order), a line per finished sample coloured by its final val_loss
    as a multiple of PCA's, the best drawn last and thick."""
    grid = recorded_grid(tables.meta)
    searched, points = grid.searched(), grid.point_fields() or ["hidden"]
    finished = finished_samples(tables.summary)
    finished = finished.assign(x_pca=finished["final_val_loss"] / finished["pca_val_mse"])
    groups = list(finished.groupby(points, sort=True))
    fig, axes = plt.subplots(len(groups), 1, figsize=(1.8 * len(searched) + 3, 2.8 * len(groups)), squeeze=False,
                             layout="constrained")
    norm = plt.matplotlib.colors.LogNorm(vmin=finished["x_pca"].min(), vmax=max(finished["x_pca"].max(),
                                                                                finished["x_pca"].min() * 1.01))
    positions = {}  # field -> function from a value to [0, 1]
    for name in searched:
        r = grid.ranges.get(name)
        if r is None:
            choices = list(grid.values(name))
            positions[name] = lambda v, c=choices: c.index(v) / max(1, len(c) - 1)
        elif r.log:
            positions[name] = lambda v, r=r: (np.log(v) - np.log(r.low)) / (np.log(r.high) - np.log(r.low))
        else:
            positions[name] = lambda v, r=r: (v - r.low) / (r.high - r.low)
    for ax, (key, at) in zip(axes[:, 0], groups):
        at = at.sort_values("x_pca", ascending=False)  # the best last, on top
        for i, (_, row) in enumerate(at.iterrows()):
            ys = [positions[name](row[name]) for name in searched]
            best = i == len(at) - 1
            ax.plot(range(len(searched)), ys, color=plt.cm.viridis_r(norm(row["x_pca"])),
                    linewidth=2.5 if best else 1, alpha=1 if best else 0.6)
        ax.set_xticks(range(len(searched)), labels=[f"{n}\n{grid.ranges[n]}" if n in grid.ranges else
                                                    f"{n}\n{'/'.join(map(str, grid.values(n)))}" for n in searched],
                      fontsize=8)
        ax.set_yticks([0, 1], labels=["low", "high"], fontsize=8)
        ax.set_xlim(-0.2, len(searched) - 0.8)
        for x in range(len(searched)):
            ax.axvline(x, color="grey", linewidth=0.5)
        title = labels.label(dict(zip(points, key if isinstance(key, tuple) else (key,))), points, assign=" = ", sep=", ")
        ax.set_title(f"{title}: {len(at)} sample(s), best {at['x_pca'].min():.3g}x PCA", fontsize=10)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis_r"), ax=axes[:, 0].tolist(),
                 label="final val_loss / PCA's (k = h)")
    return fig


def always(tables: Tables) -> bool:
    return True


@dataclass(frozen=True)
class Entry:
    """One figure of the report: how it is drawn, saved and introduced in report.md."""

    stem: str  # saved as figures/<stem>.png (and .pdf)
    title: str  # report.md's section heading and the image's alt text
    caption: str  # report.md's words above the image
    draw: Callable[[Tables], Figure]
    vector: bool = True  # also a PDF to print; not for pixels, whose PDF would only wrap the same raster
    tight: bool = True  # crop to what is drawn (one extra draw); False for a figure that sets its own margins
    applies: Callable[[Tables], bool] = always  # whether this experiment has anything to draw


# In report.md's order. A figure that does not apply is neither drawn nor mentioned.
FIGURES = (
    Entry("val_loss_vs_width", "Final validation loss against width",
          "A line per configuration with its seed spread (bars: 1 sd), PCA with k = h components as the reference "
          "and the mean image as the ceiling; finished trials only.",
          width_figure, tight=False,  # tight_layout of its own; a search has its own figure (a line per sample here)
          applies=lambda tables: not tables.spread.empty and tables.search is None),
    Entry("loss_curves", "Loss curves",
          "Train (dashed) and validation (solid) loss per epoch, a colour per width; seeds averaged, with a band "
          "of one standard deviation. In a search, each sample's validation loss on its own.",
          loss_curves, tight=False),
    Entry("reconstructions", "Reconstructions",
          f"Top row: random validation images (seed {RECONSTRUCTION_SEED}). Below: each trial's reconstruction "
          "from its final checkpoint.",
          reconstructions, vector=False),
    Entry("search", "The search's samples",
          "A panel per point, an axis per searched field from the low end of its range to the high one, a line "
          "per finished sample coloured by its final val_loss as a multiple of PCA's; the best is the thick one.",
          parallel_coordinates, tight=False, applies=lambda tables: tables.search is not None and not tables.search.empty),
)
