"""Experiments side by side: each width's best final val_loss against PCA at k = h, and their
loss curves. `tune-ae compare` writes these; the dashboard's compare view draws the same.

Reads each experiment's tables (results.load_table: the saved ones, or rebuilt from the trial
files) and its record; PCA's error comes from the record (catalog.py's reference) and, where an
experiment has none, from the data set's cached references (computed once, as the report does).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tune_ae import baselines, results
from tune_ae.experiment import read_meta
from tune_ae.report.tables import ReportError, experiment_data


def pca_by_width(folder: Path, widths: list[int]) -> dict[int, float]:
    """PCA's validation MSE at k = h for `widths`: recorded, else computed from the experiment's data."""
    data = read_meta(folder).get("data")
    if not isinstance(data, dict):
        raise ReportError(f"{folder}'s record names no data set: PCA's error cannot be computed")
    try:
        recorded = {int(h): float(v) for h, v in (data.get("pca_val_mse") or {}).items()}
    except (TypeError, ValueError, AttributeError):
        raise ReportError(f"{folder}'s record holds PCA errors that do not read: {data.get('pca_val_mse')!r}") from None
    missing = [h for h in widths if h not in recorded or not recorded[h] > 0]
    if missing:
        data = experiment_data(folder)
        refs = baselines.data_references(data.train_images, data.train_labels, data.test_images, data.test_labels)
        recorded.update(baselines.pca_mse_from(refs["pca_mean"], refs["pca_axes"], data.test_images.float() / 255, missing))
    return recorded


def names(folders: list[Path]) -> list[str]:
    """How each experiment is labelled: its folder's name, with its storage folder's where two share one."""
    plain = [f.name for f in folders]
    named = [f"{f.parent.name}/{f.name}" if plain.count(f.name) > 1 else f.name for f in folders]
    return [str(f) if named.count(n) > 1 else n for f, n in zip(folders, named)]  # the whole path where still alike


def best_by_width(folders: list[Path]) -> pd.DataFrame:
    """A row per (experiment, width): the best final val_loss of its done trials, the trial's
    folder, how many done trials the width has, PCA's error at k = h and the multiple of it."""
    rows = []
    for folder, name in zip(folders, names(folders)):
        trials = results.load_table(folder, "trials")
        done = trials[trials["status"] == "done"].dropna(subset=["final_val_loss"])
        pca = pca_by_width(folder, sorted(int(h) for h in done["hidden"].unique()))
        for hidden, group in done.groupby("hidden"):
            best = group.loc[group["final_val_loss"].idxmin()]
            rows.append({"experiment": name, "hidden": int(hidden), "val_loss": float(best["final_val_loss"]),
                         "trials": len(group), "pca": pca[int(hidden)],
                         "x_pca": float(best["final_val_loss"]) / pca[int(hidden)] if pca[int(hidden)] > 0 else np.nan,
                         "trial_dir": best["trial_dir"]})
    return pd.DataFrame(rows, columns=["experiment", "hidden", "val_loss", "trials", "pca", "x_pca", "trial_dir"])


def same_data(best: pd.DataFrame) -> bool:
    """Whether every experiment has the same PCA error at each width (trained on the same images)."""
    return bool((best.groupby("hidden")["pca"].agg(lambda v: np.ptp(v.to_numpy()) <= 1e-12 * v.abs().max())).all())


def final_against_width(best: pd.DataFrame) -> Figure:
    """Best final val_loss against h, one line per experiment, PCA at k = h dashed (log-log)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    one_pca = same_data(best)
    for name, rows in best.groupby("experiment", sort=False):
        line, = ax.plot(rows["hidden"], rows["val_loss"], "o-", label=name)
        if not one_pca:  # other data (a subset): each experiment against its own PCA
            ax.plot(rows["hidden"], rows["pca"], "--", color=line.get_color(), label=f"PCA, k = h ({name}'s data)")
    if one_pca:
        pca = best.groupby("hidden")["pca"].first()
        ax.plot(pca.index, pca.values, "k--", label="PCA, k = h")
    ax.set(xscale="log", yscale="log", xlabel="h (code width)", ylabel="best final val_loss (MSE)",
           title="best final val_loss per width, against PCA")
    ax.set_xticks(sorted(best["hidden"].unique()), [str(h) for h in sorted(best["hidden"].unique())])
    ax.minorticks_off()
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def curves_side_by_side(folders: list[Path], best: pd.DataFrame) -> Figure:
    """Per experiment a panel: val_loss per epoch of each width's best trial, PCA at k = h dotted,
    the same colour per width and the same limits in every panel."""
    widths = sorted(best["hidden"].unique())
    colours = dict(zip(widths, plt.cm.viridis(np.linspace(0, 0.9, len(widths)))))
    fig, axes = plt.subplots(1, len(folders), figsize=(4.6 * len(folders), 3.8), squeeze=False)
    for ax, folder, name in zip(axes[0], folders, names(folders)):
        epochs = results.load_table(folder, "epochs")
        for row in best[best["experiment"] == name].itertuples():
            curve = epochs[epochs["trial_dir"] == row.trial_dir].sort_values("epoch")
            ax.plot(curve["epoch"], curve["val_loss"], color=colours[row.hidden], label=f"h={row.hidden}")
            ax.axhline(row.pca, color=colours[row.hidden], linestyle=":", linewidth=1)
        ax.set(yscale="log", xlabel="epoch", title=name)
        ax.legend(fontsize="small", title="dotted: PCA", title_fontsize="small")
    axes[0][0].set_ylabel("val_loss (MSE)")
    lows = [ax.get_ylim()[0] for ax in axes[0]]
    highs = [ax.get_ylim()[1] for ax in axes[0]]
    for ax in axes[0]:
        ax.set_ylim(min(lows), max(highs))
    fig.tight_layout()
    return fig


def table(best: pd.DataFrame) -> list[list[str]]:
    """A header row, then a row per width: each experiment's best final val_loss with its multiple
    of PCA (where one can be taken), and PCA's error (several where the data sets differ)."""
    names = list(dict.fromkeys(best["experiment"]))
    rows = [["h", *names, "PCA, k = h"]]
    for hidden, group in best.groupby("hidden"):
        by_name = group.set_index("experiment")
        cells = [f"{by_name.loc[n, 'val_loss']:.4g}" + (f" ({by_name.loc[n, 'x_pca']:.3g}x)"
                                                       if np.isfinite(by_name.loc[n, 'x_pca']) else "")
                 if n in by_name.index else "-" for n in names]
        rows.append([str(hidden), *cells, " / ".join(dict.fromkeys(f"{v:.4g}" for v in group["pca"]))])
    return rows


def markdown(best: pd.DataFrame) -> str:
    """`table` as markdown (a `|` in a name escaped)."""
    rows = [[cell.replace("|", "\\|") for cell in row] for row in table(best)]
    lines = ["| " + " | ".join(rows[0]) + " |", "|---|" + "---|" * (len(rows[0]) - 1)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows[1:])]) + "\n"
