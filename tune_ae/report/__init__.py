"""An experiment folder -> the two figures of the study, a summary table with baselines, report.md.

Figure 5 (loss curves) comes from the epochs table; Figure 4 (reconstructions) from each
trial's final checkpoint; the baselines recompute PCA, the mean image and linear probes on
the same data the sweep trained on (the folder and subset recorded in tune_ae.json).

Run on demand with `python -m tune_ae.report EXPERIMENT_DIR` (the command is __main__.py).
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
import traceback
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from tune_ae import baselines, results, train
from tune_ae.config import TRIAL_FIELDS, default
from tune_ae.data import SIDE, DataError, FashionMNIST, load_fashion_mnist
from tune_ae.experiment import read_meta, recorded_grid, write_text_whole, write_whole

SCREEN_DPI = 100  # the PNGs are for report.md on a screen; print from the PDFs (vector)
PIXEL_SCALE = 2  # screen pixels per image pixel in the reconstructions sheet
CPU = torch.device("cpu")
OTHER_FIELDS = tuple(name for name in TRIAL_FIELDS if name != "hidden")  # what tells trials of one width apart


class ReportError(Exception):
    """The experiment cannot be reported (nothing trained yet, data gone); the message says why."""


class ReportIncomplete(Exception):
    """The report was written, without the trials that could not be read (named in it and here)."""

    def __init__(self, path: Path, left_out: pd.DataFrame):
        names = "; ".join(f"h={r['hidden']} ({r['reason']}: {r['path']})" for _, r in left_out.iterrows())
        super().__init__(f"{path} leaves out {len(left_out)} trial(s) that could not be read: {names}")
        self.path, self.left_out = path, left_out


def experiment_data(folder: str | Path, data_dir: str | None = None) -> FashionMNIST:
    """The data the sweep trained on: the recorded folder (or `data_dir`) and subset, checked by its size."""
    recorded = read_meta(folder)["data"]
    data = load_fashion_mnist(data_dir or recorded["folder"], subset=recorded["subset"], allow_download=False,
                              expect_full=False)
    if (len(data.train_images), len(data.test_images)) != (recorded["train_images"], recorded["test_images"]):
        raise DataError(f"{data.folder} gives {len(data.train_images)}/{len(data.test_images)} images, the sweep trained "
                        f"on {recorded['train_images']}/{recorded['test_images']}; pass the folder it used")
    return data


def varying(table: pd.DataFrame, columns=OTHER_FIELDS) -> list[str]:
    return [c for c in columns if c in table and table[c].nunique() > 1]


def trial_label(row: pd.Series, extra: list[str]) -> str:
    def value(v):
        return f"{v:g}" if isinstance(v, float) else str(v)

    return "h = %d" % row["hidden"] + "".join(f"\n{c} = {value(row[c])}" for c in extra)


def loss_curves(epochs: pd.DataFrame) -> plt.Figure:
    """Figure 5: train (dashed) and validation (solid) MSE per epoch, a colour per width.

    One panel per value of the first two other fields the grid varies (e.g. dropout x lr);
    seeds are averaged, with a band of one standard deviation when there are several.
    Plain matplotlib: seaborn's relplot took a second and a half to lay out nine panels.
    """
    panels = varying(epochs, tuple(name for name in OTHER_FIELDS if name != "seed"))[:2]
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
        ax.set_title(" | ".join(f"{name} = {value:g}" if isinstance(value, float) else f"{name} = {value}"
                                for name, value in zip(panels, (column, row))), fontsize=10, y=1.0)
    handles = [Line2D([], [], color=colours[h], label=f"h = {h}") for h in widths]
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


@functools.lru_cache(maxsize=None)  # the figures and the baselines read the same checkpoints; cleared per report
def load_model(checkpoint: str):
    return train.load_model(Path(checkpoint) / train.STATE_FILE, CPU)[1]


def unreadable(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials whose final checkpoint or epochs log cannot be read: their labels, the path
    and the reason. The report names them and shows everything else."""
    rows = []
    for _, trial in trials.iterrows():
        path, reason = None, None
        if isinstance(trial.get("trial_dir"), str) and (Path(trial["trial_dir"]) / results.EPOCHS_LOG).exists():
            path = Path(trial["trial_dir"]) / results.EPOCHS_LOG
            try:
                with path.open("rb") as f:
                    f.read(1)
            except OSError as err:
                reason = f"epochs log unreadable: {err.strerror}"
        if reason is None and isinstance(trial.get("checkpoint"), str):
            path = Path(trial["checkpoint"]) / train.STATE_FILE
            try:
                load_model(trial["checkpoint"])
            except Exception as err:  # truncated, zeroed, removed: any of torch's many errors
                detail = str(err).splitlines()[0].split(". ")[0][:160] if str(err) else ""  # torch's first sentence
                reason = f"checkpoint unreadable: {type(err).__name__}{': ' + detail if detail else ''}"
        if reason:
            rows.append({**{c: trial[c] for c in label_columns(trials)}, "path": str(path), "reason": reason,
                         "trial_dir": trial["trial_dir"]})
    return pd.DataFrame(rows, columns=[*label_columns(trials), "path", "reason", "trial_dir"])


