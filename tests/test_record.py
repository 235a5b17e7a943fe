"""tune_ae's own record of each trial: events in order, a restart voiding an older end, lines cut short.
(That it lies out of reach of Tune's state sync: test_ray_internals.)"""

from tune_ae import record


def test_a_trials_status_is_its_last_event(tmp_path):
    r = record.Recorder(tmp_path, ["hidden"])
    r.start("a", {"hidden": 8, "lr": 1e-3})
    r.start("b", {"hidden": 8, "lr": 2e-3})
    r.end("a", "done", 10, 0.5)
    r.end("b", "error", 3, error="boom " * 200)
    r.start("b", {"hidden": 8, "lr": 2e-3})  # retried by the next run: its error is void
    entries = record.trials(tmp_path)
    assert list(entries) == ["a", "b"] and [e.sample for e in entries.values()] == [0, 1]
    assert entries["a"].status == "done" and entries["a"].value == 0.5 and entries["a"].epoch == 10
    assert entries["b"].status is None and entries["b"].error is None  # unfinished, not an error
    r.end("b", "stopped early", 5, 0.7, by="asha")
    assert record.trials(tmp_path)["b"].status == "stopped early" and record.trials(tmp_path)["b"].by == "asha"
    assert len(record.events(tmp_path)[3]["error"]) == 500  # cut to what the tables show


def test_an_interruption_does_not_overwrite_an_end_and_samples_count_per_point(tmp_path):
    r = record.Recorder(tmp_path, ["hidden"])
    r.start("a", {"hidden": 8})
    r.end("a", "done", 3, 0.1)
    r.end("a", "interrupted", 3)  # the sweep's stop after the trial had ended: no event
    r.start("b", {"hidden": 16})
    r.start("c", {"hidden": 8})
    assert [e["event"] for e in record.events(tmp_path)] == ["start", "end", "start", "start"]
    again = record.Recorder(tmp_path, ["hidden"])  # the next run knows the samples begun
    again.start("d", {"hidden": 16})
    assert {n: (e.point, e.sample) for n, e in record.trials(tmp_path).items()} == {
        "a": ({"hidden": 8}, 0), "b": ({"hidden": 16}, 0), "c": ({"hidden": 8}, 1), "d": ({"hidden": 16}, 1)}


def test_a_line_cut_short_is_skipped_and_the_next_starts_on_its_own_line(tmp_path):
    r = record.Recorder(tmp_path, [])
    r.start("a", {"hidden": 8})
    with record.path(tmp_path).open("a") as f:
        f.write('{"event": "end", "trial": "a", "sta')  # a kill mid-write
    assert record.trials(tmp_path)["a"].status is None
    record.Recorder(tmp_path, []).end("a", "done", 1, 0.2)
    assert record.trials(tmp_path)["a"].status == "done"
    assert record.path(tmp_path).read_text().count("\n") == 3
    assert record.trials(tmp_path / "nowhere") == {}  # no record: no trials
