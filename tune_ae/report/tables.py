"""An experiment folder -> the tables and numbers its report shows, computed once (`build`).

The losses come from the trials' epochs logs; dead units and the linear probe from each
trial's own final report (computed here from its checkpoint only for a trial that did not
report them); PCA at k = h and the references from baselines' per-data-set cache; the
reconstructions are the final models' outputs for a few validation images. Everything that
reads a file happens here, so that the figures and the markdown only arrange what `build`
returns. No plotting library: `run --no-report` prints `trial_overview` from this module.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tune_ae import baselines, journal, labels, results, train
from tune_ae.config import TRIAL_FIELDS, default
from tune_ae.data import SIDE, DataError, FashionMNIST, load_fashion_mnist
from tune_ae.experiment import read_meta, recorded_grid
from tune_ae.grids import Grid

CPU = torch.device("cpu")  # the report runs where the results are, often a machine without a GPU
RECONSTRUCTION_SEED = 0  # the same validation images in every report of every experiment
OUTCOME_COLUMNS = ["parameters", "epochs_done", "final_val_loss", "best_val_loss", "best_epoch", "wall_time_s",
                   "pca_val_mse", "dead_units", "probe_accuracy", "status"]


class ReportError(Exception):
    """The experiment cannot be reported (nothing trained yet, data gone); the message says why."""


@dataclass(frozen=True)
class Tables:
    """Everything report.md and its figures show, from one experiment folder (see `build`)."""

    folder: Path
    meta: dict  # tune_ae/experiment.json: the grid, the data, one entry per run
    epochs: pd.DataFrame  # a row per trial and epoch (results.load_epochs)
    trials: pd.DataFrame  # a row per trial (results.summarise_trials)
    left_out: pd.DataFrame  # the trials whose checkpoint or epochs log cannot be read (`unreadable`)
    summary: pd.DataFrame  # a row per trial with its baselines (`summary_table`)
    spread: pd.DataFrame  # per width x configuration over seeds (`seed_spread`); empty when none finished
    findings: list[str]  # the comparison with PCA in sentences (`findings`)
    reference: dict  # mean_image_mse and raw_pixel_probe_accuracy of the data set
    # ("original", the validation images), then (trial label, its reconstructions), each (n, 28, 28) in [0, 1]
    reconstructions: list[tuple[str, np.ndarray]]
    # A search's (random, optuna) per point: its best sample against PCA and the recipe (`search_table`), and
    # each searched field's importance for val_loss there (`importance`). None for a grid.
    search: pd.DataFrame | None = None
    importance: pd.DataFrame | None = None


def build(folder: str | Path, data_dir: str | None = None) -> Tables:
    """Read the experiment once and compute every table, number and reconstruction of its report.

    A trial that cannot be read is left out with a warning (the notebook shows it) and named in
    `left_out` (report.md has a section for it).
    """
    folder = Path(folder).expanduser()
    meta = read_meta(folder)
    epochs = results.load_epochs(folder)
    trials = results.summarise_trials(epochs, folder)  # from the epochs already read, not a second pass
    if epochs.empty:
        resume = " (continue the interrupted trials with --resume)" if (trials["status"] == "interrupted").any() else ""
        raise ReportError(f"{folder} has no reported epochs yet ({len(trials)} trial(s), none trained); nothing to plot"
                          + resume)
    try:
        data = experiment_data(folder, data_dir)
    except DataError as err:
        hint = "" if data_dir else " (the report needs the data the sweep trained on; pass --data-dir)"
        raise ReportError(f"{err}{hint}") from None
    load_model.cache_clear()  # a resume may have rewritten a checkpoint since the last build
    try:
        left_out = unreadable(trials)
        kept = readable(trials, left_out)
        extra, reference = baseline_columns(trials, data, kept)
        images = reconstructions(kept, data.test_images)
    finally:
        load_model.cache_clear()  # a hundred models are no use in memory once their outputs are taken
    summary = summary_table(trials, extra)
    spread = seed_spread(summary)
    grid = recorded_grid(meta)
    searched = grid.searched()
    search = search_table(summary, grid) if searched else None
    return Tables(folder=folder, meta=meta, epochs=epochs, trials=trials, left_out=left_out, summary=summary,
                  spread=spread, findings=search_findings(search, searched) if searched else findings(spread),
                  reference=reference, reconstructions=images, search=search,
                  importance=importance(summary, grid) if searched else None)


def experiment_data(folder: str | Path, data_dir: str | None = None) -> FashionMNIST:
    """The data the sweep trained on: the recorded folder (or `data_dir`) and subset, checked by its size."""
    recorded = read_meta(folder)["data"]
    data = load_fashion_mnist(data_dir or recorded["folder"], subset=recorded["subset"], allow_download=False,
                              expect_full=False)
    if (len(data.train_images), len(data.test_images)) != (recorded["train_images"], recorded["test_images"]):
        raise DataError(f"{data.folder} gives {len(data.train_images)}/{len(data.test_images)} images, the sweep trained "
                        f"on {recorded['train_images']}/{recorded['test_images']}; pass the folder it used")
    return data


@functools.lru_cache(maxsize=None)  # `unreadable`, the baselines and the reconstructions open the same checkpoints
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
            rows.append({**{c: trial[c] for c in labels.label_columns(trials)}, "path": str(path), "reason": reason,
                         "trial_dir": trial["trial_dir"]})
    return pd.DataFrame(rows, columns=[*labels.label_columns(trials), "path", "reason", "trial_dir"])


def readable(trials: pd.DataFrame, left_out: pd.DataFrame) -> pd.DataFrame:
    """`trials` without those in `left_out` (from `unreadable`), each left out with a warning."""
    for _, row in left_out.iterrows():
        warnings.warn(f"left out {labels.label(row, ['hidden'])}: {row['reason']} ({row['path']})", stacklevel=3)
    return trials[~trials["trial_dir"].isin(left_out["trial_dir"])]


def reconstructions(trials: pd.DataFrame, val_images: torch.Tensor, n_images: int = 10,
                    seed: int = RECONSTRUCTION_SEED) -> list[tuple[str, np.ndarray]]:
    """n random validation images, then each trial's reconstruction of them from its final checkpoint.

    `trials` are readable ones (see `readable`); a trial with no checkpoint yet has no row.
    """
    generator = torch.Generator().manual_seed(seed)
    picked = torch.randperm(len(val_images), generator=generator)[:n_images]
    originals = train.to_device(val_images[picked], CPU)  # (n, 784)
    rows = trials.dropna(subset=["checkpoint"]).sort_values(list(TRIAL_FIELDS))
    extra = labels.varying(rows)
    images = [("original", originals)]
    with torch.inference_mode():
        images += [(labels.trial_label(row, extra), load_model(row["checkpoint"])(originals))
                   for _, row in rows.iterrows()]
    return [(label, batch.clamp(0, 1).reshape(-1, SIDE, SIDE).numpy()) for label, batch in images]


def baseline_columns(trials: pd.DataFrame, data: FashionMNIST, readable_trials: pd.DataFrame | None = None
                     ) -> tuple[pd.DataFrame, dict]:
    """Per trial: PCA MSE at k = h, dead units, probe accuracy; and the reference numbers.

    Dead units and the probe come from the trials' own final reports (the trials compute them
    where they ran); only a trial that did not (stopped early, written by an older tune_ae) is
    analysed here, from its checkpoint. PCA and the references come from the per-data-set cache.
    PCA at k = h needs no checkpoint: every trial gets it; the analysis only `readable_trials`
    (default: all of `trials`; see `readable`).
    """
    analysable = set((trials if readable_trials is None else readable_trials)["trial_dir"])
    refs = baselines.data_references(data.train_images, data.train_labels, data.test_images, data.test_labels)
    val_x = train.to_device(data.test_images, CPU)
    pca = baselines.pca_mse_from(refs["pca_mean"], refs["pca_axes"], val_x, sorted(int(h) for h in trials["hidden"].unique()))
    train_x = None
    rows = []
    for _, trial in trials.dropna(subset=["trial_id"]).iterrows():
        row = {"trial_id": trial["trial_id"], "pca_val_mse": pca[int(trial["hidden"])]}
        if trial["trial_dir"] not in analysable:
            pass  # its checkpoint does not load: named in report.md, not analysed
        elif all(pd.notna(trial.get(k)) for k in baselines.ANALYSIS):
            row.update({k: trial.get(k) for k in (*baselines.ANALYSIS, results.ANALYSIS_TIME)})
        elif isinstance(trial["checkpoint"], str):
            train_x = train.to_device(data.train_images, CPU) if train_x is None else train_x
            row.update(baselines.trial_analysis(load_model(trial["checkpoint"]), train_x, data.train_labels, val_x,
                                                data.test_labels))
        rows.append(row)
    reference = {k: refs[k] for k in ("mean_image_mse", "raw_pixel_probe_accuracy")}
    return pd.DataFrame(rows, columns=["trial_id", "pca_val_mse", *baselines.ANALYSIS, results.ANALYSIS_TIME]), reference


def trial_overview(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials table cut to what a reader compares: labels, losses, status."""
    columns = [*labels.label_columns(trials), "epochs_done", "final_val_loss", "best_val_loss", "status", "error"]
    return trials[columns].sort_values(list(TRIAL_FIELDS)[:1] + labels.varying(trials)).reset_index(drop=True)


