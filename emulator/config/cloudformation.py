"""CloudFormation in templates: short-form tags (``!Ref X``) and the intrinsic functions evaluable without a stack."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml  # type: ignore[import-untyped]

from .resource_values import NAME_PROPERTIES, resource_value
from .settings import ACCOUNT_ID

# Pseudo parameters as the served functions see them (FunctionConfig's region and account; SAM CLI's stack name).
PSEUDO_PARAMETERS: dict[str, str] = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "local",
}

_INTRINSIC = re.compile(r"^(Ref|Condition|Fn::\w+)$")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_NO_VALUE = object()  # Ref AWS::NoValue: the property is left out


class _Unresolvable(Exception):
    """An intrinsic function that cannot be evaluated without a deployed stack; the message says which."""


# ---------------------------------------------------------------------------------------------- short forms
class _TemplateLoader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML with CloudFormation's short-form tags turned into their long forms: ``!Ref X`` → ``{"Ref": "X"}``,
    ``!GetAtt A.B`` → ``{"Fn::GetAtt": ["A", "B"]}``, any other ``!Name v`` → ``{"Fn::Name": v}``."""


def _construct_short_form(loader: _TemplateLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _construct_short_form)


# ------------------------------------------------------------------------------------- intrinsic functions
def _is_intrinsic(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and bool(_INTRINSIC.match(next(iter(value))))


def _describe(value: Any) -> str:
    """An intrinsic in the short form a template author wrote: ``!Ref Table``, ``!GetAtt Table.Arn``."""
    if not _is_intrinsic(value):
        return repr(value)
    ((key, arg),) = value.items()
    name = key.removeprefix("Fn::")
    if name == "GetAtt" and isinstance(arg, list):
        arg = ".".join(map(str, arg))
    return f"!{name} {arg if isinstance(arg, str) else json.dumps(arg)}"


class _Resolver:
    """Evaluates what a template can say without a deployed stack: ``Ref`` of parameters (their ``Default``) and
    pseudo parameters, ``Fn::Sub`` of those, ``Fn::Join``, ``Fn::Select``, ``Fn::FindInMap``, ``Fn::If`` and the
    conditions (``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``). Anything else is ``_Unresolvable``."""

    def __init__(self, template: Mapping[str, Any]):
        self.resources = set(template.get("Resources") or {})
        self._definitions: Mapping[str, Any] = template.get("Resources") or {}
        self._naming: set[str] = set()  # resources whose name is being evaluated: a name that refers to itself
        self.mappings = template.get("Mappings") or {}
        self.conditions = template.get("Conditions") or {}
        self.parameters: dict[str, Any] = {}
        self.no_default: set[str] = set()
        for name, spec in (template.get("Parameters") or {}).items():
            if isinstance(spec, dict) and "Default" in spec:
                default = spec["Default"]
                if spec.get("Type") == "CommaDelimitedList" and isinstance(default, str):
                    default = [item.strip() for item in default.split(",")]
                self.parameters[name] = default
            else:
                self.no_default.add(name)
        self._functions: dict[str, Callable[[Any], Any]] = {
            "Ref": self._ref,
            "Condition": self._condition,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::FindInMap": self._findinmap,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::Not": self._not,
            "Fn::And": self._and,
            "Fn::Or": self._or,
            "Fn::GetAtt": self._getatt,
        }

    def __call__(self, value: Any) -> Any:
        if _is_intrinsic(value):
            ((key, arg),) = value.items()
            handler = self._functions.get(key)
            if handler is None:
                raise _Unresolvable(f"{_describe(value)} cannot be evaluated without a deployed stack")
            try:
                return handler(arg)
            except (TypeError, ValueError, IndexError, KeyError) as exc:
                raise _Unresolvable(f"{_describe(value)}: {exc}") from None
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value

    def _ref(self, name: Any) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.no_default:
            raise _Unresolvable(f"!Ref {name}: the parameter has no Default")
        if name in self.resources:
            return self._resource(name, None, f"!Ref {name}")
        raise _Unresolvable(f"!Ref {name}: no such parameter or resource")

    def _getatt(self, arg: Any) -> str:
        logical_id, attribute = (self(a) for a in arg)
        if logical_id not in self.resources:
            raise _Unresolvable(f"!GetAtt {logical_id}.{attribute}: no such resource")
        return self._resource(str(logical_id), str(attribute), f"!GetAtt {logical_id}.{attribute}")

    def _resource(self, logical_id: str, attribute: str | None, text: str) -> str:
        """What a resource lambda-freeze knows gives (resource_values.py); others are not created locally."""
        definition = self._definitions.get(logical_id)
        kind = str(definition.get("Type", "")) if isinstance(definition, dict) else ""
        props = (definition.get("Properties") or {}) if isinstance(definition, dict) else {}
        named = {}
        key = NAME_PROPERTIES.get(kind)
        # A function whose FunctionName is not a literal is served under its logical id (sam.py): so named here.
        literal_only = key == "FunctionName" and isinstance(props, dict) and not isinstance(props.get(key), str)
        if key and isinstance(props, dict) and key in props and logical_id not in self._naming and not literal_only:
            self._naming.add(logical_id)
            try:
                named[key] = self(props[key])
            finally:
                self._naming.discard(logical_id)
        if isinstance(props, dict) and "FifoQueue" in props:
            named["FifoQueue"] = self(props["FifoQueue"])
        value = resource_value(logical_id, kind, named, attribute, region=PSEUDO_PARAMETERS["AWS::Region"],
                               account=PSEUDO_PARAMETERS["AWS::AccountId"])
        if value is None and kind in NAME_PROPERTIES:
            raise _Unresolvable(f"{text}: {kind} has no attribute {attribute} that lambda-freeze knows")
        if value is None:
            raise _Unresolvable(f"{text}: a resource ({kind or 'no Type'}) which is not created locally")
        return value

    def _sub(self, arg: Any) -> str:
        text, variables = (arg[0], self(arg[1])) if isinstance(arg, list) and len(arg) == 2 else (arg, {})
        if not isinstance(text, str) or not isinstance(variables, dict):
            raise _Unresolvable(f"!Sub {json.dumps(arg)}: expected a string, or [string, {{variables}}]")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("!"):  # ${!Literal} stands for the text ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:  # ${Resource.Attribute}
                logical_id, attribute = name.split(".", 1)
                return self._getatt([logical_id, attribute])
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(substitute, text)

    def _join(self, arg: Any) -> str:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise _Unresolvable(f"!Join {json.dumps(arg)}: expected [delimiter, [values]]")
        delimiter, values = arg[0], self(arg[1])
        return str(delimiter).join(str(v) for v in values if v is not _NO_VALUE)

    def _select(self, arg: Any) -> Any:
        index, values = int(self(arg[0])), self(arg[1])
        return values[index]

    def _findinmap(self, arg: Any) -> Any:
        name, top, second = (self(a) for a in arg[:3])
        try:
            return self.mappings[name][top][second]
        except (KeyError, TypeError):
            raise _Unresolvable(f"!FindInMap [{name}, {top}, {second}]: no such entry in Mappings") from None

    def _if(self, arg: Any) -> Any:
        condition, if_true, if_false = arg
        return self(if_true) if self._condition(condition) else self(if_false)

    def _condition(self, name: Any) -> bool:
        if name not in self.conditions:
            raise _Unresolvable(f"Condition {name}: not in the template's Conditions")
        return bool(self(self.conditions[name]))

    def _equals(self, arg: Any) -> bool:
        left, right = (self(a) for a in arg)
        return str(left) == str(right)

    def _not(self, arg: Any) -> bool:
        return not self(arg[0])

    def _and(self, arg: Any) -> bool:
        return all(self(a) for a in arg)

    def _or(self, arg: Any) -> bool:
        return any(self(a) for a in arg)
