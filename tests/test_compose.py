"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the services, ports, health checks and
start order; every path they name; the config the emulator serves; the database settings the samples read; and
that each step of the image is a script of the repository that CI runs natively too."""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from conftest import require
from emulator.config import ServerConfig
from emulator.engine import dependencies, node_ric, python_runtime

ROOT = Path(__file__).parent.parent
COMPOSE = ROOT / "docker-compose.yml"
EMULATOR = "lambda-freeze"
DATABASES = {"postgres": 5432, "mysql": 3306}  # official image name -> the port its server listens on


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@dataclass
class Dockerfile:
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuation lines joined

    @classmethod
    def parse(cls, path: Path) -> Dockerfile:
        instructions, pending = [], ""
        for line in path.read_text().splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            keyword, _, rest = (pending + line).strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            pending = ""
        assert not pending, f"{path} ends inside a continued line"
        return cls(instructions)

    def all(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]

    @property
    def workdir(self) -> PurePosixPath:
        (workdir,) = self.all("WORKDIR")
        return PurePosixPath(workdir)


def emulator_service(compose: dict[str, Any]) -> dict[str, Any]:
    assert EMULATOR in compose["services"], f"docker-compose.yml has no {EMULATOR} service"
    return compose["services"][EMULATOR]


def dockerfile_of(service: dict[str, Any]) -> Path:
    build = service["build"]
    context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
    return context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, PurePosixPath]]:
    """(host path, container path) of each bind mount ("./dir:/path[:ro]" or the long form)."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts.append((ROOT / source, PurePosixPath(target)))
    return mounts


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where a path inside the emulator's container comes from: a bind mount, else the image's copy of the build
    context (the Dockerfile copies the repository into its WORKDIR)."""
    dockerfile = Dockerfile.parse(dockerfile_of(service))
    path = dockerfile.workdir / container_path
    for source, target in bind_mounts(service):
        if path == target or target in path.parents:
            return source / path.relative_to(target)
    assert dockerfile.workdir in path.parents, f"{container_path} is neither mounted nor copied into the image"
    return dockerfile_of(service).parent / path.relative_to(dockerfile.workdir)


def option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def served_config(compose: dict[str, Any]) -> tuple[Path, ServerConfig]:
    service = emulator_service(compose)
    command = [str(part) for part in service["command"]]
    config = option(command, "--config")
    assert config, "the emulator's command names no --config file"
    file = host_path(service, config)
    return file, ServerConfig.load(file=file, environ={})


def database_kind(service: dict[str, Any]) -> str | None:
    name = str(service.get("image", "")).split(":")[0]
    return name if name in DATABASES else None


# ---------------------------------------------------------------------------------------------- the services
def test_services_and_official_database_images(compose):
    services = compose["services"]
    assert {EMULATOR, "postgres", "mysql"} <= set(services)
    assert database_kind(services["postgres"]) == "postgres"
    assert database_kind(services["mysql"]) == "mysql"
    assert "build" in services[EMULATOR]


def test_emulator_listens_on_every_interface_and_8080_is_published(compose):
    service = emulator_service(compose)
    command = [str(part) for part in service["command"]]
    assert option(command, "--host") == "0.0.0.0", "inside a container 127.0.0.1 is unreachable through a port"
    _, config = served_config(compose)
    port = int(option(command, "--port") or config.port)
    published = []
    for mapping in service["ports"]:
        parts = str(mapping).split(":")
        published.append((int(parts[-2]), int(parts[-1])))
    assert (8080, port) in published, f"port 8080 is not published to the emulator's {port}: {service['ports']}"


def test_emulator_starts_after_healthy_databases(compose):
    service = emulator_service(compose)
    depends_on = service["depends_on"]
    assert isinstance(depends_on, dict), "depends_on needs the long form to wait for health"
    databases = {name for name, s in compose["services"].items() if database_kind(s)}
    assert set(depends_on) == databases
    for name, condition in depends_on.items():
        assert condition == {"condition": "service_healthy"} or condition.get("condition") == "service_healthy"
        assert name in compose["services"], f"depends_on names {name}, which is not a service"


@pytest.mark.parametrize("name", ["postgres", "mysql", EMULATOR])
def test_health_checks(compose, name):
    check = compose["services"][name]["healthcheck"]
    test = check["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
    for key in ("interval", "timeout"):
        assert re.fullmatch(r"\d+(ms|s|m)", str(check[key])), f"{name}: healthcheck {key} {check[key]!r}"
    assert int(check["retries"]) >= 1
    probe = " ".join(test[1:])
    if name == EMULATOR:
        assert "/_lambda-freeze/environments" in probe
    else:
        # over TCP: during the official images' first-start initialisation the server listens on its socket only
        assert "127.0.0.1" in probe
        assert {"postgres": "pg_isready", "mysql": "mysqladmin"}[name] in probe


# ---------------------------------------------------------------------------------------------- paths it names
def test_every_path_it_names_exists(compose):
    service = emulator_service(compose)
    dockerfile = dockerfile_of(service)
    assert dockerfile.parent.is_dir(), f"build context {dockerfile.parent} does not exist"
    assert dockerfile.is_file(), f"{dockerfile} does not exist"
    for source, target in bind_mounts(service):
        assert source.exists(), f"the mount {source} -> {target} names a path that does not exist"
    file, _ = served_config(compose)
    assert file.is_file()
    for name, other in compose["services"].items():
        for source, target in bind_mounts(other):
            assert source.exists(), f"{name}: the mount {source} -> {target} names a path that does not exist"


def test_served_config_parses_and_names_samples(compose):
    file, config = served_config(compose)
    assert config.functions, f"{file} serves no function"
    for function in config.functions:
        assert function.code_dir.is_dir()
        assert ROOT / "samples" in function.code_dir.parents, f"{function.name}: {function.code_dir} is no sample"
    assert "hello" in {f.name for f in config.functions}


def _environ_reads(code_dir: Path) -> tuple[set[str], set[str]]:
    """(variables read with os.environ[...] — required, all variables read) by the Python files of a function."""
    required: set[str] = set()
    read: set[str] = set()
    for source in code_dir.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                if isinstance(node.slice, ast.Constant):
                    required.add(node.slice.value)
                    read.add(node.slice.value)
            elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv"):
                if node.args and isinstance(node.args[0], ast.Constant):
                    read.add(node.args[0].value)
    return required, read


def _imports(code_dir: Path) -> set[str]:
    names: set[str] = set()
    for source in code_dir.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names}


def test_database_samples_get_the_settings_they_read(compose):
    services = compose["services"]
    depends_on = emulator_service(compose)["depends_on"]
    _, config = served_config(compose)
    database_functions = 0
    for function in config.functions:
        required, read = _environ_reads(function.code_dir)
        missing = sorted(required - set(function.env))
        assert not missing, f"{function.name} reads {', '.join(missing)}, which the config does not set"
        if "DB_HOST" not in read:
            continue
        database_functions += 1
        host = function.env["DB_HOST"]
        assert host in services, f"{function.name}: DB_HOST {host} is not a compose service"
        assert host in depends_on, f"{function.name}: the emulator does not wait for {host}"
        kind = database_kind(services[host])
        assert kind is not None, f"{function.name}: DB_HOST {host} is not a PostgreSQL or MySQL service"
        assert function.env["DB_PORT"] == str(DATABASES[kind])
        environment = services[host].get("environment", {})
        if kind == "postgres":
            assert "asyncpg" in _imports(function.code_dir) or "psycopg" in _imports(function.code_dir)
            assert function.env["DB_NAME"] == environment["POSTGRES_DB"]
            assert function.env["DB_USER"] == environment.get("POSTGRES_USER", "postgres")
            assert environment["POSTGRES_HOST_AUTH_METHOD"] == "trust", "the samples send no password"
        else:
            assert "aiomysql" in _imports(function.code_dir) or "pymysql" in _imports(function.code_dir)
            assert function.env["DB_NAME"] == environment["MYSQL_DATABASE"]
            assert function.env["DB_USER"] == "root"
            assert str(environment["MYSQL_ALLOW_EMPTY_PASSWORD"]).lower() == "yes", "the samples send no password"
    assert database_functions >= 2


def test_each_sample_declares_what_it_imports_beyond_the_runtime(compose):
    """As a user's function would: what Lambda's python runtime lacks is in the function's own requirements.txt."""
    _, config = served_config(compose)
    runtime = {"awslambdaric", "boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}
    for function in config.functions:
        if function.runtime.startswith("python"):
            requirements = function.code_dir / "requirements.txt"
            lines = requirements.read_text().splitlines() if requirements.is_file() else []
            declared = {re.split(r"[=<>~!; \[]", line.strip())[0].lower() for line in lines if line.strip()}
            missing = _imports(function.code_dir) - runtime - declared
            assert not missing, f"{function.name} imports {', '.join(sorted(missing))}: add to {requirements}"


# ------------------------------------------------------------------------------- the image and CI, one install
def test_every_dockerfile_step_is_a_script_of_the_repository(compose):
    path = dockerfile_of(emulator_service(compose))
    dockerfile = Dockerfile.parse(path)
    runs = dockerfile.all("RUN")
    assert runs, "the Dockerfile has no RUN step"
    scripts = []
    for run in runs:
        words = shlex.split(run) if not run.startswith("[") else yaml.safe_load(run)
        if words[0] in ("bash", "sh"):
            words = words[1:]
        script = path.parent / words[0]
        assert script.is_file(), f"RUN {run}: {words[0]} is not a script of the repository"
        assert os.access(script, os.X_OK) or run.startswith(("bash", "sh")), f"{script} is not executable"
        assert all(w.startswith("-") for w in words[1:]), f"RUN {run}: one script and its options, nothing else"
        scripts.append(script.relative_to(ROOT).as_posix())
    for copy in dockerfile.all("COPY"):
        *sources, _ = shlex.split(copy)
        for source in sources:
            assert (path.parent / source).exists(), f"COPY {copy}: {source} does not exist"
    # CI runs the same scripts: .ci/run → make test → the .venv target → docker/install.sh → system-packages.sh
    assert re.search(r"^make test$", (ROOT / ".ci/run").read_text(), re.M), ".ci/run does not run make test"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: \$\(VENV\)/\.installed", makefile, re.M), "make test does not install first"
    target = re.search(r"^\$\(VENV\)/\.installed:(.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert target, "the Makefile has no $(VENV)/.installed target"
    prerequisites, recipe = target.group(1).split(), target.group(2)
    assert "docker/install.sh" in recipe, "make test does not install with docker/install.sh"
    install = (ROOT / "docker/install.sh").read_text()
    for script in scripts:
        assert script in recipe or script in install, f"CI never runs {script}"
        assert script in prerequisites, f"a change to {script} does not re-run the install of make test"


def test_the_image_keeps_what_runtimes_load_out_of_opt(compose):
    """Where a runtime gets Lambda's paths, its layers cover /opt: a runtime client, a runtime's virtualenv or a
    build kept there would turn those paths off for its functions (lambda_paths.Mounts.hidden)."""
    dockerfile = Dockerfile.parse(dockerfile_of(emulator_service(compose)))
    env = dict(word.split("=", 1) for line in dockerfile.all("ENV") for word in shlex.split(line) if "=" in word)
    for variable in (node_ric.CACHE_DIR_VARIABLE, python_runtime.CACHE_DIR_VARIABLE, dependencies.CACHE_DIR_VARIABLE,
                     "XDG_CACHE_HOME", "HOME"):
        if variable in env:
            assert not PurePosixPath(env[variable]).is_relative_to("/opt"), f"{variable}={env[variable]} is in /opt"


def test_the_served_command_matches_the_image(compose):
    service = emulator_service(compose)
    dockerfile = Dockerfile.parse(dockerfile_of(service))
    (entrypoint,) = dockerfile.all("ENTRYPOINT")
    assert yaml.safe_load(entrypoint) == ["lambda-freeze"]
    assert service["command"][0] == "serve"
    (cmd,) = dockerfile.all("CMD")
    default = yaml.safe_load(cmd)
    assert option(default, "--host") == "0.0.0.0"
    assert host_path(service, option(default, "--config") or "").is_file()


@pytest.mark.parametrize("script", ["docker/install.sh", "docker/system-packages.sh"])
def test_scripts_parse(script):
    subprocess.run(["bash", "-n", str(ROOT / script)], check=True)


# ------------------------------------------------------------------------------------- the freezer in a container
def test_freezer_falls_back_to_sigstop_when_cgroups_are_read_only_and_says_why():
    """What a container without privileges gives: a read-only /sys/fs/cgroup (made here in a mount namespace)."""
    require(os.geteuid() == 0 and shutil.which("unshare") is not None, "needs root and unshare(1)")
    script = (
        "for m in $(awk '$5 ~ \"^/sys/fs/cgroup\" {print $5}' /proc/self/mountinfo); do "
        'mount -o remount,bind,ro "$m"; done; '
        f'exec {shlex.quote(sys.executable)} -c "import logging; '
        "logging.basicConfig(level=logging.INFO, format='%(name)s: %(message)s'); "
        'from emulator.engine.freezer import create_freezer; print(create_freezer().name)"'
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sigstop"
    assert "lambda_freeze.freezer: freezer: sigstop (auto); " in done.stderr
    assert "Read-only file system" in done.stderr or "no cgroup" in done.stderr
