"""Real ESPHome firmware for Linux, built from YAML for the tests (and the benchmark).

`esphome compile` needs PlatformIO's `native` platform, which cannot be downloaded here, so
the firmware is built the way ../shared/device-doubles/README.md measured: `esphome compile
--only-generate` writes the C++ (esphome from PyPI, pinned, in its own venv under
~/.cache/uone-test), g++ compiles it. The object files and the binary are cached, keyed on the
YAML text, the esphome version and the compiler flags, so only the first run pays (~40 s per
YAML on 2 cores).

CLI (CI warms the cache before the suite): python -m tests.esphome.firmware plug.yaml ...
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ESPHOME_VERSION = "2026.6.5"
CACHE = Path(os.environ.get("UONE_TEST_CACHE", Path.home() / ".cache" / "uone-test"))
FIRMWARE_DIR = Path(__file__).resolve().parent / "firmware"
CXXFLAGS = ("-std=gnu++20", "-DUSE_HOST", "-DESPHOME_LOG_LEVEL=ESPHOME_LOG_LEVEL_INFO",
            "-fno-exceptions", "-Wno-sign-compare", "-O1", "-w")
# the two generated files that hold the node name and API port, and the MAC
_NAME_FILE = "main.cpp"
_MAC_FILE = "esphome/components/host/helpers.cpp"


class BuildUnavailable(Exception):
    """The firmware cannot be built here (no compiler, no registry): the reason, for a skip."""


def unavailable() -> str | None:
    """Why firmware cannot be built on this machine, or None."""
    if shutil.which("g++") is None:
        return "needs g++ (apt-get install g++)"
    return None


def build(yaml_name: str, *, runtime_identity: bool = False) -> Path:
    """Path of the firmware binary for `firmware/<yaml_name>` (built or from the cache).

    `runtime_identity`: the node name, MAC and API port come from the environment
    (UONE_NODE, UONE_FRIENDLY, UONE_MAC, UONE_API_PORT; the YAML's values otherwise), so
    one binary runs as many devices on one loopback (the benchmark)."""
    yaml_path = FIRMWARE_DIR / yaml_name
    text = yaml_path.read_text()
    key = hashlib.sha256(json.dumps([text, ESPHOME_VERSION, CXXFLAGS, runtime_identity,
                                     _PATCH_VERSION if runtime_identity else 0]).encode()
                         ).hexdigest()[:16]
    base = CACHE / "esphome-fw" / f"{yaml_path.stem}-{key}"
    with _locked(base.with_suffix(".lock")):
        if not (base / "device").exists():
            _build_base(yaml_path, base, runtime_identity)
    return base / "device"


# -- internals ---------------------------------------------------------------------------


def _esphome() -> Path:
    venv = CACHE / f"esphome-{ESPHOME_VERSION}"
    exe = venv / "bin" / "esphome"
    with _locked(venv.with_suffix(".lock")):
        if not exe.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            _run([sys.executable, "-m", "venv", str(venv)])
            _run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                  f"esphome=={ESPHOME_VERSION}"])
    return exe


def _build_base(yaml_path: Path, base: Path, runtime_identity: bool) -> None:
    if (why := unavailable()) is not None:
        raise BuildUnavailable(why)
    esphome = _esphome()
    with tempfile.TemporaryDirectory(prefix="uone-esphome-") as tmp:
        work = Path(tmp)
        shutil.copy(yaml_path, work / yaml_path.name)
        _run([str(esphome), "compile", "--only-generate", yaml_path.name], cwd=work)
        (node,) = (work / ".esphome" / "build").iterdir()
        shutil.rmtree(base, ignore_errors=True)
        base.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(node / "src", base / "src")
    if runtime_identity:
        _patch_runtime_identity(base / "src")
    sources = sorted(p.relative_to(base / "src")
                     for p in (base / "src").rglob("*.cpp"))
    (base / "obj").mkdir()

    def compile_one(rel: Path) -> Path:
        obj = base / "obj" / (str(rel).replace("/", "__") + ".o")
        _run(["g++", *CXXFLAGS, "-I", str(base / "src"), "-c", str(base / "src" / rel),
              "-o", str(obj)])
        return obj

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        objects = list(pool.map(compile_one, sources))
    _link(objects, base / "device.tmp")
    (base / "device.tmp").rename(base / "device")


_PATCH_VERSION = 1
_ENV_HELPER = """#include <cstdlib>
#include <cstring>
static const char *uone_env(const char *key, const char *fallback) {
  const char *v = std::getenv(key);
  return v != nullptr && *v != 0 ? v : fallback;
}
"""


def _patch_runtime_identity(src: Path) -> None:
    """Name, friendly name, API port and MAC from the environment (bench instances)."""
    main = (src / _NAME_FILE).read_text()
    main = main.replace('#include "esphome.h"\n', '#include "esphome.h"\n' + _ENV_HELPER, 1)
    main, n = re.subn(
        r'App\.pre_setup\("([^"]*)", \d+, "([^"]*)", \d+\);',
        lambda m: (f'App.pre_setup(uone_env("UONE_NODE", "{m[1]}"), '
                   f'strlen(uone_env("UONE_NODE", "{m[1]}")), '
                   f'uone_env("UONE_FRIENDLY", "{m[2]}"), '
                   f'strlen(uone_env("UONE_FRIENDLY", "{m[2]}")));'), main)
    main, k = re.subn(r"set_port\((\d+)\);",
                      lambda m: f'set_port((uint16_t) atoi(uone_env("UONE_API_PORT", "{m[1]}")));',
                      main)
    if n != 1 or k != 1:
        raise BuildUnavailable("generated main.cpp changed shape: cannot patch the identity")
    (src / _NAME_FILE).write_text(main)
    helpers = (src / _MAC_FILE).read_text()
    old = "memcpy(mac, esphome_host_mac_address, sizeof(esphome_host_mac_address));"
    if old not in helpers:
        raise BuildUnavailable("generated host helpers changed shape: cannot patch the MAC")
    helpers = helpers.replace(old, old + """
  const char *env = std::getenv("UONE_MAC");
  unsigned int b[6];
  if (env != nullptr && sscanf(env, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4],
                               &b[5]) == 6) {
    for (int i = 0; i < 6; i++) mac[i] = (uint8_t) b[i];
  }""")
    helpers = "#include <cstdio>\n#include <cstdlib>\n" + helpers
    (src / _MAC_FILE).write_text(helpers)


def _link(objects: list[Path], out: Path) -> None:
    _run(["g++", *(str(o) for o in objects), "-o", str(out), "-lpthread"])


def _run(argv: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-3000:]
        raise BuildUnavailable(f"{' '.join(argv[:3])}... failed ({proc.returncode}): {tail}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


if __name__ == "__main__":
    for arg in sys.argv[1:] or sorted(p.name for p in FIRMWARE_DIR.glob("*.yaml")):
        print(build(arg))
