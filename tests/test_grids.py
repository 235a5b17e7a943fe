import pytest

from tune_ae.config import ConfigError
from tune_ae.grids import GRIDS, resolve


def test_named_grids():
    paper = GRIDS["paper"]
    assert paper.hidden == (64, 128, 256, 512) and paper.dropout == (0.1,) and paper.lr == (1e-3,)
    assert (paper.batch_size, paper.epochs, paper.subset) == (1000, 400, None)
    assert len(paper.trial_configs()) == 4
    assert len(GRIDS["wide"].trial_configs()) == 4 * 3 * 3
    smoke = GRIDS["smoke"]
    assert len(smoke.trial_configs()) == 2 and smoke.epochs <= 5 and smoke.subset <= 5000


def test_overrides_and_seeds():
    grid = resolve("paper", hidden=[64, 128], dropout=[0.0, 0.2], epochs=5, seeds=3, lr=None)
    configs = grid.trial_configs()
    assert len(configs) == 2 * 2 * 3
    assert {c.seed for c in configs} == {0, 1, 2} and {c.epochs for c in configs} == {5}
    assert grid.lr == (1e-3,)


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
        ({"colour": "red"}, "unknown grid override(s) colour"),
    ],
)
def test_bad_overrides(overrides, words):
    with pytest.raises(ConfigError) as err:
        resolve("paper", **overrides)
    assert words in str(err.value)


def test_unknown_grid():
    with pytest.raises(ConfigError, match="unknown grid 'papr'; choose one of paper, smoke, wide"):
        resolve("papr")
