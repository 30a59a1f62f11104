"""What a scenario needs before it can run: runtime clients, Node.js packages, the services' programs, reachable
database servers. A missing one is ``CannotRun``, with a message that says how to provide it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..config.settings import NODE_RUNTIMES, FunctionConfig
from ..errors import LambdaFreezeError
from .model import Scenario
from .services import command_problem


class CannotRun(LambdaFreezeError):
    """A scenario whose prerequisites are missing (a database server, a runtime client); the message says how to
    provide them."""

    error_type = "CannotRun"


def preflight(scenario: Scenario) -> dict[str, Any]:
    """Check that every function can start and every database server is reachable; returns one administrator per
    database kind the scenario uses."""
    from ..databases import MySQLUsers, PostgresRoles, mysql_dsn, postgres_dsn
    from ..engine.runtimes import bootstrap_problem

    for spec in scenario.functions.values():
        config = FunctionConfig(name=spec.name, code_dir=spec.code_dir, **spec.settings)
        problem = bootstrap_problem(config) or (
            node_modules_problem(spec.code_dir, config.runtime if config.build else None)
            if config.runtime in NODE_RUNTIMES
            else None
        )
        if problem is not None:
            raise CannotRun(f"function {spec.name}: {problem}")
    for service in scenario.services.values():
        problem = command_problem(service)
        if problem is not None:
            raise CannotRun(problem)
    admins: dict[str, Any] = {}
    for kind in sorted({database.kind for database in scenario.databases.values()}):
        admin = PostgresRoles(postgres_dsn()) if kind == "postgresql" else MySQLUsers(mysql_dsn())
        variable = "LAMBDA_FREEZE_PG_DSN" if kind == "postgresql" else "LAMBDA_FREEZE_MYSQL_DSN"
        try:
            admin.check()
        except OSError as exc:
            raise CannotRun(
                f"{'PostgreSQL' if kind == 'postgresql' else 'MySQL'} at {admin.host}:{admin.port} is not reachable "
                f"({' '.join(str(exc).split())[:160]}): start it, or point {variable} at one"
            ) from None
        admins[kind] = admin
    return admins


def node_modules_problem(code_dir: Path, runtime: str | None = None) -> str | None:
    """A Node.js function's dependencies that ``require()`` would not find: those of the nearest ``package.json`` at or
    above its code directory, looked up in ``node_modules`` folders from there upwards, as Node does. With the
    ``runtime`` the engine builds for (its dependency build on), a ``package.json`` of the code directory itself is
    the engine's to install (``npm ci`` into a cached build, as ``sam build``): a problem then only without npm."""
    if runtime is not None:
        from ..engine import node_dependencies
        from ..engine.dependencies import BuildFailed

        try:
            needed = node_dependencies.build_dir(code_dir, runtime) is not None
        except BuildFailed as exc:
            return str(exc)
        if needed:
            if node_dependencies.built(code_dir, runtime) is not None or shutil.which("npm") is not None:
                return None
            return (f"the dependencies in {code_dir / 'package.json'} are not installed, and npm is not on PATH to "
                    f"install them: install Node.js's npm, or run `npm ci` in {code_dir}")
    package = next((d / "package.json" for d in (code_dir, *code_dir.parents) if (d / "package.json").is_file()),
                   None)
    if package is None:
        return None
    try:
        dependencies = json.loads(package.read_text()).get("dependencies", {})
    except (OSError, ValueError) as exc:
        return f"cannot read {package}: {exc}"
    folders = [d / "node_modules" for d in (package.parent, *package.parent.parents)]
    missing = sorted(name for name in dependencies
                     if not any((folder / name / "package.json").is_file() for folder in folders))
    if missing:
        return (f"{', '.join(missing)} (dependencies in {package}) are not installed: run `npm ci` (or "
                f"`npm install`) in {package.parent}")
    return None
