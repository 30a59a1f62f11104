"""The Node.js runtime interface client (npm ``aws-lambda-ric``): where it is, how it is installed, how it is run.

Lookup order, as on Lambda where a container image may bring its own client:
  1. the function's own ``<code_dir>/node_modules/aws-lambda-ric``;
  2. the project's copy, installed by ``lambda-freeze install-node-ric`` with ``npm ci`` from the committed
     ``emulator/nodejs/package-lock.json`` into ``<cache root>/<sha256 of that lock>/``.

The cache root is ``$LAMBDA_FREEZE_NODE_RIC_DIR``, else ``$XDG_CACHE_HOME/lambda-freeze/node-ric``, else
``~/.cache/lambda-freeze/node-ric``. Keying the directory by the lock's hash means a changed lock never runs against
a stale build, and a CI cache keyed by the same file restores the native build (about 75 s) instead of redoing it.
A stamp file records the Node ABI the addon was compiled for, so a build made under another Node major is refused
with the command that rebuilds it, instead of failing inside the runtime with ``NODE_MODULE_VERSION``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..errors import ConfigError, LambdaFreezeError

PACKAGE = "aws-lambda-ric"
INSTALL_COMMAND = "lambda-freeze install-node-ric"
CACHE_DIR_VARIABLE = "LAMBDA_FREEZE_NODE_RIC_DIR"
LOCK_DIR = Path(__file__).parents[1] / "nodejs"  # package.json + package-lock.json, committed
_STAMP = ".lambda-freeze-build.json"
_BUILD_TOOLS = "cmake, autoconf, automake, libtool, make, g++ and python3"
_NODE_INFO_JS = (
    "const v = process.versions; console.log(JSON.stringify([v.node, v.modules, process.platform, process.arch]))"
)


@dataclass(frozen=True)
class NodeInfo:
    """What the ``node`` on PATH is: its version and the ABI its native addons must be built for."""

    path: str
    version: str  # "20.20.2"
    abi: str  # process.versions.modules, "115" for Node 20
    platform: str  # "linux-x64"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


@cache
def _node_info(path: str) -> NodeInfo:
    try:
        out = subprocess.run([path, "-e", _NODE_INFO_JS], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"cannot run {path} to read its version: {exc}") from None
    version, abi, platform, arch = json.loads(out)
    return NodeInfo(path, version, abi, f"{platform}-{arch}")


def node() -> NodeInfo:
    found = shutil.which("node")
    if found is None:
        raise ConfigError("the Node.js runtimes need `node` on PATH (Node.js 20 or later); none was found")
    return _node_info(found)


def node_for(runtime: str) -> NodeInfo:
    """The ``node`` that runs ``nodejsNN.x``: the one on PATH, if its major version is NN, as on Lambda (another
    major would hide what the function's runtime does differently)."""
    wanted = int(runtime.removeprefix("nodejs").removesuffix(".x"))
    info = node()
    if info.major != wanted:
        raise ConfigError(
            f"runtime {runtime} runs on Node.js {wanted}, but `node` on PATH ({info.path}) is {info.version}: put "
            f"Node.js {wanted} first on PATH (nvm install {wanted}; fnm use {wanted}), or serve the function as "
            f"nodejs{info.major}.x"
        )
    return info


# ------------------------------------------------------------------------------------------------ the cache
def lock_hash() -> str:
    """The sha256 of the committed package-lock: the key of the installed copy."""
    return hashlib.sha256((LOCK_DIR / "package-lock.json").read_bytes()).hexdigest()


def cache_root() -> Path:
    configured = os.environ.get(CACHE_DIR_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lambda-freeze" / "node-ric"


def install_dir() -> Path:
    """Where ``install()`` puts the project's copy: ``<cache root>/<sha256 of package-lock.json>``."""
    return cache_root() / lock_hash()


def _stamp(info: NodeInfo, lock: str) -> dict[str, str]:
    return {"lock_sha256": lock, "node_abi": info.abi, "platform": info.platform, "node_version": info.version}


def _stamp_problem(directory: Path, info: NodeInfo, lock: str) -> str | None:
    """Why the installed copy in ``directory`` cannot serve ``info``'s node, or None."""
    try:
        stamp = json.loads((directory / _STAMP).read_text())
    except (OSError, ValueError):
        return f"{directory} holds no complete installation"
    wanted = _stamp(info, lock)
    for key in ("lock_sha256", "node_abi", "platform"):
        if stamp.get(key) != wanted[key]:
            return (
                f"{directory} was built for {key} {stamp.get(key)!r} (Node {stamp.get('node_version')}), "
                f"not {wanted[key]!r} (Node {info.version})"
            )
    return None


# --------------------------------------------------------------------------------------------- locate, run
def locate(code_dir: Path, info: NodeInfo | None = None) -> Path:
    """The ``aws-lambda-ric`` package directory that serves a function whose code is in ``code_dir``."""
    own = code_dir / "node_modules" / PACKAGE
    if (own / "package.json").is_file():
        return own
    info = info or node()
    directory = install_dir()
    client = directory / "node_modules" / PACKAGE
    if not (client / "package.json").is_file():
        raise ConfigError(
            f"the Node.js runtime interface client ({PACKAGE}) is not installed: run `{INSTALL_COMMAND}` "
            f"(it builds into {directory}), or add {PACKAGE} to the function's own node_modules"
        )
    problem = _stamp_problem(directory, info, lock_hash())
    if problem is not None:
        raise ConfigError(f"the installed {PACKAGE} cannot be used: {problem}; run `{INSTALL_COMMAND}` to rebuild it")
    return client


def entry_point(package_dir: Path) -> Path:
    """The JavaScript file behind the package's ``aws-lambda-ric`` bin (what ``npx aws-lambda-ric`` would run)."""
    try:
        manifest = json.loads((package_dir / "package.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{package_dir / 'package.json'} cannot be read: {exc}; run `{INSTALL_COMMAND}`") from None
    bin_entry = manifest.get("bin")
    relative = bin_entry.get(PACKAGE) if isinstance(bin_entry, dict) else bin_entry
    if not isinstance(relative, str):
        raise ConfigError(f"{package_dir / 'package.json'} declares no {PACKAGE!r} bin; run `{INSTALL_COMMAND}`")
    script = (package_dir / relative).resolve()
    if not script.is_file():
        raise ConfigError(f"{PACKAGE}'s entry point {script} is missing; run `{INSTALL_COMMAND}`")
    return script


def command(runtime: str, code_dir: Path, handler: str) -> list[str]:
    """``node <aws-lambda-ric entry point> <handler>``: the client run directly, without npx's ~0.35 s."""
    info = node_for(runtime)
    return [info.path, str(entry_point(locate(code_dir, info))), handler]


def node_path(code_dir: Path) -> str:
    """Lambda's NODE_PATH (``/opt/nodejs/nodeNN/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:
    /var/runtime:/var/task``) with the client's ``node_modules`` for ``/var/runtime`` and the code for ``/var/task``."""
    try:
        runtime_modules = str(locate(code_dir).parent)
    except ConfigError:  # reported by command(); the variable is still Lambda's shape
        runtime_modules = None
    return ":".join(p for p in (runtime_modules, str(code_dir)) if p)


# ------------------------------------------------------------------------------------------------- install
def install(*, force: bool = False, quiet: bool = False) -> Path:
    """``npm ci`` the committed lock into ``install_dir()`` (built in a temporary directory, then renamed into
    place, so a failed or interrupted build never looks installed). Returns the install directory."""
    info = node()
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError(f"installing {PACKAGE} needs `npm` on PATH (it comes with Node.js)")
    lock = lock_hash()
    target = install_dir()
    if not force and (target / "node_modules" / PACKAGE).is_dir() and _stamp_problem(target, info, lock) is None:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{lock[:12]}-", dir=target.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(LOCK_DIR / name, build / name)
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=build,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if quiet else sys.stderr,
            stderr=subprocess.PIPE if quiet else None,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            detail = f":\n{result.stderr[-4000:]}" if quiet and result.stderr else ""
            raise LambdaFreezeError(
                f"`npm ci` of {PACKAGE} failed (exit status {result.returncode}); its native addon needs "
                f"{_BUILD_TOOLS} (Debian: apt-get install cmake autoconf automake libtool g++ make python3){detail}"
            )
        _prune(build / "node_modules" / PACKAGE)
        (build / _STAMP).write_text(json.dumps(_stamp(info, lock), indent=2) + "\n")
        _swap_into_place(build, target)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    return target


def _prune(package_dir: Path) -> None:
    """Drop the unpacked and compiled sources of curl and aws-lambda-cpp (~150 MB): the addon links them
    statically, so the cached installation, and what CI uploads and restores, shrinks to ~16 MB."""
    for pattern in ("curl-*", "aws-lambda-cpp-*"):
        for path in (package_dir / "deps").glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)


def _swap_into_place(build: Path, target: Path) -> None:
    """Rename ``build`` to ``target``; an older ``target`` is renamed aside first and removed after."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name[:12]}-old-", dir=target.parent))
        os.rename(target, old / "install")
    try:
        os.rename(build, target)
    except OSError:
        if not target.is_dir():  # not a concurrent install that finished first: a real failure
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
