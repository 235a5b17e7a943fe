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
    grid = run.make_plan(args).grid
    assert grid.swept() == ["weight_decay"] and {c.weight_decay for c in grid.trial_configs()} == {0.0, 1e-4}


def test_ablation_grid_expands_to_widths_x_activations_x_dropouts():
    grid = GRIDS["ablation"]
    configs = grid.trial_configs()
    assert len(configs) == 4 * 3 * 2 and grid.swept() == ["hidden", "dropout", "output_activation"]
    assert {(c.output_activation, c.dropout) for c in configs} == {
        (a, d) for a in ("relu", "identity", "sigmoid") for d in (0.0, 0.1)}
    assert {c.lr for c in configs} == {1e-3} and {c.epochs for c in configs} == {400}  # otherwise the paper's
    assert len(resolve("ablation", seeds=3).trial_configs()) == 72


# --- searches: ranges, points, samples ---

from tune_ae.grids import Range, override  # noqa: E402


def search(**kw) -> Grid:
    base = dict(axes={"hidden": (64, 128), "output_activation": ("relu", "sigmoid")},
                ranges={"lr": Range(1e-4, 1e-2, log=True), "dropout": Range(0.0, 0.3), "epochs": Range(2, 4)},
                search="random", num_samples=5)
    return Grid(**{**base, **kw})


def test_a_search_splits_fields_into_points_and_searched_by_their_kind():
    grid = search()
    assert grid.searched() == ["dropout", "lr", "epochs", "output_activation"]  # ranges and a choice list
    assert grid.point_fields() == ["hidden"]  # a numeric list: the points
    assert [p["hidden"] for p in grid.points()] == [64, 128] and grid.n_trials == 10


def test_random_samples_lie_in_their_ranges_and_repeat_with_the_seed():
    configs = search().trial_configs()
    assert len(configs) == 10 and len({c for c in configs}) == 10
    for c in configs:
        assert 1e-4 <= c.lr <= 1e-2 and 0 <= c.dropout <= 0.3 and c.epochs in (2, 3, 4)
        assert c.output_activation in ("relu", "sigmoid") and c.hidden in (64, 128)
    assert search().trial_configs() == configs
    assert search(search_seed=1).trial_configs() != configs
    # More samples (an --extend) keep those drawn; so does another point.
    more = search(num_samples=7, axes={"hidden": (32, 64, 128), "output_activation": ("relu", "sigmoid")})
    assert set(configs) <= set(more.trial_configs())


def test_log_ranges_spread_over_decades():
    lrs = [c.lr for c in search(num_samples=200).trial_configs()]
    assert sum(lr < 1e-3 for lr in lrs) / len(lrs) == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize("field, text, words", [
    ("lr", "1e-2:1e-4", "the low end must be below the high end"),
    ("dropout", "0:2", "dropout must be in [0, 1), got 2.0"),
    ("dropout", "0:1", "dropout must be in [0, 1), got 1.0"),
    ("weight_decay", "0:1e-3:log", "a log range needs a low end > 0"),
    ("dropout", "0:0.3:log", "a log range needs a low end > 0"),
    ("hidden", "0:64", "hidden must be >= 1"),
    ("lr", "-1:1", "lr must be > 0"),
])
def test_ranges_are_checked_against_the_fields_limits(field, text, words):
    with pytest.raises(ConfigError) as err:
        Grid(ranges={field: Range.parse(field, text)}, search="random")
    assert words in str(err.value) and f"--{field.replace('_', '-')} {text.split(':')[0]}" in str(err.value)


@pytest.mark.parametrize("field, text, words", [
    ("lr", "a:b", "the ends of a lr range must be numbers"),
    ("hidden", "1.5:8", "the ends of a hidden range must be integers"),
    ("lr", "1:2:3", "is not a range"),
    ("lr", "1e-3:inf", "must be finite"),
    ("output_activation", "relu:sigmoid", "output_activation takes values"),
])
def test_what_is_not_a_range_says_so(field, text, words):
    with pytest.raises(ConfigError, match=words):
        Range.parse(field, text)


def test_a_search_needs_something_to_search_and_a_range_needs_a_search():
    with pytest.raises(ConfigError, match="needs a search: add --search random or --search optuna"):
        Grid(ranges={"lr": Range(1e-4, 1e-2)})
    with pytest.raises(ConfigError, match="has nothing to search"):
        Grid(axes={"hidden": (64, 128)}, search="optuna")
    with pytest.raises(ConfigError, match="num-samples must be an integer >= 1"):
        search(num_samples=0)


def test_a_search_round_trips_through_its_record_and_overrides():
    grid = search(search="optuna", search_seed=3)
    assert Grid.from_dict(grid.to_dict()) == grid
    assert Grid.from_dict(GRIDS["paper"].to_dict()) == GRIDS["paper"]  # a grid's record is as before
    assert "search" not in GRIDS["paper"].to_dict()
    grown = override(grid, {"hidden": [64, 128, 256]}, num_samples=8)
    assert grown.ranges == grid.ranges and grown.num_samples == 8 and grown.values("hidden") == (64, 128, 256)
    with pytest.raises(ValueError, match="chosen while it runs"):
        grid.trial_configs()


def test_a_random_search_never_draws_the_same_configuration_twice_at_a_point():
    choices = Grid({"hidden": (8,), "output_activation": ("relu", "sigmoid", "identity")}, search="random", num_samples=3)
    assert sorted(c.output_activation for c in choices.trial_configs()) == ["identity", "relu", "sigmoid"]
    few = Grid({"hidden": (8,)}, ranges={"epochs": Range(2, 4)}, search="random", num_samples=3)
    assert sorted(c.epochs for c in few.trial_configs()) == [2, 3, 4]
    with pytest.raises(ConfigError, match="fewer than 4 distinct configurations per point"):
        Grid({"hidden": (8,)}, ranges={"epochs": Range(2, 4)}, search="random", num_samples=4)


def test_rounded_samples_stay_inside_a_narrow_range():
    narrow = Range(0.00012345, 0.00012349)
    assert all(narrow.low <= narrow.sample("lr", u / 10) <= narrow.high for u in range(10))
