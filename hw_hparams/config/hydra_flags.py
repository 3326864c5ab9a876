"""Hydra's own flags on the training command line (`--hydra-help` lists them): the combinations and
arguments Hydra would answer with a traceback or a message of several lines, each refused in one line
that says what to type; and `--cfg`, printed here: as Hydra prints it, and with -m (which Hydra refuses
with --cfg) every job's config, a preview of the sweep."""

from __future__ import annotations

import copy
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from hydra._internal.hydra import Hydra  # its get_sanitized_hydra_cfg: what --cfg hydra shows
from hydra.core.plugins import Plugins
from hydra.plugins.completion_plugin import CompletionPlugin
from omegaconf import DictConfig, OmegaConf

from hw_hparams.config import naming
from hw_hparams.config.compose_errors import dotted_names
from hw_hparams.config.errors import ConfigError
from hw_hparams.config.overrides import parse
from hw_hparams.config.schema import not_a_key
from hw_hparams.config.suggest import did_you_mean

PROGRAM = "python -m hw_hparams.train"
COMPLETION_COMMANDS = ("install", "uninstall", "query")


def _commands(args: Any) -> list[str]:
    """The flags that each make Hydra do one thing instead of running (it takes one at a time)."""
    given = {
        "--run": args.run,
        "-m": args.multirun,
        "--cfg": args.cfg is not None,
        "--info": args.info is not None,
        "--shell-completion": args.shell_completion,
    }
    return [flag for flag, on in given.items() if on]


def check_flags(args: Any, argv: list[str]) -> None:
    """Refuse (ConfigError) what Hydra would end in a traceback: two commands at once (-m with --cfg
    previews a sweep), --resolve without --cfg, --shell-completion without one subcommand, and a sweep
    (`key=a,b`) without -m."""
    if args.help or args.hydra_help:
        return  # Hydra prints its help whatever else the line holds
    commands = [c for c in _commands(args) if not (args.cfg is not None and c == "-m")]
    if len(commands) > 1:
        if "-m" in commands:
            instead = (
                f"drop -m for {' '.join(c for c in commands if c != '-m')}, or preview the sweep with -m --cfg job"
            )
        else:
            instead = "give one of them"
        raise ConfigError(f"{' and '.join(commands)} do not go together: {instead}")
    if args.resolve and args.cfg is None:
        raise ConfigError("--resolve goes with --cfg: write --cfg job --resolve (or --cfg hydra, --cfg all)")
    if args.shell_completion:
        _check_completion(args.overrides)
        return
    if not args.multirun:
        sweep = next((o for o in parse(args.overrides) if o.is_sweep_override()), None)
        if sweep is not None:
            raise ConfigError(
                f"{sweep.input_line} is a sweep, one run per value: add -m ({PROGRAM} -m {shlex.join(argv)})"
            )


def _check_completion(arguments: list[str]) -> None:
    """--shell-completion takes exactly one of install=SHELL, uninstall=SHELL, query=SHELL, of a shell Hydra knows."""
    shells = sorted(p.provides() for p in Plugins.instance().discover(CompletionPlugin))
    wanted = f"give install=SHELL or uninstall=SHELL (SHELL: {', '.join(shells)})"
    given = [a.split("=", 1) for a in arguments]
    if len(given) != 1 or len(given[0]) != 2 or given[0][0] not in COMPLETION_COMMANDS:
        shown = " ".join(["--shell-completion", *arguments])
        raise ConfigError(f"{shown}: {wanted}, e.g. --shell-completion install=bash")
    command, shell = given[0]
    if shell not in shells:
        raise ConfigError(f"--shell-completion {command}={shell}: {wanted}{did_you_mean(shell, shells)}")
    if command == "query" and "COMP_LINE" not in os.environ:
        raise ConfigError(
            f"--shell-completion query={shell} is what the installed completion runs, with the line being typed in "
            f"COMP_LINE: install it with --shell-completion install={shell}"
        )


