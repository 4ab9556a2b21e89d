"""Profiles plus overrides -> an experiment's config dataclass (shared by the experiments)."""
from __future__ import annotations

import dataclasses


def _parse(text: str, annotation: str, default):
    """One CLI string to the field's type: from the default, else from the annotation
    (needed when the default is None, e.g. ``train_size: int | None = None``)."""
    kind = type(default) if default is not None else None
    if kind is None:
        for name, t in (("bool", bool), ("int", int), ("float", float)):
            if name in annotation:
                kind = t
                break
    if kind is bool:
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"expected a boolean (true/false), got {text!r}")
        return text.lower() in ("1", "true", "yes")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    return text


def coerce(field: dataclasses.Field, value, default):
    """``value`` for ``field``: strings (from a command line) are parsed, sequences become tuples."""
    annotation = str(field.type)
    if value is None:
        return None
    if not isinstance(value, str):
        return tuple(value) if isinstance(value, list) or isinstance(default, tuple) else value
    if value.lower() == "none":
        return None
    if isinstance(default, tuple) or annotation.startswith("tuple"):
        item = default[0] if default else None
        inner = annotation[annotation.find("[") + 1:] if "[" in annotation else ""
        return tuple(_parse(v.strip(), inner, item) for v in value.split(",") if v.strip())
    return _parse(value, annotation, default)


def config_from_profile(experiment: str, profiles: dict, profile: str, overrides: dict):
    """``profiles[profile]`` with ``overrides`` applied; unknown profile or field names raise."""
    if profile not in profiles:
        raise ValueError(f"{experiment}: profile must be one of {sorted(profiles)}, got {profile!r}")
    base = profiles[profile]
    fields = {f.name: f for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"{experiment}: unknown config override(s) {unknown}; valid names: {sorted(fields)}")
    values = {}
    for name, value in overrides.items():
        try:
            values[name] = coerce(fields[name], value, getattr(base, name))
        except ValueError as e:
            raise ValueError(f"{experiment}: override {name}={value!r}: {e}") from None
    return dataclasses.replace(base, **values)
