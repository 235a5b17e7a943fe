"""How close a tuned autoencoder gets to PCA: the table of a search next to the ablation grid.

    python benchmarks/study.py SEARCH_FOLDER [ABLATION_FOLDER] [GRID_FOLDER]

SEARCH_FOLDER is an experiment of `python -m tune_ae.run --grid paper --search optuna ...`,
ABLATION_FOLDER one of `--grid ablation` at the same epochs (it holds the report's recipe,
ReLU output and dropout 0.1, and the best of six fixed configurations per width), GRID_FOLDER
any other experiment to compare the cost with (e.g. a grid of as many trials). Prints the
machine, per width: the search's best final val_loss and its values, the recipe's and the
ablation's best at the same epochs, PCA's at k = h, each as a multiple of PCA, and each
searched field's importance; then every experiment's best per width side by side (report/comparison.py,
what `tune-ae compare` writes), and per experiment its trials, the epochs they trained and the
wall time its runs recorded (Ray's start, the fit, the tables and the report: tune_ae/experiment.json's
phases, which leave out the command's own start, a few seconds).
"""

from __future__ import annotations

import sys
from pathlib import Path


def wall(folder: Path) -> float:
    from tune_ae.experiment import read_meta

    return sum(sum(run.get("timings", {}).values()) for run in read_meta(folder)["runs"])


def main(argv: list[str]) -> int:
    if not argv or {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0 if argv else 2
    import pandas as pd

    from tune_ae import results
    from tune_ae.bench.measure import machine, machine_line
    from tune_ae.report import comparison
    from tune_ae.report.tables import build, seed_spread

    folders = [Path(a).expanduser().resolve() for a in argv]
    search = build(folders[0])
    if search.search is None:
        print(f"error: {folders[0]} is not a search (run it with --search random or optuna)", file=sys.stderr)
        return 2
    table = search.search.set_index("hidden")[["samples", *[c for c in search.search.columns
                                                              if c not in ("hidden", "samples", "val_loss", "pca",
                                                                           "x_pca", "recipe_x_pca")],
                                               "val_loss", "pca", "x_pca"]]
    if len(folders) > 1:
        ablation = build(folders[1])
        spread = seed_spread(ablation.summary)
        recipe = spread[(spread["output_activation"] == "relu") & (spread["dropout"] == 0.1)].set_index("hidden")
        best = spread.loc[spread.groupby("hidden")["final_mean"].idxmin()].set_index("hidden")
        table["recipe"] = recipe["final_mean"]
        table["recipe_x_pca"] = recipe["x_pca"]
        table["ablation_best"] = best["final_mean"]
        table["ablation_best_x_pca"] = best["x_pca"]
        table["ablation_best_is"] = [f"{r.output_activation} output, dropout {r.dropout:g}" for r in best.itertuples()]
    print(f"machine: {machine_line(machine())}\n")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))
        print("\nimportance of each searched field for the final val_loss, per width (fANOVA):")
        print(search.importance.set_index("hidden").to_string(float_format=lambda v: f"{v:.2f}"))
    print("\neach experiment's best final val_loss per width, side by side (`tune-ae compare` writes it with figures):")
    print(comparison.markdown(comparison.best_by_width(folders)))
    for folder in folders:
        trials = results.load_table(folder, "trials")
        counts = ", ".join(f"{n} {s}" for s, n in trials["status"].value_counts().items())
        seconds = wall(folder)
        recorded = f"{seconds:.0f} s recorded ({seconds / 60:.1f} min)" if seconds else \
            "no time recorded (its run stopped before the end)"
        print(f"{folder.name}: {len(trials)} trials ({counts}), {int(trials['epochs_done'].sum())} trial-epochs, {recorded}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
