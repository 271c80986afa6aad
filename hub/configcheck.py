"""What `check-config` checks beyond the file itself: the files and certificates it names.

`load_config` checks every value (types, bounds, time zone, names); the hub reads the files
a config points at only when it starts (the API's certificate) or much later (the cloud
broker's CA at the first connection, trust anchors at the first attestation). This reads them
now, so a bad path or a key that does not match its certificate is reported with the
config's file:line instead of a failed start or a log line hours later. Blocking I/O: run it
in the CLI, not on the hub's loop.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from hub.config import LoadedConfig
from hub.errors import ConfigError, ConfigProblem
from hub.yamlsource import KeyPath


def file_problems(loaded: LoadedConfig) -> list[ConfigProblem]:
    """Every problem with the files the config names, located in the config file."""
    cfg, problem = loaded.config, loaded.document.problem
    problems: list[ConfigProblem] = []
    api = cfg.api
    if api.tls_cert and api.tls_key:
        _check_pair(api.tls_cert, api.tls_key, "api", "tls_", problem, problems)
    prov = cfg.provisioning
    if prov.trust_anchors or prov.crl_files or prov.revoked_serials:
        from hub.provisioning.attestation import AttestationVerifier

        try:
            AttestationVerifier.from_files(prov.trust_anchors, prov.crl_files,
                                           prov.revoked_serials, loaded.path.parent, problem)
        except ConfigError as exc:
            problems.extend(exc.problems)
    cloud = cfg.cloud
    if cloud.ca_file:
        try:
            ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cloud.ca_file)
        except (OSError, ssl.SSLError) as exc:
            problems.append(problem(("cloud", "ca_file"), f"{cloud.ca_file}: {_reason(exc)}"))
    if cloud.client_cert and cloud.client_key:
        _check_pair(cloud.client_cert, cloud.client_key, "cloud", "client_", problem,
                    problems)
    problems.sort(key=lambda p: (p.line, p.column))
    return problems


def _check_pair(cert: str, key: str, section: str, prefix: str,
                problem: Callable[[KeyPath, str], ConfigProblem],
                problems: list[ConfigProblem]) -> None:
    """A PEM certificate and its private key (`<section>.<prefix>cert`/`key`): both
    readable, and the key matches the certificate."""
    for path, name in ((cert, "cert"), (key, "key")):
        if not Path(path).is_file():
            problems.append(problem((section, prefix + name), f"{path}: no such file"))
            return
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        problems.append(problem((section, prefix + "cert"), f"{cert} with {key}: {_reason(exc)}"))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)  # e.g. KEY_VALUES_MISMATCH, NO_START_LINE
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
