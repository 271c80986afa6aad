"""`uone-hub`: run the daemon and administer it.

Exit codes: 0 ok; 1 the hub failed while running, or a check found damage (`audit verify`);
2 every other failure, printed as one line on stderr (bad config, usage, input, a refused
or failed command); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, NoReturn

from hub import __version__

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_DAMAGED = 3  # the database is damaged: systemd must not restart (RestartPreventExitStatus)

# Modules that add subcommands: each has `register(subparsers)` and sets `func` on its parser.
COMMAND_MODULES: tuple[str, ...] = ("hub.auth.cli", "hub.automation.cli", "hub.privacy.cli",
                                     "hub.vault_cli", "hub.matter_cli")


class CliError(Exception):
    """A command cannot go on; its message is the one line printed (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 too; keep its message format
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(*, commands: bool = True) -> argparse.ArgumentParser:
    """The whole command line; without `commands`, only the core ones (`run` builds this:
    the daemon does not keep the other commands' modules in memory)."""
    parser = _Parser(prog="uone-hub", description="Uone Hub: a local-first home hub.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("run", help="run the hub in the foreground (systemd starts it like this)")
    p.add_argument("-c", "--config", required=True, help="path to config.yaml")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="event loop: uvloop when installed (auto, the default), or asyncio's")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("check-config", help="check a config file and report every problem")
    p.add_argument("config", help="path to config.yaml")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("config-schema", help="print the JSON Schema of the config file")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=lambda args: print(__version__) or EXIT_OK)

    for name in COMMAND_MODULES if commands else ():
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(commands=argv[:1] != ["run"]).parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    args.started = started
    from hub.errors import HubError

    try:
        return func(args)
    except KeyboardInterrupt:
        print("uone-hub: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except HubError as exc:
        field = getattr(exc, "field", None)
        return _fail(f"{field + ': ' if field else ''}{exc}")
    except CliError as exc:
        return _fail(str(exc))
    except EOFError:
        return _fail("standard input ended before the command had what it needs")
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}")
    except sqlite3.Error as exc:
        return _fail(f"database: {exc}")


def config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="path to config.yaml")


def command(fn: Callable[[Any, argparse.Namespace], Coroutine[Any, Any, int]]
            ) -> Callable[[argparse.Namespace], int]:
    """A subcommand's entry: load `--config` (exit 2 on problems), run `await fn(loaded,
    args)`; `main` turns its failures into one line and exit 2."""
    def run(args: argparse.Namespace) -> int:
        loaded = load_or_exit(args.config)
        return asyncio.run(fn(loaded, args))

    return run


def read_secret(what: str, *, flag: str, from_stdin: bool, confirm: bool,
                whole_input: bool = False) -> str:
    """A password or passphrase: from standard input with `flag` (its first line, or all
    of it with `whole_input`), else asked on the terminal (twice with `confirm`). Never
    from argv. CliError when there is neither, or the value is empty."""
    if from_stdin:
        if sys.stdin is None:
            raise CliError(f"{flag}: standard input is closed")
        text = sys.stdin.read() if whole_input else sys.stdin.readline()
        if not text:
            raise CliError(f"{flag}: no {what} on standard input")
        value = text[:-1] if text.endswith("\n") else text
        value = value[:-1] if value.endswith("\r") else value
    else:
        if not _has_terminal():
            raise CliError(f"no terminal to ask for the {what}: pipe it in with {flag}")
        import getpass

        value = getpass.getpass(f"{what.capitalize()}: ")
        if confirm and getpass.getpass("Again: ") != value:
            raise CliError(f"the two {what}s differ")
    if not value:
        raise CliError(f"the {what} is empty")
    return value


@contextlib.asynccontextmanager
async def offline_database(loaded: Any) -> AsyncIterator[tuple[Any, Any]]:
    """The state directory's database and audit log, for a command run whether the hub
    runs or not (SQLite WAL), with short commits: (db, audit)."""
    from hub.audit import AuditLog
    from hub.clock import SystemClock
    from hub.hub import DB_FILENAME, core_schemas
    from hub.storage import Database

    async with Database(loaded.state_dir / DB_FILENAME, core_schemas(),
                        commit_interval=0.05) as db:
        audit = AuditLog(db, SystemClock())
        await audit.load()
        yield db, audit


def load_or_exit(path: str):
    """Load a config, or print every problem and exit 2."""
    from hub.config import load_config
    from hub.errors import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        raise SystemExit(print_problems(exc.problems)) from None


def print_problems(problems: list[Any]) -> int:
    """Print config problems, one a line with file:line:column (a single one on the
    heading's line); returns exit 2."""
    if len(problems) == 1:
        print(f"uone-hub: config error: {problems[0]}", file=sys.stderr)
        return EXIT_USAGE
    print(f"uone-hub: {len(problems)} config errors:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return EXIT_USAGE


def _cmd_run(args: argparse.Namespace) -> int:
    from hub.logsetup import setup_logging

    loaded = load_or_exit(args.config)
    setup_logging(loaded.config.log_level)
    from hub import daemon
    from hub.storage import DatabaseDamaged

    try:
        with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
            return runner.run(daemon.run(loaded, started=args.started))
    except DatabaseDamaged as exc:  # a known state with its own way out: no traceback
        import logging

        logging.getLogger("hub").critical("refusing to start: %s", exc)
        return EXIT_DAMAGED
    except Exception as exc:
        import logging

        logging.getLogger("hub").critical("hub failed: %s", exc, exc_info=True)
        return EXIT_FAILURE


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed: about twice less CPU per websocket message and per
    task switch than asyncio's pure-Python loop (bench.automation). The hub runs the same
    on either; `--loop asyncio` or an absent uvloop gives asyncio's default."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("--loop uvloop: uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


def _cmd_check(args: argparse.Namespace) -> int:
    from hub.configcheck import file_problems

    loaded = load_or_exit(args.config)
    problems = file_problems(loaded)
    if problems:
        return print_problems(problems)
    print(f"{args.config}: ok ({len(loaded.config.integrations)} integrations)")
    return EXIT_OK


def _fail(message: str) -> int:
    print(f"uone-hub: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _has_terminal() -> bool:
    """Whether getpass can ask someone (it reads /dev/tty, else falls back to stdin)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def _cmd_schema(args: argparse.Namespace) -> int:
    from hub.config import config_schema

    print(json.dumps(config_schema(), indent=2))
    return EXIT_OK
