"""`python -m ual_dagster ...`: small helpers for the shell.

  python -m ual_dagster dagster-home   print (and create) the active profile's DAGSTER_HOME
  python -m ual_dagster validate [P]   load and validate a profile (default: $UAL_PROFILE), check that
                                       every file it names exists, print a summary
  python -m ual_dagster paths          print the state folder, DuckDB file, artifacts and DAGSTER_HOME
  python -m ual_dagster plan [P] [--json]  elicitation calls, cost, training rows and runs, calling nothing
  python -m ual_dagster preflight [P]  check every external thing the profile needs; exit 1 if any is missing

Errors are one line per problem on stderr (exit status 2); `--debug` or UAL_DEBUG=1 adds
the traceback.
"""

from __future__ import annotations

import os
import sys

from ual_dagster.config import load_profile
from ual_dagster.config.elicitation import (
    ElicitationConfig,
    FileElicitation,
    HFLocalElicitation,
    OpenAIElicitation,
)
from ual_dagster.config.loader import profile_problems
from ual_dagster.data.counts import mix_lines, shortfalls, train_rows
from ual_dagster.plan import format_plan, plan
from ual_dagster.preflight import format_checks, run_preflight
from ual_dagster.storage import StatePaths


def elicitor_summary(cfg: ElicitationConfig) -> str:
    """'backend / what answers / how', for the validate summary."""
    match cfg:
        case OpenAIElicitation():
            return f"openai / {cfg.model} / {cfg.method}"
        case HFLocalElicitation():
            return f"hf_local / {cfg.hf_model} / expected_score"
        case FileElicitation():
            return f"file / {cfg.file_path}"
    return cfg.backend


def main(argv: list[str]) -> int:
    debug = "--debug" in argv or os.environ.get("UAL_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    try:
        return _main(argv)
    except Exception as exc:  # one clear line, not a traceback, unless asked for
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    flags = {a for a in rest if a.startswith("--")}
    rest = [a for a in rest if not a.startswith("--")]
    profile = load_profile(rest[0] if rest else None)  # a ProfileError is reported by main()
    paths = StatePaths.for_profile(profile)
    if cmd == "dagster-home":
        print(paths.ensure().dagster_home)
    elif cmd == "paths":
        for name in ("state_dir", "duckdb", "artifacts", "dagster_home"):
            print(f"{name}: {getattr(paths, name)}")
    elif cmd == "validate":
        problems = profile_problems(profile)
        if problems:
            source = profile.source_path or "?"
            print(f"error: profile {source} names {len(problems)} missing file(s):", file=sys.stderr)
            for line in problems:
                print(f"  - {line}", file=sys.stderr)
            return 2
        counts = train_rows(profile, paths.duckdb)
        short = shortfalls(profile, counts)
        if short:
            source = profile.source_path or "?"
            print(f"error: profile {source} has {len(short)} scenario(s) short of rows:", file=sys.stderr)
            for line in short:
                print(f"  - {line}", file=sys.stderr)
            return 2
        print(f"profile {profile.name!r} is valid ({profile.source_path or '?'})")
        print(f"  datasets:  {', '.join(profile.datasets)}")
        print("  scenarios (the mix each trains on):")
        for name, scen in profile.scenarios.items():
            for line in mix_lines(name, scen, counts):
                print(f"    {line}")
        print(f"  methods:   {', '.join(profile.methods)}")
        print(f"  elicitor:  {elicitor_summary(profile.elicitation)}")
        print(f"  base:      {profile.base_model.source} {profile.base_model.hub_id or ''}")
    elif cmd == "plan":
        import json

        result = plan(profile)
        print(json.dumps(result, indent=2) if "--json" in flags else format_plan(result))
    elif cmd == "preflight":
        checks = run_preflight(profile)
        print(format_checks(checks))
        return 0 if all(c.ok for c in checks) else 1
    else:
        print(f"error: unknown command {cmd!r}\n{__doc__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
