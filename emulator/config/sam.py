"""SAM templates: the functions of a template (``AWS::Serverless::Function``, and ``AWS::Lambda::Function`` with
local code) as ``FunctionConfig``s, for ``lambda-freeze serve --template``.

What cannot be honoured locally (event sources, layers, VPC, tracing, ...) is named in a warning on the
``lambda_freeze.sam`` logger, never silently dropped; what makes a function impossible to serve (no template, no
function, a code directory that is not there) is a ``ConfigError`` naming the resource and the field.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from ..errors import ConfigError
from . import layers, sam_http
from .cloudformation import _NO_VALUE, _describe, _is_intrinsic, _Resolver, _TemplateLoader, _Unresolvable
from .settings import RUNTIMES, FunctionConfig

log = logging.getLogger("lambda_freeze.sam")

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"

# Properties served as Lambda serves them (AWS::Lambda::Function spells the code ``Code``).
_HONOURED = frozenset(
    "Handler Runtime CodeUri Code Timeout MemorySize Environment ReservedConcurrentExecutions EventInvokeConfig "
    "FunctionName Architectures PackageType Layers".split()
)
# Event source types that sam_events.py serves.
_EMULATED_EVENTS = frozenset({"SQS", "Schedule", "ScheduleV2"})
# Resources that sam_events.py creates on the AWS endpoint.
_CREATED_RESOURCES = frozenset({"AWS::SQS::Queue", "AWS::S3::Bucket"})
# Properties that change nothing about how a function runs.
_NO_EFFECT = frozenset({"Description", "Tags", "PropagateTags"})
# Why each of the others is not honoured; a property missing here gets a generic reason.
_NOT_HONOURED: dict[str, str] = {
    "Events": "event sources are not emulated; call the function through the Invoke API",
    "VpcConfig": "there is no VPC: the function reaches whatever the emulator's host reaches",
    "Tracing": "X-Ray is not emulated",
    "TracingConfig": "X-Ray is not emulated",
    "DeadLetterQueue": "no dead-letter queue: failed asynchronous events are recorded by the emulator",
    "DeadLetterConfig": "no dead-letter queue: failed asynchronous events are recorded by the emulator",
    "Role": "IAM is not emulated: the function gets placeholder credentials",
    "Policies": "IAM is not emulated: the function gets placeholder credentials",
    "PermissionsBoundary": "IAM is not emulated",
    "RolePath": "IAM is not emulated",
    "KmsKeyArn": "environment variables are not encrypted",
    "AutoPublishAlias": "versions and aliases are not emulated: only $LATEST is served",
    "AutoPublishCodeSha256": "versions and aliases are not emulated: only $LATEST is served",
    "AutoPublishAliasAllProperties": "versions and aliases are not emulated: only $LATEST is served",
    "VersionDescription": "versions and aliases are not emulated: only $LATEST is served",
    "DeploymentPreference": "deployments are not emulated",
    "ProvisionedConcurrencyConfig": "provisioned concurrency is not emulated (the prewarm setting is the nearest)",
    "LoggingConfig": "logs are written as text lines to the emulator's output",
    "EphemeralStorage": "/tmp is the host's",
    "SnapStart": "SnapStart is not emulated",
    "FileSystemConfigs": "EFS is not mounted",
    "CodeSigningConfigArn": "code signing is not checked",
    "RuntimeManagementConfig": "the runtime is the one installed here",
    "RecursiveLoop": "recursive loop detection is not emulated",
    "ImageConfig": "container image functions are not served",
    "InlineCode": "inline code is not served",
}


# ------------------------------------------------------------------------------------------------ reading
def load_template(path: Path) -> dict[str, Any]:
    """The template as plain data (YAML or JSON), short-form tags in their long forms."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"SAM template {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"SAM template {path} cannot be read: {exc.strerror}") from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    else:
        try:
            data = yaml.load(text, Loader=_TemplateLoader)  # a SafeLoader subclass: no arbitrary objects
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a template is a mapping with a Resources section")
    return data