def readable(trials: pd.DataFrame) -> pd.DataFrame:
    """`trials` without those `unreadable` names, each left out with a warning (the notebook shows it)."""
    bad = unreadable(trials)
    for _, row in bad.iterrows():
        warnings.warn(f"left out h={row['hidden']}: {row['reason']} ({row['path']})", stacklevel=2)
    return trials[~trials["trial_dir"].isin(bad["trial_dir"])]


def reconstructions(trials: pd.DataFrame, val_images: torch.Tensor, n_images: int = 10, seed: int = 0) -> plt.Figure:
    """Figure 4: n random validation images on top, each trial's reconstruction beneath.

    Drawn as one image (a tile per picture, white gaps) on one axes: a hundred trials make a
    thousand pictures, which as separate axes took seconds to lay out and save.
    """
    generator = torch.Generator().manual_seed(seed)
    picked = torch.randperm(len(val_images), generator=generator)[:n_images]
    originals = train.to_device(val_images[picked], CPU)  # (n, 784)
    rows = readable(trials.dropna(subset=["checkpoint"])).sort_values(list(TRIAL_FIELDS))
    extra = varying(rows)
    images = [("original", originals)]
    with torch.inference_mode():
        images += [(trial_label(row, extra), load_model(row["checkpoint"])(originals)) for _, row in rows.iterrows()]
    cell = SIDE + 2  # a 28-pixel tile with a 1-pixel white border on every side
    sheet = torch.ones(len(images) * cell, n_images * cell)
    for r, (_, batch) in enumerate(images):
        tiles = batch[:n_images].clamp(0, 1).reshape(-1, SIDE, SIDE)  # (n, 784) -> (n, 28, 28)
        for c, tile in enumerate(tiles):
            sheet[r * cell + 1: r * cell + 1 + SIDE, c * cell + 1: c * cell + 1 + SIDE] = tile
    # Sized so that one image pixel is PIXEL_SCALE x PIXEL_SCALE screen pixels: sharp, and no larger than it needs.
    inches = PIXEL_SCALE / SCREEN_DPI
    fig = plt.figure(figsize=(sheet.shape[1] * inches, sheet.shape[0] * inches))
    ax = fig.add_axes((0, 0, 1, 1))  # the sheet fills the figure; savefig's tight box adds the labels' margin
    ax.imshow(sheet.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([r * cell + cell / 2 for r in range(len(images))], labels=[label for label, _ in images], fontsize=9)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


def baseline_columns(trials: pd.DataFrame, data: FashionMNIST) -> tuple[pd.DataFrame, dict]:
    """Per trial: PCA MSE at k = h, dead units, probe accuracy; and the reference numbers.

    Dead units and the probe come from the trials' own final reports (the trials compute them
    where they ran); only a trial that did not (stopped early, written by an older tune_ae) is
    analysed here, from its checkpoint. PCA and the references come from the per-data-set cache.
    """
    refs = baselines.data_references(data.train_images, data.train_labels, data.test_images, data.test_labels)
    val_x = train.to_device(data.test_images, CPU)
    pca = baselines.pca_mse_from(refs["pca_mean"], refs["pca_axes"], val_x, sorted(int(h) for h in trials["hidden"].unique()))
    train_x = None
    rows = []
    for _, trial in readable(trials.dropna(subset=["trial_id"])).iterrows():
        row = {"trial_id": trial["trial_id"], "pca_val_mse": pca[int(trial["hidden"])]}
        if all(pd.notna(trial.get(k)) for k in baselines.ANALYSIS):
            row.update({k: trial.get(k) for k in (*baselines.ANALYSIS, results.ANALYSIS_TIME)})
        elif isinstance(trial["checkpoint"], str):
            train_x = train.to_device(data.train_images, CPU) if train_x is None else train_x
            row.update(baselines.trial_analysis(load_model(trial["checkpoint"]), train_x, data.train_labels, val_x,
                                                data.test_labels))
        rows.append(row)
    reference = {k: refs[k] for k in ("mean_image_mse", "raw_pixel_probe_accuracy")}
    return pd.DataFrame(rows, columns=["trial_id", "pca_val_mse", *baselines.ANALYSIS, results.ANALYSIS_TIME]), reference


OUTCOME_COLUMNS = ["parameters", "epochs_done", "final_val_loss", "best_val_loss", "best_epoch", "wall_time_s",
                   "pca_val_mse", "dead_units", "probe_accuracy", "status"]


def label_columns(trials: pd.DataFrame) -> list[str]:
    """hidden plus the trial fields that vary in this experiment: what names a trial here."""
    return ["hidden", *varying(trials)]


def trial_overview(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials table cut to what a reader compares: labels, losses, status."""
    columns = [*label_columns(trials), "epochs_done", "final_val_loss", "best_val_loss", "status", "error"]
    return trials[columns].sort_values(list(TRIAL_FIELDS)[:1] + varying(trials)).reset_index(drop=True)


def summary_table(trials: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    table = trials.drop(columns=[c for c in extra.columns if c != "trial_id" and c in trials]).merge(
        extra, on="trial_id", how="left")
    columns = label_columns(trials) + [c for c in OUTCOME_COLUMNS if c in table]
    return table.sort_values(list(TRIAL_FIELDS))[columns].reset_index(drop=True)


def configuration_columns(summary: pd.DataFrame) -> list[str]:
    """The varying fields other than hidden and seed: what a 'configuration' is in this experiment."""
    return [c for c in varying(summary) if c != "seed"]


def configuration_label(row, columns: list[str]) -> str:
    if not columns:
        return "autoencoder"
    return ", ".join(f"{c} {row[c]:g}" if isinstance(row[c], float) else f"{c} {row[c]}" for c in columns)


def seed_spread(summary: pd.DataFrame) -> pd.DataFrame:
    """Per width x configuration, over seeds: n, mean and standard deviation of the final and
    best val_loss, mean dead units, PCA's error at k = h, and the final loss as a multiple of it."""
    finished = summary[summary["status"].isin(results.FINISHED)]
    keys = ["hidden", *configuration_columns(summary)]
    spread = finished.groupby(keys, sort=True).agg(
        n=("final_val_loss", "size"),
        epochs_done=("epochs_done", "max"),
        final_mean=("final_val_loss", "mean"), final_sd=("final_val_loss", "std"),
        best_mean=("best_val_loss", "mean"), best_sd=("best_val_loss", "std"),
        dead_units=("dead_units", "mean"), pca=("pca_val_mse", "first"),
    ).reset_index()
    spread["x_pca"] = spread["final_mean"] / spread["pca"]
    return spread


def paper_recipe(spread: pd.DataFrame) -> pd.Series:
    """Rows with the report's own settings (TrialConfig's defaults) for every configuration column."""
    keep = pd.Series(True, index=spread.index)
    for c in [c for c in spread.columns if c in OTHER_FIELDS]:
        keep &= spread[c] == default(c)
    return keep


def findings(spread: pd.DataFrame) -> list[str]:
    """Per width: the configuration closest to PCA and by how much, and where the report's recipe stands."""
    columns = [c for c in spread.columns if c in OTHER_FIELDS]
    recipe = paper_recipe(spread)
    lines = []
    for hidden, rows in spread.groupby("hidden", sort=True):
        best = rows.loc[rows["final_mean"].idxmin()]
        who = f"the best configuration ({configuration_label(best, columns)})" if columns else "the trials"
        text = (f"At h = {hidden} {who} reach{'es' if columns else ''} {best['x_pca']:.2g}x PCA's error "
                f"({best['final_mean']:.4g} against {best['pca']:.4g}, n = {int(best['n'])})")
        mine = rows[recipe.loc[rows.index]]
        if len(mine) and columns:
            text += f"; the report's recipe ({configuration_label(mine.iloc[0], columns)}) {mine.iloc[0]['x_pca']:.2g}x"
        lines.append(text + ".")
    return lines


def width_figure(spread: pd.DataFrame, mean_image_mse: float) -> plt.Figure:
    """Final val_loss against h (log-log): a line per configuration with its seed spread (1 sd),
    PCA at k = h as the reference, the mean image as the ceiling."""
    columns = [c for c in spread.columns if c in OTHER_FIELDS]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    palette = sns.color_palette("colorblind", n_colors=max(1, len(spread.groupby(columns)) if columns else 1))
    groups = spread.groupby(columns, sort=True) if columns else [((), spread)]
    for colour, (_, rows) in zip(palette, groups):
        ax.errorbar(rows["hidden"], rows["final_mean"], yerr=rows["final_sd"].fillna(0), marker="o", capsize=3,
                    color=colour, label=configuration_label(rows.iloc[0], columns))
    pca = spread.drop_duplicates("hidden").sort_values("hidden")
    ax.plot(pca["hidden"], pca["pca"], "k--", marker="s", label="PCA, k = h")
    ax.axhline(mean_image_mse, color="grey", linestyle=":", label="mean image")
    ax.set(xscale="log", yscale="log", xlabel="code width h", ylabel="final validation MSE per pixel")
    ax.set_xticks(sorted(spread["hidden"].unique()), labels=[str(h) for h in sorted(spread["hidden"].unique())])
    ax.minorticks_off()
    n = spread["n"].min()
    ax.set_title(f"final val_loss against width (n = {n} seed(s) per point, bars: 1 sd)", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def spread_markdown(spread: pd.DataFrame) -> str:
    table = spread.copy()
    for what in ("final", "best"):
        table[f"{what} val_loss"] = [f"{m:.4g} ± {sd:.2g}" if pd.notna(sd) else f"{m:.4g}"
                                     for m, sd in zip(table[f"{what}_mean"], table[f"{what}_sd"])]
    columns = ["hidden", *[c for c in spread.columns if c in OTHER_FIELDS], "n", "epochs_done", "final val_loss",
               "best val_loss", "pca", "x_pca", "dead_units"]
    return markdown(table[columns].rename(columns={"pca": "PCA k=h", "x_pca": "x PCA", "dead_units": "dead units"}))


def save_figure(fig: plt.Figure, stem: Path, vector: bool = True, tight: bool = True) -> list[Path]:
    """A PNG for report.md and, for a figure of lines and text, a PDF to print; then closed.

    The reconstructions are pixels, so a PDF of them would only wrap the same raster. `tight`
    crops to what is drawn (one extra draw); a figure that sets its own margins passes False.
    """
    paths = [stem.with_suffix(".png")] + ([stem.with_suffix(".pdf")] if vector else [])
    if not vector:
        stem.with_suffix(".pdf").unlink(missing_ok=True)  # an older report's, which would no longer match
    try:
        for path in paths:  # whole or not at all: a full disk leaves the older figure, not an empty file
            write_whole(path, lambda tmp: fig.savefig(tmp, format=path.suffix[1:], dpi=SCREEN_DPI,
                                                      bbox_inches="tight" if tight else None))
    finally:
        plt.close(fig)
    return paths


def markdown(table: pd.DataFrame) -> str:
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def unfinished_section(trials: pd.DataFrame) -> str:
    """Every trial that did not finish, with its status and error, so none goes unmentioned."""
    left = trials[~trials["status"].isin(results.FINISHED)]
    if left.empty:
        return ""
    table = left[[*label_columns(trials), "epochs_done", "epochs_planned", "status", "error"]].fillna("")
    return f"""
## Trials that did not finish

{len(left)} of {len(trials)} trial(s); their losses are missing from the figures or end early.

{markdown(table)}
"""


def unreadable_section(left_out: pd.DataFrame, folder: Path) -> str:
    if left_out.empty:
        return ""
    return f"""
## Trials that could not be read

Left out of the reconstructions and the summary; their loss curves show what their epochs log holds.

{markdown(left_out.drop(columns="trial_dir").assign(path=left_out["path"].map(lambda p: os.path.relpath(p, folder))))}
"""


def study_section(spread: pd.DataFrame, mean_image_mse: float) -> str:
    """The finding in words (from the table), the figure, and the seed-spread table."""
    if spread.empty:
        return "No trial finished, so there is nothing to compare.\n"
    sentences = "\n".join(f"- {line}" for line in findings(spread))
    return f"""{sentences}

![Final validation loss against width](figures/val_loss_vs_width.png)

Mean ± standard deviation over the n seeds of each point (finished trials only); `x PCA` is the
mean final loss over PCA's with k = h components; `dead units` is the mean number of hidden units
never active on the validation set. The mean image gives {mean_image_mse:.4g}.

{spread_markdown(spread)}
"""


def write_report(folder: str | Path, data_dir: str | None = None) -> Path:
    """Figures, summary.csv and report.md into the experiment folder; returns report.md."""
    folder = Path(folder)
    meta = read_meta(folder)
    epochs = results.load_epochs(folder)
    trials = results.summarise_trials(epochs, folder)  # from the epochs already read, not a second pass
    if epochs.empty:
        raise ReportError(f"{folder} has no reported epochs yet ({len(trials)} trial(s), none trained); nothing to plot")
    try:
        data = experiment_data(folder, data_dir)
    except DataError as err:
        raise ReportError(f"{err} (the report needs the data the sweep trained on; pass --data-dir)") from None
    load_model.cache_clear()
    left_out = unreadable(trials)  # named once below, in report.md and in the command's error line
    figures = folder / "figures"
    figures.mkdir(exist_ok=True)
    save_figure(loss_curves(epochs), figures / "loss_curves", tight=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each left-out trial would warn here
        save_figure(reconstructions(trials, data.test_images), figures / "reconstructions", vector=False)
        extra, reference = baseline_columns(trials, data)
    summary = summary_table(trials, extra)
    write_whole(folder / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False))
    spread = seed_spread(summary)
    write_whole(folder / "spread.csv", lambda tmp: spread.to_csv(tmp, index=False))
    if not spread.empty:
        save_figure(width_figure(spread, reference["mean_image_mse"]), figures / "val_loss_vs_width", tight=False)
    last_run = meta["runs"][-1]
    text = f"""# Experiment `{folder.name}`

Grid `{meta['grid_name']}`: {recorded_grid(meta).describe()};
data {meta['data']['train_images']} training / {meta['data']['test_images']} validation images.
Last command: `{' '.join(last_run['command'])}` (torch {last_run['versions']['torch']}, ray {last_run['versions']['ray']},
commit {last_run['git_commit']}).

## Against PCA

{study_section(spread, reference["mean_image_mse"])}
## Loss curves

![Train and validation loss per epoch](figures/loss_curves.png)

## Reconstructions

Top row: random validation images (seed 0). Below: each trial's reconstruction from its final checkpoint.

![Validation images and reconstructions](figures/reconstructions.png)

## Summary

{markdown(summary)}

- `pca_val_mse`: validation MSE of PCA with k = h components fitted on the training set (the best
  linear autoencoder of that width).
- `dead_units`: hidden units that are zero for every validation image.
- `probe_accuracy`: validation accuracy of softmax regression on the encoder's features.
- Reference: predicting the mean training image gives MSE {reference['mean_image_mse']:.4g}; softmax regression on raw
  pixels reaches accuracy {reference['raw_pixel_probe_accuracy']:.4f}.
{unfinished_section(trials)}{unreadable_section(left_out, folder)}"""
    path = folder / "report.md"
    write_text_whole(path, text)
    if not left_out.empty:
        raise ReportIncomplete(path, left_out)
    return path


ERROR_FILE = "report-error.txt"  # the traceback of an unexpected failure, for a bug report


def write_report_or_say_why(folder: Path, data_dir: str | None = None) -> bool:
    """write_report for the commands: True when written; otherwise one `error:` line on stderr.

    An expected problem (nothing trained yet, the data moved) is said as it is; anything else
    is a bug, said in one line that points at its full traceback in the experiment folder.
    """
    try:
        print(f"  report: {write_report(folder, data_dir)}")
        return True
    except ReportIncomplete as err:
        print(f"  report: {err.path}")
        print(f"error: {err}", file=sys.stderr)
    except ReportError as err:
        print(f"error: report not written: {err}", file=sys.stderr)
    except OSError as err:  # a full disk, a read-only folder: not a bug
        print(f"error: report not written: cannot write {err.filename or folder}: {err.strerror}", file=sys.stderr)
    except Exception as err:
        try:
            write_text_whole(folder / ERROR_FILE, traceback.format_exc())
        except OSError:
            pass
        print(f"error: report not written: unexpected {type(err).__name__}: {err}; this is a bug, "
              f"its traceback is in {folder / ERROR_FILE}", file=sys.stderr)
    return False
