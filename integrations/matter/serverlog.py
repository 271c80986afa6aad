"""Why a commissioning failed, from what the Matter server logged during the attempt.

python-matter-server answers every failed commissioning with the same "Commission with code
failed for node N." The CHIP SDK's lines in its log (read from where it ended when the
attempt began) say which of these it was:

- `attestation_failed`: the SDK refused the device's attestation (`attestation.refusal`);
- `wrong_code`: PASE failed on the key confirmation: "Failed to verify peer's MAC. This can
  happen when setup code is incorrect." (the device is there, the passcode is not its own);
- `pairing_refused`: the device refused to start PASE ("Invalid PASE parameter") without a
  wrong-passcode line: typically its commissioning window closed after too many attempts;
- `not_found`: "Discovery timed out" with no PASE attempt: no device with that code's
  discriminator answered on the network (off, not in pairing mode, another network).

Anything else stays `commission_failed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integrations.matter.attestation import refusal_in_text

_WRONG_CODE = ("Failed to verify peer's MAC", "setup code is incorrect")
_PASE_REFUSED = "Invalid PASE parameter"
_NOT_FOUND = "Discovery timed out"


@dataclass(frozen=True, slots=True)
class Failure:
    code: str
    message: str
    attestation: dict[str, Any] | None = None


def read_since(path: Path, since: int) -> str:
    """The log after byte `since` (blocking: a thread; raises OSError when unreadable). A log
    rotated meanwhile (smaller than `since`) is read from its start."""
    with path.open("rb") as f:
        f.seek(0, 2)
        f.seek(since if f.tell() >= since else 0)
        return f.read(4 * 1024 * 1024).decode("utf-8", "replace")


def failure(text: str, server_said: str) -> Failure:
    """The reason, from the log lines of one attempt and the server's own answer."""
    refused = refusal_in_text(text)
    if refused is not None:
        return Failure("attestation_failed", f"{refused.reason}: not added", refused.to_json())
    if any(marker in text for marker in _WRONG_CODE):
        return Failure("wrong_code", "the device refused the pairing code: it answered, but "
                       "the code's passcode is not its own (check the code; after about 20 "
                       "wrong attempts a device closes its commissioning window: power-cycle "
                       "it or reopen pairing mode)")
    if _PASE_REFUSED in text:
        return Failure("pairing_refused", "the device refused to start pairing: its "
                       "commissioning window is probably closed (too many attempts, or it "
                       "timed out): power-cycle it or reopen pairing mode, then try again")
    if _NOT_FOUND in text and "PASE" not in text:  # nothing answered: no pairing began
        return Failure("not_found", "no device with this code was found on the network (the "
                       "device did not answer): is it powered, in pairing mode and on this "
                       "network?")
    return Failure("commission_failed", f"commissioning failed ({server_said})")


def failure_in_log(path: Path, since: int, server_said: str) -> Failure:
    """`failure` of what the server logged after byte `since` (blocking; OSError when the log
    cannot be read)."""
    return failure(read_since(path, since), server_said)