# ------------------------------------------------------------------------------------------------ functions
def functions_from_template(
    path: Path,
    parameters: Mapping[str, str] | None = None,
    overlay: Callable[[Mapping[str, Any], str, FunctionConfig], FunctionConfig] | None = None,
) -> list[FunctionConfig]:
    """The functions a SAM template defines, ready to serve. Warnings name everything not honoured.

    ``parameters`` override the template's parameters (``--parameter-overrides``); ``overlay`` gets the template,
    each function's logical id and its config, and returns the config to serve (the command line's overrides)."""
    path = Path(path)
    template = load_template(path)
    resources = template.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise ConfigError(f"{path}: the template has no Resources")
    resolve = _Resolver(template)
    for name, value in (parameters or {}).items():
        if name not in resolve.parameters and name not in resolve.no_default:
            log.warning("%s: --parameter-overrides %s is not honoured: the template has no such parameter", path, name)
            continue
        resolve.parameters[name] = value
        resolve.no_default.discard(name)
    apis = sam_http.rest_apis(template, resolve)
    global_props = ((template.get("Globals") or {}).get("Function")) or {}
    if not isinstance(global_props, dict):
        raise ConfigError(f"{path}: Globals.Function must be a mapping of function properties")
    functions: list[FunctionConfig] = []
    skipped: list[str] = []
    others: list[tuple[str, Any]] = []
    served: list[str] = []
    for logical_id, resource in resources.items():
        kind = resource.get("Type") if isinstance(resource, dict) else None
        if kind in layers.LAYER_TYPES:  # served with the functions that name them
            continue
        if kind not in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION):
            if kind not in _CREATED_RESOURCES:
                others.append((logical_id, kind))
            continue
        props = resource.get("Properties") or {}
        if not isinstance(props, dict):
            raise ConfigError(f"{path}: Resources.{logical_id}.Properties must be a mapping")
        from_globals: frozenset[str] = frozenset()
        if kind == SERVERLESS_FUNCTION:  # Globals apply to SAM's own resource type only
            from_globals = frozenset(global_props) - set(props)
            props = _merge_globals(global_props, props)
        function = _Function(path, logical_id, kind, resource, props, resolve, from_globals, apis).config()
        if function is None:
            skipped.append(logical_id)
        else:
            where = f"{path}: Resources.{logical_id}.Properties"
            found = layers.from_template(props.get("Layers"), resources, base=path.parent.resolve(), where=where,
                                         resolve=resolve)
            function = dataclasses.replace(function, layers=found) if found else function
            functions.append(overlay(template, logical_id, function) if overlay is not None else function)
            served.append(logical_id)
    # An API whose routes the front door serves is created locally, in effect: it is not listed as missing.
    with_routes = sam_http.apis_with_routes(resources, served)
    missing = [f"{logical_id} ({kind})" for logical_id, kind in others if logical_id not in with_routes]
    if missing:
        log.warning(
            "%s: resources not created locally (functions reach them only where they exist): %s",
            path,
            ", ".join(missing),
        )
    if not functions:
        detail = f" ({', '.join(skipped)} cannot be served: see the warnings)" if skipped else ""
        raise ConfigError(
            f"{path}: no function to serve: no {SERVERLESS_FUNCTION} or {LAMBDA_FUNCTION} with local code{detail}"
        )
    return functions