def check_config_flags(args: Any) -> None:
    """A config of one's own (--config-dir, --config-path, --config-name) that is not there, and a rerun
    of a pickle that is not there, in one line each (Hydra composes what is there)."""
    if args.experimental_rerun and not Path(args.experimental_rerun).is_file():
        raise ConfigError(
            f"--experimental-rerun {args.experimental_rerun}: no such file (runs here keep none: "
            "re-run the same command instead; a finished run is not trained again, an unfinished one resumes)"
        )
    folders = {}
    if args.config_dir:
        folders["--config-dir"] = Path(args.config_dir)
    if args.config_path and not args.config_path.startswith("pkg://"):
        folders["--config-path"] = Path(args.config_path)
        if not folders["--config-path"].is_absolute():
            raise ConfigError(
                f"--config-path {args.config_path}: give an absolute path (Hydra takes a relative one from "
                f"the hw_hparams package), or add the folder with --config-dir {args.config_path}"
            )
    for flag, folder in folders.items():
        if not folder.is_dir():
            raise ConfigError(f"{flag} {folder}: no such folder")
    if not args.config_name or str(args.config_path).startswith("pkg://"):
        return
    searched = [*folders.values(), *([] if args.config_path else [naming.CONFIG_DIR])]
    name = args.config_name.removesuffix(".yaml")
    if not any((folder / f"{name}.yaml").is_file() for folder in searched):
        known = {p.name[: -len(".yaml")] for folder in searched for p in folder.iterdir() if p.name.endswith(".yaml")}
        raise ConfigError(f"--config-name {args.config_name}: there is no {name}.yaml{did_you_mean(name, known)}")


def _shown(cfg: DictConfig, args: Any) -> Any:
    """What `--cfg` (job, hydra, all) with --package and --resolve prints of a composed config, as Hydra
    prints it, except that --resolve resolves the run folders in the whole config (Hydra resolves
    `--cfg hydra` without the job's keys, which name the folder); ConfigError for a package it lacks."""
    if args.resolve:
        resolved = copy.deepcopy(cfg)
        with naming.as_hydra_config(cfg):
            OmegaConf.resolve(resolved)
        cfg = resolved
    if args.cfg == "job":
        shown = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    else:
        shown = Hydra.get_sanitized_hydra_cfg(cfg) if args.cfg == "hydra" else cfg
    if args.package in (None, "_global_"):
        return shown
    node = OmegaConf.select(shown, args.package, default=None)
    if node is None:
        known = dotted_names(OmegaConf.to_container(shown, resolve=False))
        raise ConfigError(f"--package {args.package}: {not_a_key(args.package, known)}")
    return node


def print_configs(configs: list[DictConfig], args: Any) -> None:
    """Print `--cfg` of the command line's one config, or with -m of each job's, as a YAML document
    headed by the job's overrides and run folder (a search's jobs: the ends of its ranges); a reader
    that stops early (`| head`) ends it quietly."""
    shown = [_shown(cfg, args) for cfg in configs]  # every ConfigError before anything is printed
    sweeper = OmegaConf.select(configs[0], "hydra.runtime.choices", default={}).get("hydra/sweeper")
    lines = []
    if args.multirun and sweeper not in (None, "basic", "stage"):
        lines.append(f"# hydra/sweeper={sweeper} picks its trials as it runs; these jobs are the ends of its ranges\n")
    for number, (cfg, node) in enumerate(zip(configs, shown), 1):
        if args.multirun:
            overrides = " ".join(cfg.hydra.overrides.task) or "(no overrides)"
            lines.append("---\n" if number > 1 else "")
            lines.append(f"# job {number} of {len(configs)}: {overrides}\n")
            lines.append(f"# run folder: {naming.job_folder(cfg, multirun=True)}\n")
        if not OmegaConf.is_config(node):
            lines.append(f"{node}\n")
            continue
        if args.package not in (None, "_global_"):
            lines.append(f"# @package {args.package}\n")
        lines.append(OmegaConf.to_yaml(node))
    try:
        sys.stdout.writelines(lines)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader has all it wanted; Python would complain again at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
