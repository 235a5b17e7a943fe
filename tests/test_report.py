import dataclasses
import os

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from PIL import Image

from tune_ae import report, results
from tune_ae.report import figures, tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_report_of_a_smoke_sweep(smoke_experiment):
    folder, done = smoke_experiment
    assert (folder / "report.md").is_file() and str(folder / "report.md") in done.stdout
    text = (folder / "report.md").read_text()
    assert "figures/loss_curves.png" in text and "figures/reconstructions.png" in text
    for name in ("loss_curves.png", "loss_curves.pdf", "reconstructions.png"):
        assert (folder / "figures" / name).stat().st_size > 10_000
    assert not (folder / "figures" / "reconstructions.pdf").exists()  # pixels: the PNG is the figure
    # Reconstructions: one row of originals plus one per trial (2), 10 images wide.
    width, height = Image.open(folder / "figures" / "reconstructions.png").size
    assert 2.5 < width / height < 4.5
    summary = tables.summary_table(results.load_trials(folder), tables.baseline_columns(results.load_trials(folder), tables.experiment_data(folder))[0])
    assert len(summary) == 2 and summary["pca_val_mse"].between(0, 0.1).all()
    assert summary["probe_accuracy"].between(0.3, 1).all() and (summary["dead_units"] >= 0).all()
    # Each width once in the summary and once in the seed-spread table.
    assert text.count("\n| 32 |") + text.count("\n| 64 |") == 4
    assert "## Against PCA" in text and "figures/val_loss_vs_width.png" in text
    assert (folder / "figures" / "val_loss_vs_width.png").stat().st_size > 10_000


def test_loss_curve_panels_follow_the_grid(smoke_experiment):
    built = tables.build(smoke_experiment[0])
    epochs = results.load_epochs(smoke_experiment[0])

    def loss_curves(epochs):
        return figures.loss_curves(dataclasses.replace(built, epochs=epochs))

    assert len(loss_curves(epochs).axes) == 1
    wide = pd.concat([epochs.assign(dropout=0.0), epochs.assign(dropout=0.2, trial_id=epochs["trial_id"] + "x")])
    figure = loss_curves(wide)
    assert len(figure.axes) == 2  # one panel per dropout
    assert [ax.get_title() for ax in figure.axes] == ["dropout = 0", "dropout = 0.2"]
    lines = figure.axes[0].get_lines()
    assert len([l for l in lines if len(l.get_xdata()) == 3]) == 4  # 2 widths x train/validation
    assert figure.axes[0].get_ylim() == figure.axes[1].get_ylim()  # panels compare on one scale
    # Two seeds: one line per width and split at their mean, and a band around it.
    seeds = pd.concat([epochs, epochs.assign(seed=1, trial_id=epochs["trial_id"] + "s",
                                             val_loss=epochs["val_loss"] * 3)])
    ax = loss_curves(seeds).axes[0]
    widest = seeds[(seeds["hidden"] == seeds["hidden"].max())].groupby("epoch")["val_loss"].mean()
    assert len(ax.get_lines()) == 4 and len(ax.collections) == 4
    assert any(list(line.get_ydata()) == pytest.approx(list(widest)) for line in ax.get_lines())
    # A diverged trial (nan, inf) is drawn as far as it is finite and leaves the scale to the others.
    diverged = epochs.assign(val_loss=epochs["val_loss"].where(epochs["epoch"] < 3, float("inf")))
    diverged.loc[diverged["hidden"] == diverged["hidden"].min(), "train_loss"] = float("nan")
    ax = loss_curves(diverged).axes[0]
    assert 0 < ax.get_ylim()[0] < ax.get_ylim()[1] < 1


