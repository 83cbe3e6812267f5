"""`ual-dagster ...` (or `python -m ual_dagster ...`): small helpers for the shell.

  ual-dagster dagster-home [P]          print (and create) the profile's DAGSTER_HOME
  ual-dagster validate [P] [--json]     load and validate a profile (default: $UAL_PROFILE), check that
                                        every file it names exists and that every scenario has its rows,
                                        print a summary with each scenario's mix
  ual-dagster paths [P] [--json]        print the state folder, DuckDB file, artifacts and DAGSTER_HOME
  ual-dagster plan [P] [--json]         elicitation calls, cost, training rows and runs, calling nothing
  ual-dagster preflight [P] [--json]    check every external thing the profile needs; exit 1 if any is missing

`ual-dagster COMMAND --help` describes a command. An unknown command or flag exits 2 naming it.
Errors are one line per problem on stderr (exit status 2); `--debug` or UAL_DEBUG=1 adds
the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from typing import Any

from ual_dagster.config import Profile, load_profile
from ual_dagster.config.launchers import SLURM_PARTITION_ENV, K8sLauncher, Launcher, SlurmLauncher, SubprocessLauncher
from ual_dagster.config.loader import PROFILE_ENV, profile_problems
from ual_dagster.data.counts import mix_lines, scenario_mix, shortfalls, train_rows
from ual_dagster.data.selection import used_by_a_scenario
from ual_dagster.elicitation.elicitor import elicitor_label
from ual_dagster.plan import format_plan, plan
from ual_dagster.preflight import format_checks, run_preflight
from ual_dagster.storage import StatePaths

PROG = "ual-dagster"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


# -- the commands: each takes the parsed arguments and returns the exit status ---------------


def _dagster_home(args: argparse.Namespace) -> int:
    print(StatePaths.for_profile(load_profile(args.profile)).ensure().dagster_home)
    return 0


def _paths(args: argparse.Namespace) -> int:
    paths = StatePaths.for_profile(load_profile(args.profile))
    found = {name: str(getattr(paths, name)) for name in ("state_dir", "duckdb", "artifacts", "dagster_home")}
    if args.json:
        _print_json(found)
    else:
        for name, value in found.items():
            print(f"{name}: {value}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)  # a ProfileError is reported by main()
    source = profile.source_path or "?"
    problems = profile_problems(profile)
    if problems:
        header = f"profile {source} has {len(problems)} problem(s) (missing files, unpinned hub ids)"
    else:
        counts = train_rows(profile, StatePaths.for_profile(profile).duckdb)
        problems = shortfalls(profile, counts)
        header = f"profile {source} has {len(problems)} scenario(s) short of rows"
    if problems:
        if args.json:
            _print_json({"profile": profile.name, "source": str(source), "valid": False, "problems": problems})
        print(f"error: {header}:", file=sys.stderr)
        for line in problems:
            print(f"  - {line}", file=sys.stderr)
        return 2
    if args.json:
        _print_json(_validate_data(profile, counts))
        return 0
    print(f"profile {profile.name!r} is valid ({source})")
    print(f"  datasets:  {', '.join(profile.datasets)}")
    print("  scenarios (the mix each trains on):")
    for name, scen in profile.scenarios.items():
        for line in mix_lines(name, scen, counts):
            print(f"    {line}")
    unused = _unused(profile)
    if unused:
        print(f"  in no scenario (its uncertainty asset scores every row): {', '.join(unused)}")
    print(f"  methods:   {', '.join(profile.methods)}")
    for line in sweep_lines(profile):
        print(f"  {line}")
    print(f"  elicitor:  {elicitor_label(profile.elicitation)}")
    print(f"  base:      {profile.base_model.source} {profile.base_model.hub_id or ''}")
    print(f"  training:  {launcher_label(profile.training.launcher)}")
    print(f"  evaluation: {launcher_label(profile.evaluation.launcher)}")
    return 0


def sweep_lines(profile: Profile) -> list[str]:
    """experiment.sweep's expansion: a header, then one line per generated method with its swept values."""
    points = profile.sweep_points()
    if not points:
        return []
    width = max(len(p.name) for p in points)
    lines = [f"sweep:     {len(points)} methods from experiment.sweep"]
    for p in points:
        values = ", ".join(f"{k} {v}" for k, v in p.values.items())
        match = profile.methods[p.name].match
        follows = f"  ({p.family} following {p.template}" + (f": match {match})" if match else ")") if p.follows else ""
        lines.append(f"  {p.name:{width}s}  {values}{follows}")
    return lines


