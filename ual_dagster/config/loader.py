"""Find, read and validate the active profile.

`UAL_PROFILE` names a bundled profile (`tiny`, the default; `paper`; `cluster`) or a
path to a YAML file. Every error names the file, the key and what is allowed.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ual_dagster.config.elicitation import FileElicitation, HFLocalElicitation
from ual_dagster.config.paths import PROJECT_ROOT, PROMPTS_DIR, resolve_path, template_path
from ual_dagster.config.pins import unpinned_problems
from ual_dagster.config.profile import Profile

PROFILE_ENV = "UAL_PROFILE"
DEFAULT_PROFILE = "tiny"
BUNDLED_DIR = Path(__file__).parent / "profiles"


class ProfileError(ValueError):
    """The profile file is missing, unreadable or invalid."""


def bundled_profiles() -> list[str]:
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.yaml"))


def resolve_profile_path(name_or_path: str | None = None) -> Path:
    spec = name_or_path or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if spec in bundled_profiles():
        return BUNDLED_DIR / f"{spec}.yaml"
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if not path.is_file():
        raise ProfileError(
            f"profile {spec!r} ({PROFILE_ENV}) is neither a bundled profile {bundled_profiles()} "
            f"nor an existing YAML file (looked for {path})"
        )
    return path


def _unwrap_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(model class inside `annotation`, whether it sits in a dict keyed by user names)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = getattr(annotation, "__origin__", None)
    for arg in getattr(annotation, "__args__", ()):
        model, keyed = _unwrap_model(arg)
        if model is not None:
            return model, keyed or origin is dict
    return None, False


def _tagged_members(field: FieldInfo) -> dict[str, type[BaseModel]]:
    """tag -> class of a discriminated-union field (elicitation by backend, launcher by kind); {} otherwise."""
    tag = field.discriminator
    if not isinstance(tag, str):
        return {}
    members: dict[str, type[BaseModel]] = {}
    for arg in get_args(field.annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel) and tag in arg.model_fields:
            for value in get_args(arg.model_fields[tag].annotation):
                members[str(value)] = arg
    return members


def _walk(loc: tuple[Any, ...]) -> tuple[list[str], type[BaseModel] | None, list[str]]:
    """(the key path as a user writes it, the section model at its end, the tags chosen on the way).

    A discriminated union puts the chosen tag into pydantic's location
    (`elicitation.hf_local.model`); the user's YAML has no such level, so it is left out
    of the key and named instead ("backend 'hf_local'").
    """
    current: type[BaseModel] | None = Profile
    keys: list[str] = []
    tags: list[str] = []
    parts = list(loc)
    while parts:
        part = str(parts.pop(0))
        keys.append(part)
        field = current.model_fields.get(part) if current is not None else None
        if field is None:
            current = None
            continue
        members = _tagged_members(field)
        if members:
            current = None
            if parts and str(parts[0]) in members:
                tag = str(parts.pop(0))
                current = members[tag]
                tags.append(f"{field.discriminator} {tag!r}")
            continue
        current, keyed = _unwrap_model(field.annotation)
        if keyed and parts:
            keys.append(str(parts.pop(0)))  # the user's own name, e.g. datasets.<name>
    return keys, current, tags


def format_validation_error(path: Path, err: ValidationError) -> str:
    lines = [f"invalid profile {path}:"]
    for e in err.errors():
        loc = tuple(e["loc"])
        keys, _, tags = _walk(loc)
        key = ".".join(keys) or "<top level>"
        for_tag = f" (for {', '.join(tags)})" if tags else ""
        if e["type"] == "extra_forbidden":
            _, owner, _ = _walk(loc[:-1])
            allowed = sorted(owner.model_fields) if owner else []
            what = f"not a key of {tags[-1]}" if tags else "unknown key"
            lines.append(f"  - key '{key}': {what}; allowed here: {', '.join(allowed)}")
        elif e["type"] == "missing":
            lines.append(f"  - key '{key}': required but missing{for_tag}")
        elif e["type"] in ("union_tag_not_found", "union_tag_invalid"):
            tag = str(e.get("ctx", {}).get("discriminator", "")).strip("'")
            tag_key = ".".join([*keys, tag])
            if e["type"] == "union_tag_not_found":
                lines.append(f"  - key '{tag_key}': required but missing")
            else:
                ctx = e.get("ctx", {})
                lines.append(f"  - key '{tag_key}': {ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}")
        else:
            lines.append(f"  - key '{key}': {e['msg']}{for_tag}{_got(e.get('input'), loc)}")
    return "\n".join(lines)


_GOT_MAX_CHARS = 80


def _got(value: Any, loc: tuple[Any, ...]) -> str:
    """' (got X)' for a short offending value; nothing for a whole section (a cross-field
    error's input is the section, at the top level the whole merged profile)."""
    if not loc or isinstance(value, dict | list):
        return ""
    text = repr(value)
    return f" (got {text if len(text) <= _GOT_MAX_CHARS else text[:_GOT_MAX_CHARS] + '...'})"


def _looks_local(name: str) -> bool:
    """A hub id ('org/name') or a local path ('/x', './x', '../x', '~/x')?"""
    return name.startswith(("/", "./", "../", "~"))


def profile_problems(profile: Profile) -> list[str]:
    """One line per file the profile names that does not exist (data, prompts, score files,
    judge configs, local models), and per hub id without a pinned revision (config/pins.py).
    Loading does not require them (a data file may appear later, and its asset then fails
    naming it); `python -m ual_dagster validate` does."""
    problems: list[str] = []

    def need(key: str, what: str, path: Path, kind: str = "file") -> None:
        ok = path.is_file() if kind == "file" else path.exists()
        if not ok:
            problems.append(f"key '{key}': {what} {path} does not exist")

    for name, ds in profile.datasets.items():
        if ds.source == "file" and ds.path:
            need(f"datasets.{name}.path", "data file", resolve_path(ds.path))
        if ds.source == "hub" and ds.hub_id and _looks_local(ds.hub_id):
            need(f"datasets.{name}.hub_id", "local data set directory", resolve_path(ds.hub_id), "dir")
    el = profile.elicitation
    need("elicitation.prompt", "prompt template", template_path(el.prompt))
    if isinstance(el, FileElicitation):
        need("elicitation.file_path", "score file", resolve_path(el.file_path))
    if isinstance(el, HFLocalElicitation) and _looks_local(el.hf_model):
        need("elicitation.hf_model", "local model", resolve_path(el.hf_model), "dir")
    if profile.base_model.source == "local" and profile.base_model.path:
        need("base_model.path", "local base model", resolve_path(profile.base_model.path), "dir")
    for i, task in enumerate(profile.evaluation.lm_eval):
        if task.data_path:
            need(f"evaluation.lm_eval[{i}].data_path", "task data file", resolve_path(task.data_path))
    ae = profile.evaluation.alpaca_eval
    if ae is not None:
        if ae.instructions == "file" and ae.path:
            need("evaluation.alpaca_eval.path", "reference outputs file", resolve_path(ae.path))
        annotator = ae.judge.annotator
        if ae.judge.kind == "alpaca_eval" and (annotator.endswith((".yaml", ".yml")) or "/" in annotator):
            need("evaluation.alpaca_eval.judge.annotator", "judge config", resolve_path(annotator), "any")
    return problems + unpinned_problems(profile)


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"profile {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProfileError(f"profile {path} must be a YAML mapping at the top level, got {type(raw).__name__}")
    return raw


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _merge(model: type[BaseModel] | None, base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged onto `base` by the profile's schema (the rule `extends` follows):

    - a section (a typed block such as `training` or `datasets.<name>.testbed`) merges key by key;
    - a map of named sections (`datasets`, `scenarios`, `methods`) merges entry by entry: the
      child adds entries, an entry it names merges key by key with the inherited one, and an
      entry it sets to null is removed (`scenarios: {mixed: null}` trains no mixed scenario);
    - a map of plain values defines a set and is replaced whole: a scenario's `weights` (the
      mix), a data set's `columns`, a method's `training` overrides, `node_selector`;
    - lists and scalars are replaced.
    """
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if not (isinstance(value, dict) and isinstance(old, dict)):
            out[key] = value
            continue
        field = model.model_fields.get(key) if model is not None else None
        if field is None:  # an unknown key: validation names it; merge as before meanwhile
            out[key] = _deep_merge(old, value)
            continue
        members = _tagged_members(field)
        if members:  # a tagged union (elicitation, launcher): the member the merged tag picks
            tag = str(field.discriminator)
            out[key] = _merge(members.get(str(value.get(tag, old.get(tag)))), old, value)
            continue
        section, keyed = _unwrap_model(field.annotation)
        if section is None:
            out[key] = value  # a map of values: a set, replaced whole
        elif keyed:
            merged = dict(old)
            for name, entry in value.items():
                if entry is None:
                    merged.pop(name, None)
                    continue
                prev = old.get(name)
                both = isinstance(entry, dict) and isinstance(prev, dict)
                merged[name] = _merge(section, prev, entry) if both else entry
            out[key] = merged
        else:
            out[key] = _merge(section, old, value)
    return out


def _without_other_tag_keys(model: type[BaseModel], parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """`parent`, minus its keys that belong to a tag the child switches away from.

    A child that sets another `elicitation.backend` (or `training.launcher.kind`) than the
    profile it extends inherits only the keys the new backend also has: tiny's `model` and
    `concurrency` are not hf_local keys, so `extends: tiny` with `backend: hf_local` does not
    fail on them, while the same keys written in the child itself still do.
    """
    out = dict(parent)
    for name, value in child.items():
        field = model.model_fields.get(name)
        old = parent.get(name)
        if field is None or not isinstance(value, dict) or not isinstance(old, dict):
            continue
        members = _tagged_members(field)
        if members:
            tag = str(field.discriminator)
            switched_to = members.get(str(value.get(tag)))
            if switched_to is not None and value.get(tag) != old.get(tag):
                out[name] = {k: v for k, v in old.items() if k in switched_to.model_fields}
            continue
        section, keyed = _unwrap_model(field.annotation)
        if section is not None and not keyed:
            out[name] = _without_other_tag_keys(section, old, value)
    return out


def _anchored(value: Any, base: Path, *, only_local: bool = False) -> Any:
    """`value` as an absolute path under `base` when it is a relative path string (a hub id or a
    bundled name, when `only_local`, only when it looks like a path)."""
    if not isinstance(value, str) or not value:
        return value
    if only_local and not _looks_local(value):
        return value
    path = Path(value).expanduser()
    return value if path.is_absolute() else str((base / path).resolve())


def _anchor_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """The file's own relative paths, made absolute against `base` (the file's folder), before
    it is merged with the profile it extends: a path means the file beside the profile that
    wrote it, whichever profile loads it. Bundled profiles are not rewritten: their folder is
    the project root, which `resolve_path` already uses."""

    def section(*keys: str) -> dict[str, Any]:
        node: Any = raw
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}

    storage = section("storage")
    if "state_dir" in storage:
        storage["state_dir"] = _anchored(storage["state_dir"], base)
    for ds in section("datasets").values():
        if isinstance(ds, dict):
            if "path" in ds:
                ds["path"] = _anchored(ds["path"], base)
            if "hub_id" in ds:
                ds["hub_id"] = _anchored(ds["hub_id"], base, only_local=True)
    el = section("elicitation")
    prompt = el.get("prompt")
    if isinstance(prompt, str) and (prompt.endswith(".txt") or "/" in prompt):  # a file, not a bundled stem
        el["prompt"] = _anchored(prompt, base)
    if "file_path" in el:
        el["file_path"] = _anchored(el["file_path"], base)
    for key in ("hf_model", "model"):
        if key in el:
            el[key] = _anchored(el[key], base, only_local=True)
    bm = section("base_model")
    if "path" in bm:
        bm["path"] = _anchored(bm["path"], base)
    tasks = section("evaluation").get("lm_eval")
    for task in tasks if isinstance(tasks, list) else []:
        if isinstance(task, dict) and "data_path" in task:
            task["data_path"] = _anchored(task["data_path"], base)
    ae = section("evaluation", "alpaca_eval")
    if "path" in ae:
        ae["path"] = _anchored(ae["path"], base)
    judge = section("evaluation", "alpaca_eval", "judge")
    annotator = judge.get("annotator")
    if isinstance(annotator, str) and (annotator.endswith((".yaml", ".yml")) or "/" in annotator):
        judge["annotator"] = _anchored(annotator, base)
    return raw


def _read_with_extends(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's mapping, merged over the profile it `extends` (a bundled name or a path
    relative to the file; see `_merge` for the rule), so an example profile states only what
    differs from `tiny`. Relative paths resolve against the folder of the file that wrote them."""
    if path in seen:
        raise ProfileError(f"profile {path}: 'extends' forms a cycle ({' -> '.join(map(str, seen + (path,)))})")
    raw = _read_mapping(path)
    if path.parent.resolve() not in (BUNDLED_DIR.resolve(), PROJECT_ROOT):
        raw = _anchor_paths(raw, path.parent.resolve())
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ProfileError(f"profile {path}: key 'extends' must be a bundled profile name or a path")
    parent_path = BUNDLED_DIR / f"{parent}.yaml" if parent in bundled_profiles() else (path.parent / parent).resolve()
    if not parent_path.is_file():
        raise ProfileError(
            f"profile {path}: key 'extends' names {parent!r}, neither a bundled profile {bundled_profiles()} "
            f"nor a file (looked for {parent_path})"
        )
    inherited = _read_with_extends(parent_path, seen + (path,))
    return _merge(Profile, _without_other_tag_keys(Profile, inherited, raw), raw)


def load_profile(name_or_path: str | None = None) -> Profile:
    path = resolve_profile_path(name_or_path)
    raw = _read_with_extends(path)
    try:
        profile = Profile.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError(format_validation_error(path, exc)) from None
    _require_prompt(profile, path)
    profile._source_path = path  # a private attribute: not a profile field, allowed on a frozen model
    return profile


def _require_prompt(profile: Profile, path: Path) -> None:
    """The prompt text is part of the elicitor fingerprint, which the asset graph needs when
    it is built: a missing template is a profile error, not a traceback at code-location load."""
    template = template_path(profile.elicitation.prompt)
    if not template.is_file():
        bundled = sorted(p.stem for p in PROMPTS_DIR.glob("*.txt"))
        raise ProfileError(
            f"invalid profile {path}:\n  - key 'elicitation.prompt': prompt template {template} does not exist "
            f"(bundled: {', '.join(bundled)}; or a path to your own .txt)"
        )


@lru_cache(maxsize=8)
def _cached(spec: str) -> Profile:
    return load_profile(spec)


def active_profile() -> Profile:
    """The profile named by UAL_PROFILE (cached per value of the variable)."""
    return _cached(os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE)