def _merge_globals(global_props: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's rule: the function's value wins over Globals; mappings merge key by key (so Environment.Variables
    combine), lists are concatenated (Globals first). An intrinsic function on either side replaces, as in SAM."""
    merged = dict(global_props)
    for key, value in props.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict) and not _is_intrinsic(base) and not _is_intrinsic(value):
            merged[key] = _merge_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list):
            merged[key] = [*base, *value]
        else:
            merged[key] = value
    return merged


class _Function:
    """One function resource turned into a FunctionConfig (or None, with a warning saying why it is skipped)."""

    def __init__(
        self,
        path: Path,
        logical_id: str,
        kind: str,
        resource: Mapping[str, Any],
        props: Mapping[str, Any],
        resolve: _Resolver,
        from_globals: frozenset[str] = frozenset(),
        apis: Mapping[str | None, sam_http.RestApi] | None = None,
    ):
        self.path = path
        self.logical_id = logical_id
        self.kind = kind
        self.resource = resource
        self.props = props
        self.resolve = resolve
        self.from_globals = from_globals
        self.where = f"{path}: Resources.{logical_id}"
        self.apis = apis or {None: sam_http.RestApi()}  # the REST APIs its Api events may name

    def _field(self, field: str) -> str:
        """Where a property is written: the function's Properties, or Globals.Function that it inherits."""
        from_globals = field.split(".")[0] in self.from_globals
        return f"{self.where}.Properties.{field}" + (" (from Globals.Function)" if from_globals else "")

    def warn(self, field: str, reason: str) -> None:
        log.warning("%s is not honoured: %s", self._field(field), reason)

    def skip(self, reason: str) -> None:
        log.warning("%s (%s) is not served: %s", self.where, self.kind, reason)

    def fail(self, field: str, problem: str) -> ConfigError:
        return ConfigError(f"{self._field(field)}: {problem}")

    def evaluate(self, field: str, value: Any) -> Any:
        """A value found under ``field``, evaluated; one that cannot be evaluated locally is an error naming it."""
        try:
            return self.resolve(value)
        except _Unresolvable as exc:
            raise self.fail(field, str(exc)) from None

    def value(self, field: str, default: Any = None) -> Any:
        """A property, evaluated; a value that cannot be evaluated locally is an error naming the field."""
        if field not in self.props:
            return default
        try:
            value = self.resolve(self.props[field])
        except _Unresolvable as exc:
            raise self.fail(field, str(exc)) from None
        return default if value is _NO_VALUE else value

    def config(self) -> FunctionConfig | None:
        self._warn_resource_attributes()
        if self.value("PackageType", "Zip") == "Image":
            self.skip("PackageType Image: container image functions are not supported; serve the code directory")
            return None
        code_dir = self._code_dir()
        if code_dir is None:
            return None
        runtime = self.value("Runtime")
        if runtime is None:
            raise self.fail("Runtime", f"required for a Zip function; one of {', '.join(RUNTIMES)}")
        if runtime not in RUNTIMES:
            self.skip(f"Runtime {runtime} is not supported here; supported: {', '.join(RUNTIMES)}")
            return None
        handler = self.value("Handler", "")
        if not isinstance(handler, str):
            raise self.fail("Handler", f"expected a string, not {handler!r}")
        self._warn_properties()
        self._check_architectures()
        settings: dict[str, Any] = {}
        for field, setting, parse in (
            ("Timeout", "timeout_s", float),
            ("MemorySize", "memory_mb", int),
            ("ReservedConcurrentExecutions", "reserved_concurrency", int),
        ):
            raw = self.value(field)
            if raw is not None:
                try:
                    settings[setting] = parse(raw)
                except (TypeError, ValueError):
                    raise self.fail(field, f"expected a number, not {raw!r}") from None
        settings.update(self._event_invoke_config())
        settings["routes"] = sam_http.routes_from_events(self.props.get("Events"), self.evaluate, self.fail, self.apis)
        settings["url"] = sam_http.function_url(self.value("FunctionUrlConfig"), self.fail)
        try:
            return FunctionConfig(
                name=self._name(),
                code_dir=code_dir,
                handler=handler,
                runtime=runtime,
                env=self._environment(),
                **settings,
            )
        except ConfigError as exc:
            raise ConfigError(f"{self.where}: {exc.message}") from None

    def _code_dir(self) -> Path | None:
        base = self.path.parent.resolve()
        if self.kind == LAMBDA_FUNCTION:
            field, code = "Code", self.value("Code")
            if code is None:
                raise self.fail(field, "required: a local code directory (Code: ./src)")
            if isinstance(code, dict):
                what = "inline code (ZipFile)" if "ZipFile" in code else "code in S3 or an image"
                self.skip(f"Code is {what}; lambda-freeze serves a local code directory (Code: ./dir)")
                return None
        else:
            if "InlineCode" in self.props:
                self.skip("InlineCode: inline code is not served; put it in a directory named by CodeUri")
                return None
            field, code = "CodeUri", self.value("CodeUri", ".")  # SAM CLI reads a missing CodeUri as "."
            if isinstance(code, dict):
                self.skip("CodeUri names code in S3 (Bucket/Key); lambda-freeze serves a local code directory")
                return None
        if not isinstance(code, str):
            raise self.fail(field, f"expected a directory, not {code!r}")
        if code.startswith("s3://"):
            self.skip(f"{field} {code} is code in S3; lambda-freeze serves a local code directory")
            return None
        directory = (base / code).resolve()
        if directory.is_file():
            raise self.fail(field, f"{code} is a file ({directory}); unpack it and name the directory")
        if not directory.is_dir():
            raise self.fail(field, f"{code}: the code directory {directory} does not exist")
        return directory

    def _name(self) -> str:
        name = self.props.get("FunctionName")
        if name is None:
            return self.logical_id
        if isinstance(name, str):
            return name
        self.warn("FunctionName", f"{_describe(name)} is not a literal name; served as {self.logical_id}")
        return self.logical_id

    def _environment(self) -> dict[str, str]:
        """Environment.Variables, each evaluated on its own: one that cannot be is named and left out."""
        try:
            environment = self.resolve_intrinsic(self.props.get("Environment") or {})
            variables = environment.get("Variables") or {} if isinstance(environment, dict) else None
            variables = self.resolve_intrinsic(variables)
        except _Unresolvable as exc:
            self.warn("Environment", f"{exc}; no variable is set")
            return {}
        if not isinstance(variables, dict):
            raise self.fail("Environment", "expected a mapping with Variables: {NAME: value}")
        env: dict[str, str] = {}
        for key, value in variables.items():
            try:
                resolved = self.resolve(value)
            except _Unresolvable as exc:
                self.warn(f"Environment.Variables.{key}", f"{exc}; the variable is not set")
                continue
            if resolved is _NO_VALUE:
                continue
            if isinstance(resolved, bool):  # CloudFormation's strings for YAML booleans
                env[str(key)] = "true" if resolved else "false"
            elif resolved is None or isinstance(resolved, (str, int, float)):
                env[str(key)] = "" if resolved is None else str(resolved)
            else:
                self.warn(f"Environment.Variables.{key}", f"{resolved!r} is not a string; the variable is not set")
        return env

    def resolve_intrinsic(self, value: Any) -> Any:
        """``value`` itself evaluated when it is an intrinsic function, else as it is (its parts unevaluated)."""
        return self.resolve(value) if _is_intrinsic(value) else value

    def _event_invoke_config(self) -> dict[str, Any]:
        config = self.value("EventInvokeConfig", {})
        if not isinstance(config, dict):
            raise self.fail("EventInvokeConfig", "expected a mapping")
        settings: dict[str, Any] = {}
        for key, value in config.items():
            try:
                if key == "MaximumRetryAttempts":
                    settings["max_retry_attempts"] = int(value)
                elif key == "MaximumEventAgeInSeconds":
                    settings["max_event_age_s"] = float(value)
                elif key == "DestinationConfig":
                    self.warn(
                        "EventInvokeConfig.DestinationConfig",
                        "destinations are not emulated: failures are recorded by the emulator",
                    )
                else:
                    self.warn(f"EventInvokeConfig.{key}", "not supported by lambda-freeze")
            except (TypeError, ValueError):
                raise self.fail(f"EventInvokeConfig.{key}", f"expected a number, not {value!r}") from None
        return settings

    def _warn_properties(self) -> None:
        for prop, value in self.props.items():
            if prop in _HONOURED or prop in _NO_EFFECT:
                continue
            reason = _NOT_HONOURED.get(prop, "not supported by lambda-freeze")
            if prop == "FunctionUrlConfig":
                continue  # served by the front door
            if prop == "Events" and isinstance(value, dict):
                value = {
                    name: event
                    for name, event in value.items()
                    if not (isinstance(event, dict) and event.get("Type") in sam_http.HTTP_EVENT_TYPES)
                }
                if not value:
                    continue  # every event is served by the front door
                kinds = ", ".join(
                    f"{name} ({event.get('Type') if isinstance(event, dict) else '?'})"
                    for name, event in value.items()
                    if not (isinstance(event, dict) and event.get("Type") in _EMULATED_EVENTS)  # sam_events.py's
                )
                if not kinds:
                    continue
                reason = f"{kinds}: {reason}"
            self.warn(prop, reason)

    def _warn_resource_attributes(self) -> None:
        condition = self.resource.get("Condition")
        if condition is not None:
            log.warning("%s: Condition %s is not evaluated; the function is served", self.where, condition)
        metadata = self.resource.get("Metadata")
        build = metadata.get("BuildMethod") if isinstance(metadata, dict) else None
        if build is not None and ".aws-sam" not in self.path.parts:
            log.warning(
                "%s: Metadata.BuildMethod %s: the code is served as it is in the code directory, unbuilt; "
                "run `sam build` and serve .aws-sam/build/template.yaml to serve the built code",
                self.where,
                build,
            )

    def _check_architectures(self) -> None:
        architectures = self.value("Architectures")
        if architectures is None:
            return
        host = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
            platform.machine().lower(), platform.machine()
        )
        if architectures != [host]:
            self.warn("Architectures", f"{architectures}: the function runs on this machine's {host}")
