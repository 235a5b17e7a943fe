"""`tune-ae run|report|bench|dashboard ...` (also `python -m tune_ae ...`): the commands under one name."""

from __future__ import annotations

import sys

COMMANDS = ("run", "report", "bench", "dashboard", "list", "compare")
USAGE = "usage: tune-ae {run,report,bench,dashboard,list,compare} [ARGS...]   (tune-ae COMMAND --help for each)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choose one of {', '.join(COMMANDS)} (see tune-ae --help)", file=sys.stderr)
        return 2
    if command == "run":
        from tune_ae.run import main as command_main
    elif command == "report":
        from tune_ae.report.__main__ import main as command_main
    elif command == "bench":
        from tune_ae.bench.__main__ import main as command_main
    elif command == "list":
        from tune_ae.listing import main as command_main
    elif command == "compare":
        from tune_ae.compare import main as command_main
    else:
        from tune_ae.dashboard import main as command_main
    return command_main(rest, prog=f"tune-ae {command}")


def cli() -> None:
    """The `tune-ae` console script."""
    from tune_ae.args import exit_now

    exit_now(main())


if __name__ == "__main__":
    cli()
