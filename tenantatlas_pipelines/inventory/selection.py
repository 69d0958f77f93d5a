"""Selections (named sets of policy types), their canonical JSON and hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from tenantatlas_pipelines.inventory.catalog import (
    CATALOG,
    Category,
    foundation_types,
    types_in_categories,
)
from tenantatlas_pipelines.inventory.errors import SelectionError


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_canonical(v) for v in value]
        unique = {json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False): v for v in items}
        return [unique[k] for k in sorted(unique)]
    return value


def canonical_json(value: Any) -> str:
    """Keys sorted, arrays de-duplicated and sorted, no insignificant whitespace."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Selection(BaseModel):
    """A selection payload, validated against the catalog."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy_types: tuple[str, ...] = ()
    categories: tuple[Category, ...] = ()
    include_foundations: bool = False
    include_dependencies: bool = False

    @field_validator("policy_types")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(CATALOG))
        if unknown:
            raise ValueError(
                f"unknown policy type(s) {', '.join(unknown)}; use keys of the catalog "
                f"(for example {', '.join(list(CATALOG)[:3])})"
            )
        return value

    @classmethod
    def parse(cls, payload: Mapping[str, Any], *, name: str = "selection") -> Selection:
        if isinstance(payload, Selection):
            return payload
        if not isinstance(payload, Mapping):
            raise SelectionError(f"{name}: a selection must be a mapping, got {type(payload).__name__}")
        try:
            return cls.model_validate(dict(payload))
        except ValidationError as exc:
            problems = "; ".join(_describe(e) for e in exc.errors())
            raise SelectionError(
                f"{name}: {problems}. Allowed keys: policy_types, categories, "
                f"include_foundations, include_dependencies; categories: "
                f"{', '.join(c.value for c in Category)}"
            ) from None

    def payload(self) -> dict[str, Any]:
        """The normalised payload (every key present, arrays de-duplicated and sorted)."""
        return {
            "policy_types": sorted(set(self.policy_types)),
            "categories": sorted({c.value for c in self.categories}),
            "include_foundations": self.include_foundations,
            "include_dependencies": self.include_dependencies,
        }

    def canonical_json(self) -> str:
        return canonical_json(self.payload())

    def hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    def resolve(self) -> frozenset[str]:
        """The set of policy types this selection covers."""
        types = set(self.policy_types) | types_in_categories(frozenset(self.categories))
        if self.include_foundations:
            types |= foundation_types()
        return frozenset(types)


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ())) or "payload"
    msg = str(error.get("msg", "invalid"))
    if error.get("type") == "extra_forbidden":
        return f"unknown key {where!r}"
    return f"{where}: {msg.removeprefix('Value error, ')}"


def selection_hash(payload: Mapping[str, Any] | Selection) -> str:
    """sha256 hex of the canonical JSON of the (validated, normalised) payload."""
    selection = payload if isinstance(payload, Selection) else Selection.parse(payload)
    return selection.hash()
