"""Logging to stderr in a journald-friendly form, with secrets scrubbed on the way out."""

from __future__ import annotations

import logging
import re
import sys

# Anything that looks like a credential in a log line is replaced before it is written.
_SECRET_PATTERNS = [
    re.compile(r"(?i)(password|passwd|secret|token|bind_key|psk|passphrase)(['\"]?\s*[:=]\s*)"
               r"(['\"]?)[^\s'\",}]+"),
    re.compile(r"(?i)(authorization:\s*bearer\s+)\S+"),
]

# journald reads "<N>" priority prefixes on stderr lines (sd-daemon(3)).
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


def scrub(text: str) -> str:
    text = _SECRET_PATTERNS[0].sub(r"\1\2\3***", text)
    return _SECRET_PATTERNS[1].sub(r"\1***", text)


class _Formatter(logging.Formatter):
    def __init__(self, journald: bool) -> None:
        fmt = "%(name)s: %(message)s"
        if not journald:
            fmt = "%(asctime)s %(levelname)s " + fmt
        super().__init__(fmt)
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        text = scrub(super().format(record))
        if self.journald:
            prio = _PRIORITY.get(record.levelno, 6)
            return "\n".join(f"<{prio}>{line}" for line in text.splitlines())
        return text


# The least a library's logger lets through, whatever the hub's level. aioesphomeapi's
# reconnect logic logs each reconnect cycle itself (a WARNING "Can't connect" per cycle, INFO
# on each disconnect and recovery) where the ESPHome integration logs a loss once and the
# recovery once; only its ERRORs (an unexpected exception in the library) get through.
QUIET = {"aiohttp.access": logging.WARNING, "bleak": logging.WARNING,
         "zeroconf": logging.WARNING, "aiosqlite": logging.WARNING,
         "aioesphomeapi.reconnect_logic": logging.ERROR}


def setup_logging(level: str = "info") -> None:
    import os

    journald = bool(os.environ.get("JOURNAL_STREAM"))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(journald))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy, floor in QUIET.items():
        logging.getLogger(noisy).setLevel(max(floor, root.level))