def launcher_label(launcher: Launcher) -> str:
    """Where a step's heavy work runs, in one line."""
    match launcher:
        case SlurmLauncher():
            where = launcher.partition or f"${SLURM_PARTITION_ENV} or the default partition"
            mem = f", {launcher.mem_gb:g} GB" if launcher.mem_gb else ""
            limit = f", limit {launcher.time_limit}" if launcher.time_limit else ""
            return f"slurm jobs ({where}; {launcher.gpus} GPU, {launcher.cpus_per_task} CPU{mem}{limit})"
        case K8sLauncher():
            return f"kubernetes pods ({launcher.namespace}/{launcher.image}; {launcher.gpus} GPU)"
        case SubprocessLauncher():
            return f"a local subprocess ({launcher.distributed})"
    return "in the Dagster step's process"


def _unused(profile: Profile) -> list[str]:
    return [d for d in profile.datasets if not used_by_a_scenario(profile, d)]


def _validate_data(profile: Profile, counts: dict) -> dict[str, Any]:
    scenarios = {}
    for name, scen in profile.scenarios.items():
        mix = [
            {
                "dataset": p.dataset,
                "share": p.share,
                "rows": p.requested,
                "train_rows": p.available.count if p.available else None,
                "train_rows_basis": p.available.basis if p.available else None,
                "short_by": p.short_by,
            }
            for p in scenario_mix(scen, counts)
        ]
        scenarios[name] = {"size": scen.size, "seed": scen.seed, "allow_short": scen.allow_short, "mix": mix}
    return {
        "profile": profile.name,
        "source": str(profile.source_path or "?"),
        "valid": True,
        "datasets": list(profile.datasets),
        "scenarios": scenarios,
        "datasets_in_no_scenario": _unused(profile),
        "methods": list(profile.methods),
        "sweep": [
            {"method": p.name, "family": p.family, "template": p.template, "values": p.values}
            for p in profile.sweep_points()
        ],
        "elicitor": elicitor_label(profile.elicitation),
        "base_model": {"source": profile.base_model.source, "hub_id": profile.base_model.hub_id},
        "launchers": {
            "training": profile.training.launcher.model_dump(mode="json"),
            "evaluation": profile.evaluation.launcher.model_dump(mode="json"),
        },
    }


def _plan(args: argparse.Namespace) -> int:
    result = plan(load_profile(args.profile))
    if args.json:
        _print_json(result)
    else:
        print(format_plan(result))
    return 0


def _preflight(args: argparse.Namespace) -> int:
    checks = run_preflight(load_profile(args.profile))
    if args.json:
        _print_json({"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]})
    else:
        print(format_checks(checks))
    return 0 if all(c.ok for c in checks) else 1


# -- the parser -----------------------------------------------------------------------------

COMMANDS = {
    "dagster-home": (_dagster_home, "print (and create) the profile's DAGSTER_HOME", False),
    "validate": (
        _validate,
        "load and validate a profile, check that every file it names exists and that every scenario "
        "has its rows; print a summary with each scenario's mix (exit 2 on a problem)",
        True,
    ),
    "paths": (_paths, "print the state folder, DuckDB file, artifacts folder and DAGSTER_HOME", True),
    "plan": (_plan, "elicitation calls, cost, training rows and runs of a run of the profile, calling nothing", True),
    "preflight": (
        _preflight,
        "check every external thing the profile needs (keys, endpoints, hub, files, GPU, disk); exit 1 if any is missing",
        True,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's own default must not undo a --debug given before the command
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an error (also UAL_DEBUG=1)",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Helpers for the shell around the ual-dagster pipeline.",
        epilog="Errors are one line per problem on stderr (exit status 2).",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (func, help_text, has_json) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        cmd.add_argument(
            "profile",
            nargs="?",
            default=None,
            metavar="PROFILE",
            help=f"a bundled profile name or a YAML file (default: ${PROFILE_ENV}, else tiny)",
        )
        if has_json:
            cmd.add_argument("--json", action="store_true", help="print the result as JSON")
        cmd.set_defaults(func=func)
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed naming the argument)
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 0
    debug = getattr(args, "debug", False) or os.environ.get("UAL_DEBUG") == "1"
    try:
        return args.func(args)
    except Exception as exc:  # one clear line, not a traceback, unless asked for
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cli() -> None:
    """The `ual-dagster` console script."""
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    cli()
