"""The driver's epochs log: append-only, and a line cut short never swallows the next one."""

from pathlib import Path

from tune_ae import results
from tune_ae.callbacks import EpochLog


class FakeTrial:
    def __init__(self, path: Path):
        self.path = str(path)


def test_a_cut_line_in_the_epochs_log_does_not_swallow_the_next_result(tmp_path):
    log_file = tmp_path / "trial" / results.EPOCHS_LOG
    log_file.parent.mkdir()
    log_file.write_text('{"epoch": 1}\n{"epoch": 2, "val_lo')  # a driver killed (or a disk full) mid-line
    log = EpochLog(tmp_path)
    for epoch in (2, 3):  # the resumed run re-reports epoch 2
        log.on_trial_result(0, [], FakeTrial(tmp_path / "trial"), {"epoch": epoch})
    assert [r["epoch"] for r in results.json_lines(log_file)] == [1, 2, 3]
    log.on_trial_result(0, [], FakeTrial(tmp_path / "new"), {"epoch": 1})  # a new trial's log starts clean
    assert (tmp_path / "new" / results.EPOCHS_LOG).read_text() == '{"epoch": 1}\n'
