"""Recipes: one design note's params, written into params.yaml by `srlab recipe NAME`.

A recipe is `recipes/<name>.yaml`: the note it follows, the params that differ from srlab's
defaults, and the note's other runs as `-S` overrides (a control, a variant). Applying one sets
every key of params.yaml to its default, then the recipe's values, keeps the file's comments, and
checks the result like any params.yaml, so params.yaml stays the one place DVC reads params from
and `dvc exp run -S key=value` still overrides any of them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from srlab.errors import SrlabError
from srlab.params import Params, apply_overrides, parse_params

RECIPES = Path("recipes")
DEFAULT = "default"  # not a file: srlab's own defaults, to go back to after a recipe


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    note: str  # which design note, in a line
    reproduces: str  # what a run of it gives
    params: dict  # nested, like params.yaml, only what differs from the defaults
    runs: dict[str, list[str]]  # the note's other runs: name -> `-S key=value` overrides on top

    def values(self) -> dict:
        """The whole params tree: every default, then the recipe's own values."""
        return _merge(Params().to_dict(), self.params)

    def run_commands(self) -> list[str]:
        main = [f"dvc exp run -n {self.name}"]
        return main + [
            f"dvc exp run -n {self.name}-{run} " + " ".join(f"-S {o}" for o in overrides)
            for run, overrides in self.runs.items()
        ]


def names(folder: Path = RECIPES) -> list[str]:
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


def load_recipe(name: str, folder: Path = RECIPES) -> Recipe:
    """The recipe called `name` (or at the path `name`), checked: its params and each run's."""
    if name == DEFAULT:
        return Recipe(DEFAULT, "srlab's defaults", "the default pipeline", {}, {})
    path = Path(name) if name.endswith((".yaml", ".yml")) else Path(folder) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join([DEFAULT, *names(folder)])
        raise SrlabError(f"{path}: no such recipe (known: {known})")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SrlabError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    unknown = set(raw) - {"note", "reproduces", "params", "runs"}
    if unknown or not isinstance(raw.get("params"), dict):
        raise SrlabError(f"{path}: a recipe has note, reproduces, params (a mapping) and runs; got {sorted(raw)}")
    recipe = Recipe(
        path.stem,
        str(raw.get("note", "")),
        str(raw.get("reproduces", "")),
        raw["params"],
        {str(k): [str(o) for o in v] for k, v in (raw.get("runs") or {}).items()},
    )
    parse_params(recipe.values(), source=str(path))
    for run, overrides in recipe.runs.items():
        parse_params(apply_overrides(recipe.values(), overrides), source=f"{path}: runs.{run}")
    return recipe


def apply(recipe: Recipe, params_file: Path = Path("params.yaml")) -> list[str]:
    """Write the recipe's values into `params_file`, comments kept; the lines that changed."""
    from ruamel.yaml import YAML

    from srlab.fileio import atomic_path

    io = YAML()  # round-trip: comments, quotes and key order stay
    io.width, io.preserve_quotes = 4096, True
    try:
        tree = io.load(params_file.read_text())
    except FileNotFoundError:
        raise SrlabError(f"{params_file}: no such parameter file") from None
    changes: list[str] = []
    _assign(tree, recipe.values(), "", changes)
    text = _dump(io, tree)
    parse_params(yaml.safe_load(text), source=str(params_file))
    with atomic_path(params_file) as tmp:
        tmp.write_text(text)
    return changes


def _assign(node, values: dict, prefix: str, changes: list[str]) -> None:
    for key, value in values.items():
        if isinstance(value, dict):
            _assign(node.setdefault(key, {}), value, f"{prefix}{key}.", changes)
            continue
        value = list(value) if isinstance(value, tuple) else value
        before = node.get(key)
        if (list(before) if isinstance(before, (list, tuple)) else before) != value:
            changes.append(f"{prefix}{key}: {before!r} -> {value!r}")
            node[key] = value


def _dump(io, tree) -> str:
    from io import StringIO

    out = StringIO()
    io.dump(tree, out)
    return out.getvalue()


def _merge(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = (
            _merge(base.get(key, {}), value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return merged
