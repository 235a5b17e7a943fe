"""What `--extend` may add to an experiment's grid: more seeds, more values on an axis, more
samples per point of a search. Anything that would change or drop the trials already run (they
ran as recorded) is refused in one line that says what to give instead.
"""

from __future__ import annotations

from tune_ae.args import flag
from tune_ae.config import TRIAL_FIELDS, ConfigError
from tune_ae.grids import Grid


def check_extension(old: Grid, new: Grid) -> dict:
    """What `new` adds to experiment grid `old`; a ConfigError when it would change or drop what
    `old`'s trials are (they ran as recorded), or adds nothing."""
    def refuse(what: str):
        raise ConfigError(f"--extend adds trials to an experiment; {what}")

    if new.subset != old.subset:
        refuse(f"its trials were trained on {old.subset or 'all'} images: drop --subset (a new data subset is a new experiment)")
    for name in ("search", "search_seed"):
        if getattr(new, name) != getattr(old, name):
            refuse(f"it is a {old.search} search with seed {old.search_seed}: drop {flag(name)}")
    if new.ranges != old.ranges:
        changed = [n for n in TRIAL_FIELDS if new.ranges.get(n) != old.ranges.get(n)]
        refuse("the searched ranges are fixed once it ran (" + ", ".join(
            f"{flag(n)} {old.ranges[n] if n in old.ranges else 'not searched'}" for n in changed) + ")")
    if new.search == "random":  # sample k of a point draws its choices by their count: more choices, other samples
        for name in TRIAL_FIELDS:
            if (name in new.searched() or name in old.searched()) and name not in new.ranges \
                    and new.values(name) != old.values(name):
                refuse(f"a random search's choices are fixed once it ran (the samples drawn depend on them): drop "
                       f"{flag(name)}")
    added = axes_added(old, new, refuse)
    if new.num_samples < old.num_samples:
        refuse(f"it has {old.num_samples} samples per point: --num-samples can only grow")
    if new.num_samples > old.num_samples:
        added["num_samples"] = [old.num_samples, new.num_samples]
    if not added:
        refuse("these flags add nothing to it (more --seeds, a new value on an axis, or more --num-samples); "
               "to finish what an interruption left, use --resume")
    return added


def axes_added(old: Grid, new: Grid, refuse) -> dict:
    added = {}
    for name in TRIAL_FIELDS:
        before, after = old.values(name), new.values(name)
        dropped = [v for v in before if v not in after]
        if dropped and name in new.searched() and name not in old.searched():
            dropped = []  # a choice field that becomes searched: its old value is still among the choices
        if dropped and name == "seed":
            refuse(f"--seeds {len(after)} drops seed(s) {' '.join(map(str, dropped))} of trials already run; "
                   f"give --seeds {len(before)} or more")
        if dropped:
            refuse(f"{flag(name)} {' '.join(map(str, after))} drops {name} "
                   f"{' '.join(map(str, dropped))} of trials already run; give the old values too, "
                   f"e.g. {flag(name)} {' '.join(map(str, [*before, *[v for v in after if v not in before]]))}")
        if set(after) - set(before):
            added[name] = [v for v in after if v not in before]
    return added
