"""The shape of the package, read from its source with ast: no import circles, commands apart
from the library, Ray only where Tune is faced, and the commands reachable as documented."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tune_ae"
COMMANDS = {"tune_ae.run", "tune_ae.report.__main__", "tune_ae.bench.__main__", "tune_ae.__main__", "tune_ae.dashboard",
            "tune_ae.listing", "tune_ae.compare"}
TUNE_FACING = {"tune_ae.trainable", "tune_ae.tuner", "tune_ae.sweep", "tune_ae.ray_start", "tune_ae.callbacks",
               "tune_ae.search", "tune_ae.hand_on", "tune_ae.ray_internals"}  # ray_internals: inside the function that needs Ray, never at its top


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Module -> every module it imports, at any depth of its code (deferred imports included)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                # `from tune_ae import results` imports the module tune_ae.results
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[module_name(path)] = names
    return {m: {n for n in names if n in found or not n.startswith("tune_ae")} for m, names in found.items()}


def test_no_import_circles():
    graph = {m: {n for n in names if n.startswith("tune_ae") and n != m and n != "tune_ae"} for m, names in imports().items()}
    state = {}

    def visit(module, path):
        if state.get(module) == "open":
            raise AssertionError("import circle: " + " -> ".join(path[path.index(module):] + [module]))
        if state.get(module) == "done":
            return
        state[module] = "open"
        for other in sorted(graph.get(module, ())):
            visit(other, path + [module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])
    assert len(graph) >= 18  # the walk saw the whole package


def test_library_modules_never_import_a_command():
    for module, names in imports().items():
        if module not in COMMANDS:
            assert not names & COMMANDS, f"{module} imports the command(s) {names & COMMANDS}"


def test_only_the_tune_facing_modules_import_ray():
    users = {m for m, names in imports().items() if any(n == "ray" or n.startswith("ray.") for n in names)}
    assert users == TUNE_FACING


@pytest.mark.parametrize("command", [["-m", "tune_ae.run"], ["-m", "tune_ae.report"], ["-m", "tune_ae.bench"],
                                     ["-m", "tune_ae.dashboard"], ["-m", "tune_ae", "run"], ["-m", "tune_ae", "report"],
                                     ["-m", "tune_ae", "bench"], ["-m", "tune_ae", "dashboard"], ["-m", "tune_ae", "list"],
                                     ["-m", "tune_ae", "compare"]])
def test_every_command_answers_help_truthfully(command):
    done = subprocess.run([sys.executable, *command, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "usage:" in done.stdout
    assert "(default: None)" not in done.stdout and "default paper) " not in done.stdout


def test_console_entry_point_is_installed():
    script = Path(sys.executable).parent / "tune-ae"
    assert script.is_file(), "pip install -e . installs the tune-ae command"
    done = subprocess.run([str(script), "bogus"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown command 'bogus'" in done.stderr


# What Ray Tune does not document, by name: used in tune_ae/ray_internals.py and nowhere else,
# so that an upgrade of Ray re-checks one module (tests/test_ray_internals.py). Read from the
# code (attributes and string literals), not from comments and docstrings, which may name them.
INTERNAL_ATTRIBUTES = {"_local_tuner", "run_metadata", "update_resources", "SIGUSR1", "ConsolePopen"}
INTERNAL_STRINGS = ("trial_data", "checkpoint_manager", "experiment_state", "RAY_AIR_NEW_OUTPUT",
                    "TUNE_DISABLE_SIGINT_HANDLER", "RAY_DISABLE_FAILURE_SIGNAL_HANDLER")
TUNE_FILES = {"params.json", "result.json", "error.txt"}


def code_names(tree: ast.AST) -> tuple[set[str], list[str]]:
    """(attribute names, string literals other than docstrings) in a module's code."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    strings = [node.value for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]
    return attributes, strings


def test_ray_tunes_internals_are_named_in_one_module():
    for path in PACKAGE.rglob("*.py"):
        if path.name == "ray_internals.py":
            continue
        attributes, strings = code_names(ast.parse(path.read_text()))
        used = sorted(attributes & INTERNAL_ATTRIBUTES) + sorted(
            {s for s in strings for name in INTERNAL_STRINGS if name in s} | {s for s in strings if s.split("/")[-1] in TUNE_FILES})
        assert not used, f"{path.relative_to(PACKAGE.parent)} uses Ray Tune's internals {used}: go through ray_internals"


def test_every_module_has_its_test_file():
    """tune_ae/X.py -> tests/test_X.py; a package's module tune_ae/P/X.py -> tests/test_P_X.py, or
    tests/test_P.py for those tested through the package (e.g. report/write.py, the report command)."""
    tests = PACKAGE.parent / "tests"
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__main__" or parts == ("__init__",):
            continue
        names = [f"test_{'_'.join(p for p in parts if p != '__init__')}.py"]
        if len(parts) > 1:
            names.append(f"test_{parts[0]}.py")
        if not any((tests / name).is_file() for name in names):
            missing.append(f"{path.relative_to(PACKAGE.parent)}: none of {names}")
    assert not missing, missing


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_commands_module_imports_nothing_heavy(command):
    """Each command sets up its Ctrl-C and error handling first thing in main, after its own
    import: that import must be quick (no torch, pandas, Ray, Optuna or matplotlib, ~0.5-3 s
    each), or a Ctrl-C right after starting it prints a traceback."""
    heavy = ("torch", "pandas", "ray", "optuna", "matplotlib")
    code = f"import sys, {command}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr[-2000:]


def test_small_modules_and_functions():
    """A run's driver stays readable: run.py and sweep.py at most 300 lines, no function over 60."""

    package = Path(__file__).resolve().parent.parent / "tune_ae"
    for name in ("run.py", "sweep.py"):
        assert len((package / name).read_text().splitlines()) <= 300, name
    long = [f"{path.relative_to(package)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in package.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60]
    assert not long

