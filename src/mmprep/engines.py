"""Engine profiles: which engine's rules a family follows, as named spec settings.

mmprep follows the seeds (vLLM at the seeds' revision) by default: ``engine="vllm-seed"``. Where
another engine computes a count, a timestamp or a resize differently, the family lists an
:class:`EngineRule` naming the spec fields that carry the difference and each engine's values.
``mmprep.load(name, engine="transformers")`` applies the rules that hold for that checkpoint
and nothing else; explicit spec overrides still win.

Each family keeps its table beside its rules (``families/<name>/engines.py``) and exposes it as
the class attribute ``engine_rules``; this module never names a family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInputError

ENGINES = ("vllm-seed", "transformers", "vllm")
DEFAULT_ENGINE = "vllm-seed"

# what each profile stands for (docs/engines.md says which files were read)
ENGINE_SOURCES = {
    "vllm-seed": "vLLM model files at the seeds' revision (the default contract)",
    "transformers": "transformers 5.24 processors",
    "vllm": "vLLM main: nano_nemotron_vl.py @00b5bd45, processors/nano_nemotron_vl.py @e6d35296, "
            "parakeet.py @055e47c2, glm4_1v.py @9ba7fb9b, isaac.py @4cb6572b",
}


def _always(spec: Any) -> bool:
    return True


@dataclass(frozen=True)
class FromSpec:
    """A profile value the checkpoint supplies: the engine reads the spec field ``field`` (filled
    by the family's ``from_hf``) instead of a fixed value, e.g. the checkpoint's tubelet size."""

    field: str

    def __repr__(self) -> str:
        return f"FromSpec({self.field!r})"


def profile_value(value: Any, spec: Any) -> Any:
    """A rule setting as it applies to ``spec``: a :class:`FromSpec` reads the spec, others are fixed."""
    return getattr(spec, value.field) if isinstance(value, FromSpec) else value


@dataclass(frozen=True)
class EngineRule:
    """One known disagreement between engines, as spec settings per engine.

    ``settings[engine]`` maps spec field -> value for that engine (a fixed value, or
    :class:`FromSpec` naming the spec field that holds the checkpoint's value); an engine missing
    from it keeps the seed's value (the spec default, or what the checkpoint says). ``applies(spec)``
    says whether the rule matters for a checkpoint (e.g. only GLM-4.6V prints "1.0 seconds").
    """

    name: str  # short id, e.g. "audio_frames"
    what: str  # one line: what differs
    settings: Mapping[str, Mapping[str, Any]]
    behaviour: Mapping[str, str] = field(default_factory=dict)  # engine -> one line
    applies: Callable[[Any], bool] = _always
    counts: bool = True  # False when only pixels or text differ, not placeholder counts

    def fields(self) -> tuple[str, ...]:
        out: dict[str, None] = {}
        for values in self.settings.values():
            out.update(dict.fromkeys(values))
        return tuple(out)


def check_engine(engine: Any) -> str:
    """The engine name, or :class:`InvalidInputError` listing the known ones."""
    if engine is None:
        return DEFAULT_ENGINE
    if engine not in ENGINES:
        raise InvalidInputError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    return str(engine)


def engine_overrides(rules: Sequence[EngineRule], engine: str, spec: Any) -> dict[str, Any]:
    """Spec field values the engine's profile sets on ``spec`` (rules that apply only).

    An engine that a rule does not mention gets the seed's values back, so a spec already
    switched to one profile can be switched to another.
    """
    engine = check_engine(engine)
    out: dict[str, Any] = {}
    for rule in rules:
        if not rule.applies(spec):
            continue
        seed = rule.settings.get(DEFAULT_ENGINE, {})
        for name in rule.fields():
            values = rule.settings.get(engine, {})
            if name in values:
                out[name] = profile_value(values[name], spec)
            elif name in seed:
                out[name] = profile_value(seed[name], spec)
    return out


def rule_values(rule: EngineRule, spec: Any) -> dict[str, Any]:
    """The fields of ``rule`` as ``spec`` holds them now."""
    return {name: getattr(spec, name) for name in rule.fields()}


def active_rules(rules: Sequence[EngineRule], spec: Any) -> list[EngineRule]:
    """Rules that apply to this checkpoint."""
    return [r for r in rules if r.applies(spec)]


def rule_variants(family: Any, engine: str) -> list[tuple[EngineRule, Any]]:
    """For each rule where ``engine`` differs from the seed here: ``(rule, the seed family with
    only that rule switched to the engine)``. Counting each variant says which rule made a count
    differ (``mmprep explain --engines``)."""
    seed = family if family.engine == DEFAULT_ENGINE else _switch(family, DEFAULT_ENGINE)
    out = []
    for rule in active_rules(family.engine_rules, seed.spec):
        wanted = {k: profile_value(v, seed.spec) for k, v in rule.settings.get(engine, {}).items()}
        values = {k: v for k, v in wanted.items() if getattr(seed.spec, k) != v}
        if values:
            variant = type(seed)(seed.spec, **values)
            variant.engine = f"{DEFAULT_ENGINE}+{rule.name}"
            out.append((rule, variant))
    return out


def _switch(family: Any, engine: str) -> Any:
    settings = engine_overrides(family.engine_rules, engine, family.spec)
    out = type(family)(family.spec, **settings)
    out.engine = engine
    return out