def summary_table(trials: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """A row per trial: its labels, outcome and the baselines `extra` holds (`baseline_columns`)."""
    table = trials.drop(columns=[c for c in extra.columns if c != "trial_id" and c in trials]).merge(
        extra, on="trial_id", how="left")
    columns = labels.label_columns(trials) + [c for c in OUTCOME_COLUMNS if c in table]
    return table.sort_values(list(TRIAL_FIELDS))[columns].reset_index(drop=True)


def configuration_columns(summary: pd.DataFrame) -> list[str]:
    """The varying fields other than hidden and seed: what a 'configuration' is in this experiment."""
    return [c for c in labels.varying(summary) if c != "seed"]


def spread_columns(spread: pd.DataFrame) -> list[str]:
    """The configuration columns `seed_spread` kept (a spread table has no seed column)."""
    return [c for c in spread.columns if c in labels.OTHER_FIELDS]


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
    for c in spread_columns(spread):
        keep &= spread[c] == default(c)
    return keep


def findings(spread: pd.DataFrame) -> list[str]:
    """Per width: the configuration closest to PCA and by how much, and where the report's recipe stands."""
    columns = spread_columns(spread)
    recipe = paper_recipe(spread)
    lines = []
    for hidden, rows in spread.groupby("hidden", sort=True):
        best = rows.loc[rows["final_mean"].idxmin()]
        who = f"the best configuration ({labels.configuration_label(best, columns)})" if columns else "the trials"
        text = (f"At h = {hidden} {who} reach{'es' if columns else ''} {best['x_pca']:.2g}x PCA's error "
                f"({best['final_mean']:.4g} against {best['pca']:.4g}, n = {int(best['n'])})")
        mine = rows[recipe.loc[rows.index]]
        if len(mine) and columns:
            text += (f"; the report's recipe ({labels.configuration_label(mine.iloc[0], columns)}) "
                     f"{mine.iloc[0]['x_pca']:.2g}x")
        lines.append(text + ".")
    return lines


def finished_samples(summary: pd.DataFrame) -> pd.DataFrame:
    """The trials that ended well (done, or stopped early by the scheduler) with a final
    val_loss: what a search's table, its importance and its figure compare."""
    return summary[summary["status"].isin(results.FINISHED) & summary["final_val_loss"].notna()]


def search_table(summary: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """Per point of a search: how many samples finished, the best one's searched values, its
    final val_loss and PCA's at k = h, the ratio, and the report's recipe where the experiment
    holds a trial with TrialConfig's defaults for every searched field (else NaN)."""
    searched, points = grid.searched(), grid.point_fields() or ["hidden"]
    finished = finished_samples(summary)
    rows = []
    for key, at in finished.groupby(points, sort=True):
        best = at.loc[at["final_val_loss"].idxmin()]
        recipe = at[np.logical_and.reduce([at[c] == default(c) for c in searched])] if searched else at.iloc[:0]
        rows.append({**dict(zip(points, key if isinstance(key, tuple) else (key,))), "samples": len(at),
                     **{c: best[c] for c in searched}, "val_loss": best["final_val_loss"], "pca": best["pca_val_mse"],
                     "x_pca": best["final_val_loss"] / best["pca_val_mse"],
                     "recipe_x_pca": recipe["final_val_loss"].mean() / best["pca_val_mse"] if len(recipe) else np.nan})
    return pd.DataFrame(rows, columns=[*points, "samples", *searched, "val_loss", "pca", "x_pca", "recipe_x_pca"])


def search_findings(search: pd.DataFrame, searched: list[str]) -> list[str]:
    """Per point: how close the best tuned autoencoder gets to PCA, with the recipe's value beside it."""
    lines = []
    for _, row in search.iterrows():
        where = labels.label(row, [c for c in search.columns[:list(search.columns).index("samples")]], assign=" = ",
                             sep=", ")
        recipe = (f"the report's recipe {row['recipe_x_pca']:.3g}x" if pd.notna(row["recipe_x_pca"])
                  else "the report's recipe is not among the samples")
        lines.append(f"At {where} the best of {int(row['samples'])} sampled configurations "
                     f"({labels.configuration_label(row, searched)}) reaches {row['x_pca']:.3g}x PCA's error "
                     f"({row['val_loss']:.4g} against {row['pca']:.4g}); {recipe}.")
    return lines


def importance(summary: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """Per point, each searched field's share of the variance of final val_loss (Optuna's fANOVA
    evaluator, seeded, on the finished samples told to an in-memory study). NaN where a point has
    fewer than 3 finished samples: too few to apportion anything."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searched, points = grid.searched(), grid.point_fields() or ["hidden"]
    distributions = {n: d for n, d in journal.distributions(grid).items() if n in searched}  # the dashboard's too
    finished = finished_samples(summary)
    rows = []
    for key, at in finished.groupby(points, sort=True):
        row = dict(zip(points, key if isinstance(key, tuple) else (key,)))
        shares = {name: np.nan for name in searched}
        if len(at) >= 3:
            study = optuna.create_study(direction="minimize")
            for _, trial in at.iterrows():
                params = {n: trial[n].item() if hasattr(trial[n], "item") else trial[n] for n in searched}
                study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions,
                                                          value=float(trial["final_val_loss"])))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's note that fANOVA is experimental, per call
                shares.update(optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), normalize=True))
        rows.append({**row, "samples": len(at), **shares})
    return pd.DataFrame(rows, columns=[*points, "samples", *searched])
