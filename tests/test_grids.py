import pytest

from tune_ae.config import ConfigError
from tune_ae.grids import GRIDS, Grid, resolve


def test_named_grids():
    paper = GRIDS["paper"]
    assert paper.values("hidden") == (64, 128, 256, 512) and paper.values("dropout") == (0.1,)
    assert paper.values("lr") == (1e-3,) and paper.swept() == ["hidden"]
    assert (paper.values("batch_size"), paper.max_epochs, paper.subset) == ((1000,), 400, None)
    assert len(paper.trial_configs()) == 4
    assert len(GRIDS["wide"].trial_configs()) == 4 * 3 * 3
    smoke = GRIDS["smoke"]
    assert len(smoke.trial_configs()) == 2 and smoke.max_epochs <= 5 and smoke.subset <= 5000


def test_overrides_and_seeds():
    grid = resolve("paper", {"hidden": [64, 128], "dropout": [0.0, 0.2], "epochs": [5], "lr": None}, seeds=3)
    configs = grid.trial_configs()
    assert len(configs) == 2 * 2 * 3
    assert {c.seed for c in configs} == {0, 1, 2} and {c.epochs for c in configs} == {5}
    assert grid.values("lr") == (1e-3,) and grid.swept() == ["hidden", "dropout", "seed"]
    assert Grid.from_dict(grid.to_dict()) == grid


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"hidden": [0]}, "hidden must be >= 1"),
        ({"dropout": [1.5]}, "dropout must be in [0, 1)"),
        ({"lr": [-1.0]}, "lr must be > 0"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"seeds": 0}, "seeds must be an integer >= 1"),
        ({"subset": 3}, "subset must be an integer >= 10"),
        ({"hidden": [64, 64]}, "hidden has repeated values"),
        ({"hidden": []}, "hidden needs at least one value"),
        ({"colour": "red"}, "unknown grid field(s) colour"),
    ],
)
def test_bad_overrides(overrides, words):
    extra = {k: overrides.pop(k) for k in ("seeds", "subset") if k in overrides}
    with pytest.raises(ConfigError) as err:
        resolve("paper", overrides, **extra)
    assert words in str(err.value)


def test_unknown_grid():
    with pytest.raises(ConfigError, match="unknown grid 'papr'; choose one of paper, smoke, wide"):
        resolve("papr")


def test_records_written_before_grids_had_axes_still_load():
    legacy = {"hidden": [64, 128], "dropout": [0.1], "lr": [0.001], "seeds": 2, "batch_size": 1000, "epochs": 400,
              "subset": None, "output_activation": "relu", "precision": "fp32"}
    grid = Grid.from_dict(legacy)
    assert len(grid.trial_configs()) == 4 and grid.seeds == 2 and grid.values("hidden") == (64, 128)


def test_a_new_trial_field_is_sweepable_from_the_command_line(tmp_path):
    """--weight-decay exists because TrialConfig has the field: flag, grid and param space follow."""
    from tune_ae import run

    args = run.build_parser().parse_args(["--hidden", "64", "--weight-decay", "0", "1e-4", "--storage-path", str(tmp_path)])
    _, grid, _, _, _ = run.plan(args)
    assert grid.swept() == ["weight_decay"] and {c.weight_decay for c in grid.trial_configs()} == {0.0, 1e-4}


def test_ablation_grid_expands_to_widths_x_activations_x_dropouts():
    grid = GRIDS["ablation"]
    configs = grid.trial_configs()
    assert len(configs) == 4 * 3 * 2 and grid.swept() == ["hidden", "dropout", "output_activation"]
    assert {(c.output_activation, c.dropout) for c in configs} == {
        (a, d) for a in ("relu", "identity", "sigmoid") for d in (0.0, 0.1)}
    assert {c.lr for c in configs} == {1e-3} and {c.epochs for c in configs} == {400}  # otherwise the paper's
    assert len(resolve("ablation", seeds=3).trial_configs()) == 72
