"""report/markdown.py: report.md's text from a Tables made in memory (test_report_figures.small_tables)."""

import dataclasses

import pandas as pd

from test_report_figures import small_tables
from tune_ae.report import figures, markdown


def test_a_section_per_figure_that_applies_in_the_registry_order():
    built = small_tables()
    text = markdown.report(built, figures.FIGURES)
    assert text.startswith("# Experiment `experiment`\n") and "Grid `custom`: hidden 32/64, dropout 0/0.1" in text
    assert all(f"- {line}" in text for line in built.findings) and len(built.findings) == 2
    places = [text.index(f"![{entry.title}](figures/{entry.stem}.png)") for entry in figures.FIGURES if entry.applies(built)]
    assert len(places) == 3 and "## The search" not in text  # a grid: no search section, no search figure
    assert places == sorted(places) and text.index("## Against PCA") < places[0] < text.index("## Summary")
    # A new registry line is all a new figure needs for its section.
    new = dataclasses.replace(figures.FIGURES[0], stem="new_figure", title="A new figure", caption="What it shows.")
    assert "## A new figure\n\nWhat it shows.\n\n![A new figure](figures/new_figure.png)\n" in markdown.report(
        built, (*figures.FIGURES, new))
    # Nothing finished: no comparison, and no width figure to point at.
    empty = markdown.report(small_tables(spread=built.spread.iloc[:0], findings=[]), figures.FIGURES)
    assert "No trial finished, so there is nothing to compare." in empty
    assert "val_loss_vs_width" not in empty and "figures/loss_curves.png" in empty


def test_every_trial_missing_from_the_figures_is_named():
    built = small_tables()
    assert "## Trials that did not finish" not in markdown.report(built, figures.FIGURES)
    trials = built.trials.copy()
    trials.loc[0, ["status", "epochs_done", "error"]] = ["error", 1, "ValueError: diverged"]
    left_out = pd.DataFrame([{"hidden": 64, "dropout": 0.1,
                              "path": "/nowhere/experiment/trial_64_0.1/checkpoint_000002/state.pt",
                              "reason": "checkpoint unreadable: EOFError", "trial_dir": "/nowhere/trial_64_0.1"}])
    text = markdown.report(dataclasses.replace(built, trials=trials, left_out=left_out), figures.FIGURES)
    unfinished = text.split("## Trials that did not finish")[1].split("##")[0]
    assert "1 of 4 trial(s)" in unfinished and "| 32 | 0 | 1 | 3 | error | ValueError: diverged |" in unfinished
    unreadable = text.split("## Trials that could not be read")[1]
    assert "| 64 | 0.1 | trial_64_0.1/checkpoint_000002/state.pt | checkpoint unreadable: EOFError |" in unreadable


def test_a_search_gets_its_section_with_the_best_sample_per_point_and_what_mattered():
    from test_report_figures import search_tables

    built = search_tables()
    text = markdown.report(built, figures.FIGURES)
    assert "## The search\n\nA random search (seed 0) of 3 sample(s) per point over lr 0.0001:0.01:log, " \
           "output_activation among relu/sigmoid." in text
    assert "| hidden | samples | lr | output_activation | val_loss | PCA k=h | x PCA | recipe x PCA |" in text
    assert "### What mattered" in text and "| hidden | samples | lr | output_activation |" in text
    assert text.index("## The search") < text.index("![The search's samples](figures/search.png)")
