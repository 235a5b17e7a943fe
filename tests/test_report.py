import os

import nbformat
import pandas as pd
import pytest
import torch
from nbclient import NotebookClient
from PIL import Image

from tune_ae import baselines, report, results
from tune_ae.model import Autoencoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_report_of_a_smoke_sweep(smoke_experiment):
    folder, done = smoke_experiment
    assert (folder / "report.md").is_file() and str(folder / "report.md") in done.stdout
    text = (folder / "report.md").read_text()
    assert "figures/loss_curves.png" in text and "figures/reconstructions.png" in text
    for stem in ("loss_curves", "reconstructions"):
        for suffix in ("png", "pdf"):
            assert (folder / "figures" / f"{stem}.{suffix}").stat().st_size > 10_000
    # Reconstructions: one row of originals plus one per trial (2), 10 images wide.
    width, height = Image.open(folder / "figures" / "reconstructions.png").size
    assert 2.5 < width / height < 4.5
    summary = report.summary_table(results.load_trials(folder), report.baseline_columns(results.load_trials(folder), report.experiment_data(folder))[0])
    assert len(summary) == 2 and summary["pca_val_mse"].between(0, 0.1).all()
    assert summary["probe_accuracy"].between(0.3, 1).all() and (summary["dead_units"] >= 0).all()
    assert text.count("\n| 32 |") + text.count("\n| 64 |") == 2


def test_loss_curve_panels_follow_the_grid(smoke_experiment):
    epochs = results.load_epochs(smoke_experiment[0])
    assert len(report.loss_curves(epochs).axes.flat) == 1
    wide = pd.concat([epochs.assign(dropout=0.0), epochs.assign(dropout=0.2, trial_id=epochs["trial_id"] + "x")])
    grid = report.loss_curves(wide)
    assert len(grid.axes.flat) == 2  # one panel per dropout
    lines = grid.axes.flat[0].get_lines()
    assert len([l for l in lines if len(l.get_xdata()) == 3]) == 4  # 2 widths x train/validation


def test_report_command_and_bad_folder(smoke_experiment, tmp_path):
    import subprocess
    import sys

    folder = smoke_experiment[0]
    (folder / "report.md").unlink()
    good = subprocess.run([sys.executable, "-m", "tune_ae.report", str(folder)], capture_output=True, text=True)
    assert good.returncode == 0 and (folder / "report.md").is_file() and str(folder / "report.md") in good.stdout
    bad = subprocess.run([sys.executable, "-m", "tune_ae.report", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "is not a tune_ae experiment" in bad.stderr and "Traceback" not in bad.stderr


def test_pca_matches_a_direct_svd():
    generator = torch.Generator().manual_seed(0)
    mixing = torch.rand(6, 784, generator=generator)
    train_x = torch.rand(200, 6, generator=generator) @ mixing / 6 + 0.01 * torch.rand(200, 784, generator=generator)
    val_x = torch.rand(50, 6, generator=generator) @ mixing / 6
    got = baselines.pca_mse(train_x, val_x, [1, 3, 6, 784])
    mean = train_x.double().mean(0)
    _, _, vh = torch.linalg.svd(train_x.double() - mean, full_matrices=False)
    for k in (1, 3, 6):
        basis = vh[:k].T
        centred = val_x.double() - mean
        direct = ((centred @ basis @ basis.T - centred) ** 2).mean().item()
        assert got[k] == pytest.approx(direct, rel=1e-6)
    assert got[1] > got[3] > got[6] and got[784] < 1e-20
    assert baselines.mean_image_mse(train_x, val_x) == pytest.approx(((val_x - train_x.mean(0)) ** 2).mean().item())


def test_dead_units_and_probe():
    model = Autoencoder(8, dropout=0.0)
    with torch.no_grad():
        model.encoder[0].bias[:3] = -1e3  # three units that can never fire
        model.encoder[0].bias[3:] = 1e3
    assert baselines.dead_units(model, torch.rand(20, 784)) == 3
    labels = torch.arange(200) % 10
    features = torch.nn.functional.one_hot(labels, 10).float() + 0.1 * torch.randn(200, 10)
    assert baselines.linear_probe_accuracy(features[:150], labels[:150], features[150:], labels[150:]) > 0.9


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
    import subprocess
    import sys

    from faults import as_if_written_on_cuda

    folder = tmp_path / "gpu-run"
    shutil.copytree(smoke_experiment[0], folder)
    for trial_dir in results.trial_dirs(folder):  # results.json names the original folder; rebuild from files
        for state in trial_dir.glob("checkpoint_*/state.pt"):
            as_if_written_on_cuda(state)
    for table in folder.glob("*.parquet"):
        table.unlink()
    (folder / "report.md").unlink()
    done = subprocess.run([sys.executable, "-m", "tune_ae.report", str(folder)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (folder / "report.md").is_file() and (folder / "figures" / "reconstructions.png").stat().st_size > 10_000
