import pytest

from tune_ae.config import ConfigError, TrialConfig


def test_defaults_are_the_reports_study():
    config = TrialConfig()
    assert (config.dropout, config.lr, config.batch_size, config.epochs) == (0.1, 1e-3, 1000, 400)
    assert config.weight_decay == 0.0
    assert config.output_activation == "relu" and config.precision == "fp32"


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("hidden", 0, "hidden must be >= 1"),
        ("hidden", 1.5, "hidden must be an integer"),
        ("hidden", True, "hidden must be an integer"),
        ("dropout", 1.0, "dropout must be in [0, 1)"),
        ("dropout", -0.1, "dropout must be in [0, 1)"),
        ("lr", 0.0, "lr must be > 0"),
        ("lr", float("nan"), "lr must be a finite number"),
        ("weight_decay", -1e-4, "weight_decay must be >= 0"),
        ("batch_size", 0, "batch_size must be >= 1"),
        ("epochs", 0, "epochs must be >= 1"),
        ("seed", -1, "seed must be >= 0"),
        ("output_activation", "tanh", "output_activation must be one of relu, sigmoid, identity"),
        ("precision", "fp16", "precision must be one of fp32, bf16"),
    ],
)
def test_out_of_range_values_are_rejected_with_their_name(key, value, words):
    with pytest.raises(ConfigError) as err:
        TrialConfig(**{key: value})
    assert words in str(err.value)


def test_from_dict_round_trip_and_unknown_keys():
    config = TrialConfig(hidden=64, dropout=0, lr=3e-4)
    assert config.dropout == 0.0 and isinstance(config.dropout, float)
    assert TrialConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown trial config key.*hiden.*valid keys are"):
        TrialConfig.from_dict({"hiden": 64})


def test_frozen():
    with pytest.raises(Exception):
        TrialConfig().hidden = 3  # type: ignore[misc]


def test_an_older_record_is_upgraded_in_one_place():
    """A field added after a record was written ran at what is now its default; what is there stays."""
    from tune_ae.config import TRIAL_FIELDS, upgraded

    old = {"hidden": 64, "dropout": 0.0, "lr": 1e-3, "batch_size": 100, "epochs": 3, "seed": 1}
    filled = upgraded({**old, "output_activation": float("nan"), "precision": None})  # a table's empty cells
    assert list(filled) == list(TRIAL_FIELDS)
    assert filled == {**TrialConfig().to_dict(), **old}
    assert TrialConfig.from_dict(old, fill_defaults=True) == TrialConfig(**old)
    with pytest.raises(ConfigError, match="lacks weight_decay"):
        TrialConfig.from_dict(old)
