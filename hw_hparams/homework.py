"""`python -m hw_hparams.homework [settings] [train overrides]`: the whole assignment in one command.

The four sections are a graph (study/graph.py): each names the choices it needs, and every section
whose needs are met starts at once, as one sweep of all their runs (hydra/sweeper=stage) into
outputs/<study>/<section>/: lr_sweep -> the lr by `select_by` -> schedule_sweep and wd_sweep at that
lr, together -> the weight decay by `select_wd_by` -> mixup with both. With speculation (default
where the launcher trains runs at once) mixup trains under both weight-decay candidates alongside
wd_sweep, and once the weight decay is chosen the candidate with it alone evaluates the test split;
otherwise mixup trains after wd_sweep and evaluates it after its last epoch. With launcher=basic the
sections run one after another. Then outputs/<study>/choices.json (what analysis needs beyond the run
folders) -> outputs/<study>/report/ (tables, figures, report.md, paper.tex and paper.pdf; `python -m
analysis.paper outputs/<study>` rebuilds it without training). `plan=true` prints the plan only.
Re-running the same command continues where it stopped: finished stages are not launched again,
finished runs are skipped, interrupted ones resume.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

from hw_hparams.config.errors import ConfigError, fail, say
from hw_hparams.plugins import register_plugins
from hw_hparams.runs.progress import OverBars
from hw_hparams.study.args import SETTINGS_HELP, parse_args
from hw_hparams.study.plan import print_plan
from hw_hparams.study.run import LOG_FORMAT, StudyError, log, log_to_file, prepare, run_study

HELP = __doc__ + "\n" + SETTINGS_HELP


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(HELP)
        return
    console = logging.StreamHandler()  # stderr, which a stage's sweep draws its epoch bars on
    console.setFormatter((OverBars if sys.stderr.isatty() else logging.Formatter)(LOG_FORMAT, datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[console])
    register_plugins()  # hydra/launcher=fused, =slurm and the sweepers by name, however the project was installed
    try:
        settings, train_overrides = parse_args(argv)
        if settings.plan:
            print_plan(prepare(settings, train_overrides, plan_only=True), settings.bench)
            return
        from hw_hparams.study.contract import check_report, hand_over  # matplotlib and pandas only past the plan

        check_report(Path(settings.out) / settings.study)  # before anything trains: an edited paper stops it
        study = prepare(settings, train_overrides)
        log_to_file(study.root)
        log.info("study %s: %s", study.root, study.progress.status())
        outcome = run_study(study)
        report = hand_over(study, outcome, "python -m hw_hparams.homework " + shlex.join(argv))
    except ConfigError as err:
        fail(str(err))
    except StudyError as err:
        if str(err):
            say(str(err))
        sys.exit(err.code)
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to continue", file=sys.stderr)
        sys.exit(130)
    for line in report.lines:
        print(line, file=sys.stderr if line.startswith(("error:", "warning:")) else sys.stdout)
    if report.compiled is False:
        sys.exit(1)


if __name__ == "__main__":
    main()
