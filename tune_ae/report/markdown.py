"""report.md's text from Tables and the figure registry.

The comparison with PCA first (sentences generated from the seed-spread table), then a
section per figure that applies (from its registry line: the figure code never has to be
mentioned here), the summary per trial, and every trial the figures or tables miss. The
registry comes in as an argument, so that this module needs no plotting library.
"""

from __future__ import annotations

import os
from typing import Iterable

import pandas as pd

from tune_ae import labels, results
from tune_ae.experiment import recorded_grid
from tune_ae.report.tables import Tables, spread_columns


def report(tables: Tables, figures: Iterable) -> str:
    """The whole of report.md; `figures` is figures.FIGURES (entries with stem, title, caption, applies)."""
    sections = [header(tables), against_pca(tables), search_section(tables)]
    sections += [figure_section(entry) for entry in figures if entry.applies(tables)]
    sections += [summary_section(tables), unfinished_section(tables.trials), unreadable_section(tables)]
    return "\n".join(section for section in sections if section)


def table(frame: pd.DataFrame) -> str:
    """A pipe table; floats to four significant digits, which is all a reader compares."""
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def header(tables: Tables) -> str:
    meta, last_run = tables.meta, tables.meta["runs"][-1]
    return f"""# Experiment `{tables.folder.name}`

Grid `{meta['grid_name']}`: {recorded_grid(meta).describe()};
data {meta['data']['train_images']} training / {meta['data']['test_images']} validation images.
Last command: `{' '.join(last_run['command'])}` (torch {last_run['versions']['torch']}, ray {last_run['versions']['ray']},
commit {last_run['git_commit']}).
"""


def against_pca(tables: Tables) -> str:
    """The finding in words (from the table), then the seed-spread table it comes from."""
    if tables.spread.empty:
        return "## Against PCA\n\nNo trial finished, so there is nothing to compare.\n"
    sentences = "\n".join(f"- {line}" for line in tables.findings)
    return f"""## Against PCA

{sentences}

Mean ± standard deviation over the n seeds of each row (finished trials only); `x PCA` is the
mean final loss over PCA's with k = h components; `dead units` is the mean number of hidden units
never active on the validation set. The mean image gives {tables.reference['mean_image_mse']:.4g}.

{spread_table(tables.spread)}
"""


def search_section(tables: Tables) -> str:
    """A search's best sample per point and what mattered; nothing for a grid."""
    if tables.search is None:
        return ""
    grid = recorded_grid(tables.meta)
    searched = ", ".join(f"{name} {grid.ranges[name]}" if name in grid.ranges else
                         f"{name} among {'/'.join(map(str, grid.values(name)))}" for name in grid.searched())
    shown = tables.search.rename(columns={"pca": "PCA k=h", "x_pca": "x PCA", "recipe_x_pca": "recipe x PCA"})
    return f"""## The search

{"An" if grid.search[0] in "aeiou" else "A"} {grid.search} search (seed {grid.search_seed}) of {grid.num_samples} sample(s) per point over {searched}.
Per point, the sample with the lowest final val_loss; `samples` counts the finished ones; `recipe x PCA`
is the report's own settings where a sample has them all.

{table(shown)}

### What mattered

Each searched field's share of the variance of the final val_loss at each point (Optuna's fANOVA,
on the finished samples; empty below 3 samples). With ASHA, a sample it stopped counts with its
loss where it stopped.

{table(tables.importance)}
"""


def spread_table(spread: pd.DataFrame) -> str:
    shown = spread.copy()
    for what in ("final", "best"):
        shown[f"{what} val_loss"] = [f"{m:.4g} ± {sd:.2g}" if pd.notna(sd) else f"{m:.4g}"
                                     for m, sd in zip(shown[f"{what}_mean"], shown[f"{what}_sd"])]
    columns = ["hidden", *spread_columns(spread), "n", "epochs_done", "final val_loss", "best val_loss", "pca", "x_pca",
               "dead_units"]
    return table(shown[columns].rename(columns={"pca": "PCA k=h", "x_pca": "x PCA", "dead_units": "dead units"}))


def figure_section(entry) -> str:
    return f"""## {entry.title}

{entry.caption}

![{entry.title}](figures/{entry.stem}.png)
"""


def summary_section(tables: Tables) -> str:
    reference = tables.reference
    return f"""## Summary

{table(tables.summary)}

- `pca_val_mse`: validation MSE of PCA with k = h components fitted on the training set (the best
  linear autoencoder of that width).
- `dead_units`: hidden units that are zero for every validation image.
- `probe_accuracy`: validation accuracy of softmax regression on the encoder's features.
- Reference: predicting the mean training image gives MSE {reference['mean_image_mse']:.4g}; softmax regression on raw
  pixels reaches accuracy {reference['raw_pixel_probe_accuracy']:.4f}.
"""


def unfinished_section(trials: pd.DataFrame) -> str:
    """Every trial that did not finish, with its status and error, so none goes unmentioned."""
    left = trials[~trials["status"].isin(results.FINISHED)]
    if left.empty:
        return ""
    shown = left[[*labels.label_columns(trials), "epochs_done", "epochs_planned", "status", "error"]].fillna("")
    return f"""## Trials that did not finish

{len(left)} of {len(trials)} trial(s); their losses are missing from the figures or end early.

{table(shown)}
"""


def unreadable_section(tables: Tables) -> str:
    left_out = tables.left_out
    if left_out.empty:
        return ""
    relative = left_out["path"].map(lambda p: os.path.relpath(p, tables.folder))  # the folder may move
    shown = left_out.drop(columns="trial_dir").assign(path=relative)
    return f"""## Trials that could not be read

Left out of the reconstructions and the summary; their loss curves show what their epochs log holds.

{table(shown)}
"""
