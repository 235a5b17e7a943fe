"""What --extend may add to a grid, and what it refuses (tune_ae/extension.py)."""

import pytest

from tune_ae.config import ConfigError
from tune_ae.extension import check_extension
from tune_ae.grids import Grid, Range, override

from test_grids import search


def test_what_an_extension_may_not_change():
    old = search(axes={"hidden": (64,), "output_activation": ("relu", "sigmoid")})
    assert check_extension(old, override(old, num_samples=6)) == {"num_samples": [5, 6]}
    assert check_extension(old, override(old, {"hidden": [64, 128]})) == {"hidden": [128]}
    for changed, words in [
        (override(old, {"lr": Range.parse("lr", "1e-4:1e-1:log")}), "the searched ranges are fixed once it ran (--lr"),
        (override(old, {"output_activation": ["relu", "sigmoid", "identity"]}), "a random search's choices are fixed"),
        (override(old, search_seed=1), "drop --search-seed"),
        (override(old, num_samples=4), "--num-samples can only grow"),
        (override(old, subset=3000), "drop --subset"),
        (old, "these flags add nothing to it"),
    ]:
        with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
            check_extension(old, changed)
    grid = Grid({"hidden": (64,), "seed": (0, 1, 2)})
    with pytest.raises(ConfigError, match="--seeds 2 drops seed"):
        check_extension(grid, override(grid, seeds=2))