def test_report_command_and_bad_folder(smoke_experiment, tmp_path):
    import subprocess
    import sys

    folder = smoke_experiment[0]
    (folder / "report.md").unlink()
    good = subprocess.run([sys.executable, "-m", "tune_ae.report", str(folder)], capture_output=True, text=True)
    assert good.returncode == 0 and (folder / "report.md").is_file() and str(folder / "report.md") in good.stdout
    bad = subprocess.run([sys.executable, "-m", "tune_ae.report", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "is not a tune_ae experiment" in bad.stderr and "Traceback" not in bad.stderr


def test_notebook_runs_top_to_bottom(smoke_experiment, monkeypatch):
    monkeypatch.setenv("TUNE_AE_EXPERIMENT", str(smoke_experiment[0]))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel shows figures inline
    notebook = nbformat.read(os.path.join(ROOT, "analysis", "figures.ipynb"), as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2


def test_report_of_checkpoints_written_on_cuda(smoke_experiment, tmp_path):
    """The report opens checkpoints whose generator states are CUDA's (16 bytes) on the CPU."""
    import shutil

    from faults import as_if_written_on_cuda
    from tune_ae.report import __main__ as report_command

    folder = tmp_path / "gpu-run"
    shutil.copytree(smoke_experiment[0], folder)
    for trial_dir in results.trial_dirs(folder):  # results.json names the original folder; rebuild from files
        for state in trial_dir.glob("checkpoint_*/state.pt"):
            as_if_written_on_cuda(state)
    for table in folder.glob("*.parquet"):
        table.unlink()
    (folder / "report.md").unlink()
    # In this process (the command's own code, without a process that imports torch and matplotlib again).
    assert report_command.write([str(folder)], "python -m tune_ae.report") == 0
    assert (folder / "report.md").is_file() and (folder / "figures" / "reconstructions.png").stat().st_size > 10_000


def test_a_trial_whose_checkpoint_does_not_read_is_named_and_the_rest_reported(smoke_experiment, tmp_path):
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "damaged"
    shutil.copytree(smoke_experiment[0], folder)  # a copy: its tables' paths are its own
    (folder / "report.md").unlink()
    broken = results.load_table(folder, "trials").set_index("hidden").loc[32, "checkpoint"]
    with open(f"{broken}/state.pt", "r+b") as f:
        f.truncate(100)
    done = subprocess.run([sys.executable, "-m", "tune_ae.report", str(folder)], capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "leaves out 1 trial(s) that could not be read: h=32 (checkpoint unreadable" in lines[0]
    assert f"{broken}/state.pt" in lines[0]
    text = (folder / "report.md").read_text()
    assert "## Trials that could not be read" in text and "| 32 | " in text
    assert "| 64 | " in text.split("## Summary")[1]  # the healthy trial is in the summary
    assert "At h = 32 the trials reach" in text and "nanx" not in text  # PCA at k = h needs no checkpoint
    assert (folder / "figures" / "reconstructions.png").is_file() and (folder / "figures" / "loss_curves.png").is_file()
    # The notebook's call leaves it out with a warning instead of failing.
    with pytest.warns(UserWarning, match="left out h=32: checkpoint unreadable"):
        built = tables.build(folder)
    assert [label for label, _ in built.reconstructions] == ["original", "h = 64"]


def test_seed_spread_and_width_figure_from_a_small_sweep(quarter_gpu_study):
    """A real sweep on tiny data (conftest.quarter_gpu_study: 2 widths x 2 output activations x
    2 seeds), then the report."""
    folder = quarter_gpu_study
    text = report.write_report(folder).read_text()

    spread = pd.read_csv(folder / "spread.csv")
    assert len(spread) == 4 and (spread["n"] == 2).all() and (spread["epochs_done"] == 12).all()
    assert set(spread["output_activation"]) == {"relu", "identity"} and (spread["final_sd"] > 0).all()
    summary = pd.read_csv(folder / "summary.csv")
    one = summary[(summary["hidden"] == 64) & (summary["output_activation"] == "relu")]["final_val_loss"]
    row = spread[(spread["hidden"] == 64) & (spread["output_activation"] == "relu")].iloc[0]
    assert row["final_mean"] == pytest.approx(one.mean()) and row["final_sd"] == pytest.approx(one.std())
    for line in tables.findings(spread):
        assert line in text
    best = spread[spread["hidden"] == 256].sort_values("final_mean").iloc[0]
    assert f"At h = 256 the best configuration (output_activation {best['output_activation']}) reaches" in text
    assert (folder / "figures" / "val_loss_vs_width.png").stat().st_size > 10_000
    assert (folder / "figures" / "val_loss_vs_width.pdf").is_file()
    figure = figures.width_figure(dataclasses.replace(tables.build(folder), spread=spread,
                                                      reference={"mean_image_mse": 0.09}))
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert sorted(labels) == ["PCA, k = h", "mean image", "output_activation identity", "output_activation relu"]


def test_trials_report_their_own_analysis_and_old_folders_get_it_computed(smoke_experiment, tmp_path):
    import json
    import shutil

    folder = smoke_experiment[0]
    epochs = results.load_epochs(folder)
    last = epochs.groupby("trial_id")["epoch"].transform("max") == epochs["epoch"]
    assert epochs.loc[last, "dead_units"].notna().all() and epochs.loc[~last, "dead_units"].isna().all()
    assert epochs.loc[last, "probe_accuracy"].between(0.3, 1).all()
    trials = results.load_trials(folder)
    assert (trials["analysis_time_s"] > 0).all()  # how long it took, for the scaling benchmark
    data = tables.experiment_data(folder)
    reported, _ = tables.baseline_columns(trials, data)

    # The same folder as an older tune_ae wrote it: no analysis in the reports; the report computes it.
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    for trial_dir in results.trial_dirs(old):
        for log in (trial_dir / results.EPOCHS_LOG, trial_dir / "result.json"):
            rows = [json.loads(line) for line in log.read_text().splitlines()]
            log.write_text("".join(json.dumps({k: v for k, v in r.items()
                                               if k not in ("dead_units", "probe_accuracy", "analysis_time_s")})
                                   + "\n" for r in rows))
    old_trials = results.load_trials(old)
    assert old_trials["dead_units"].isna().all()
    computed, _ = tables.baseline_columns(old_trials, data)
    merged = reported.merge(computed, on="trial_id", suffixes=("_trial", "_report"))
    assert (merged["dead_units_trial"] == merged["dead_units_report"]).all()
    assert merged["probe_accuracy_trial"].tolist() == pytest.approx(merged["probe_accuracy_report"].tolist(), abs=0.02)



def test_a_report_of_an_experiment_in_use_is_refused_and_writes_nothing(tmp_path, monkeypatch):
    """A sweep or a --resume holds the experiment's lock: the report would read checkpoints and logs
    half written. Refused with one line before anything is written; once free, the report holds the
    lock while it writes, so that no run starts meanwhile."""
    import subprocess
    import sys

    from test_journal import made_experiment
    from test_lock import HOLD
    from tune_ae import lock
    from tune_ae.config import ConfigError
    from tune_ae.report import __main__ as report_command

    folder = made_experiment(tmp_path / "exp")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        files = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
        done = subprocess.run([sys.executable, "-m", "tune_ae.report", str(folder)], capture_output=True, text=True,
                              timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and done.stdout == "", done.stderr
        assert lines[0].startswith(f"error: experiment {folder} is in use by another run (host ")
        assert f"pid {holder.pid}, started " in lines[0] and lines[0].endswith("wait for it to end, or stop it first")
        assert report_command.write([str(folder)], "python -m tune_ae.report") == 2  # the command's body, here
    finally:
        holder.kill()
        holder.wait()
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == files  # no report.md, figures/ or tables

    def held_while_writing(experiment, data_dir=None):
        with pytest.raises(ConfigError, match="in use by another run"):
            lock.check_free(experiment)
        return True

    monkeypatch.setattr("tune_ae.report.write.write_report_or_say_why", held_while_writing)
    assert report_command.write([str(folder)], "python -m tune_ae.report") == 0
    lock.check_free(folder)  # and let go once written
