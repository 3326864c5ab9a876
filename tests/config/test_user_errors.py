"""The mistakes a newcomer makes, each with the one line it must print (exit 2) and no file left behind.

Every row is a command line as a user types it and the exact line we promise; the commands run
in-process through the same `main` functions the console scripts call (`{root}` is a generated
dataset, `{file}` a plain file). One row runs in a subprocess: an offline download, which only the
run itself can find out.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from analysis_synth import make_config, make_history, write_run  # noqa: E402
from support import run_cli

from hw_hparams.data.fake import write_fake_cifar100

FAKE = ["data.root={root}", "data.download=false", "data.verify_checksums=false", "data.val_size=100"]
LR_OPTIONS = "choose one of lr0.01, lr0.05, lr0.5"
LAUNCHERS = "basic, fused, joblib, slurm, slurm_cpu, submitit_local, submitit_slurm"
NOT_OVERRIDE = "is not a valid override: write key=value, a sweep as key=a,b,c, and quote a value that holds , = [ ] ( ) or spaces: key='...'"

# non-finite values of float keys (1e400 reads as inf)
NON_FINITE = [
    ("train", ["optim.lr=inf"], "optim.lr=inf is not allowed: must be a finite number > 0"),
    ("train", ["optim.lr=-inf"], "optim.lr=-inf is not allowed: must be a finite number > 0"),
    ("train", ["optim.lr=nan"], "optim.lr=nan is not allowed: must be a finite number > 0"),
    ("train", ["optim.lr=1e400"], "optim.lr=inf is not allowed: must be a finite number > 0"),
    ("train", ["-m", "optim.lr=0.1,inf"], "optim.lr=inf is not allowed: must be a finite number > 0"),
    ("train", ["optim.momentum=nan"], "optim.momentum=nan is not allowed: must be in [0, 1)"),
    ("train", ["optim.weight_decay=inf"], "optim.weight_decay=inf is not allowed: must be a finite number >= 0"),
    (
        "train",
        ["augmentation.mixup_alpha=inf"],
        "augmentation.mixup_alpha=inf is not allowed: must be a finite number > 0, or null for no mixup",
    ),
]
# interpolations that do not resolve: a missing key, an unknown resolver, a resolver that fails; on the line or in a config
UNRESOLVED = [
    ("train", ["optim.lr=${{oops}}"], "optim.lr=${{oops}} cannot be resolved: oops is not a config key"),
    (
        "train",
        ["optim.lr=${{optim.nope}}"],
        "optim.lr=${{optim.nope}} cannot be resolved: optim.nope is not a config key",
    ),
    (
        "train",
        ["optim.lr=${{nope:1}}"],
        "optim.lr=${{nope:1}} cannot be resolved: there is no resolver nope (OmegaConf's are oc.env, oc.select, oc.decode, ...)",
    ),
    (
        "train",
        ["optim.lr=${{oc.env:HW_HPARAMS_UNSET}}"],
        "optim.lr=${{oc.env:HW_HPARAMS_UNSET}} cannot be resolved: the resolver oc.env failed: Environment variable 'HW_HPARAMS_UNSET' not found",
    ),
    ("train", ["seed=${{now:}}"], "seed=${{now:}} cannot be resolved: wrong arguments to the resolver now"),
    ("train", ["optim.lr=${{model.name}}"], "optim.lr=${{model.name}} is not allowed: must be a number"),
    (
        "train",
        ["-m", "seed=0,1", "data.root=${{oops}}"],
        "data.root=${{oops}} cannot be resolved: oops is not a config key",
    ),
    (
        "train",
        ["hydra.run.dir=runs/${{oops}}"],
        "hydra.run.dir=runs/${{oops}} cannot be resolved: oops is not a config key",
    ),
    (
        "train",
        ["hydra.searchpath=[file://{conf}]", "+mine=typo"],
        "optim.lr=${{optim.lrr}} cannot be resolved: optim.lrr is not a config key (did you mean optim.lr?)",
    ),
]
# Hydra's delete syntax on keys every run needs
REMOVED = [
    (
        "train",
        ["~optim.lr"],
        "~optim.lr: optim.lr cannot be removed, every run needs it; set it instead, e.g. optim.lr=0.05",
    ),
    ("train", ["~seed"], "~seed: seed cannot be removed, every run needs it; set it instead, e.g. seed=0"),
    (
        "train",
        ["~optim"],
        "~optim: optim cannot be removed, every run needs it; set its keys instead: optim.lr, optim.momentum, optim.weight_decay",
    ),
    (
        "train",
        ["~hydra.run.dir"],
        "~hydra.run.dir: hydra.run.dir cannot be removed, every run needs it; set it instead, e.g. hydra.run.dir=outputs/run/${{hw_run_path:}}",
    ),
]

# a misspelt name: the close ones, by the one rule of every command (hw_hparams/config/suggest.py)
DID_YOU_MEAN = [
    ("train", ["scheduler=cosine"], "scheduler is not a config key (did you mean schedule?)"),
    (
        "train",
        ["schedule=cosin"],
        "schedule=cosin is not an option: choose one of constant, cosine (did you mean cosine?)",
    ),
    (
        "train",
        ["model=mobilenet_v2"],
        "model=mobilenet_v2 is not an option: choose one of mobilenetv1, mobilenetv2, tiny (did you mean mobilenetv2?)",
    ),
    (
        "train",
        ["schedule.name=cosin"],
        "schedule.name=cosin is not allowed: one of constant, cosine (did you mean cosine?)",
    ),
    ("train", ["++optim.lrr=1"], "optim.lrr is not a config key (did you mean optim.lr?)"),
    ("train", ["hydra.run.dri=runs"], "hydra.run.dri is not a config key (did you mean hydra.run.dir?)"),
    ("train", ["hydra/launchr=joblib"], "hydra/launchr is not a config group (did you mean hydra/launcher?)"),
    (
        "train",
        ["trainer.precision=bf61"],
        "trainer.precision='bf61' is not allowed: one of auto, fp32, bf16, fp16 (did you mean bf16?)",
    ),
    (
        "homework",
        ["selct_by=val_loss"],
        "selct_by is not a setting of the study or a training key (did you mean select_by?)",
    ),
    (
        "homework",
        ["demo=true", "optim.lrr=0.1"],
        "optim.lrr is not a setting of the study or a training key (did you mean optim.lr?)",
    ),
    (
        "homework",
        ["lanucher=basic"],
        "lanucher is not a setting of the study or a training key (did you mean launcher?)",
    ),
    (
        "homework",
        ["select_by=val_ac"],
        "select_by='val_ac' is not allowed: one of train_loss, train_acc, val_loss, val_acc (did you mean val_acc?)",
    ),
    (
        "analysis",
        ["{runs}/sweep", "--out", "report", "--by", "optim.lrr"],
        "--by optim.lrr: not a config key of these runs (did you mean optim.lr?); keys that vary: optim.lr",
    ),
    (
        "analysis",
        ["{runs}/sweep", "--out", "report", "--where", "sed=0"],
        "--where sed: not a config key of these runs (did you mean seed?); keys that vary: optim.lr",
    ),
    (
        "analysis",
        ["{runs}/sweep", "--out", "report", "--metric", "val_ac"],
        "--metric val_ac: not a metric; one of val_acc, val_loss, train_acc, train_loss, best_val_acc, test_acc, "
        "test_loss, lr, epoch_time_s (did you mean val_acc?)",
    ),
]
# Hydra's own syntax and flags: Hydra's tracebacks and messages of several lines, each one line saying what to type
HYDRA_SAYS = [
    (
        "train",
        ["optim.lr=0.1,0.2"],
        "optim.lr=0.1,0.2 is a sweep, one run per value: add -m (python -m hw_hparams.train -m optim.lr=0.1,0.2)",
    ),
    (
        "train",
        ["optim.lr=0.1,0.2", "--cfg", "job"],
        "optim.lr=0.1,0.2 is a sweep, one run per value: add -m (python -m hw_hparams.train -m optim.lr=0.1,0.2 --cfg job)",
    ),
    (
        "train",
        ["epochs=1", "optim.lr=range(1,3)"],
        "optim.lr=range(1,3) is a sweep, one run per value: add -m (python -m hw_hparams.train -m epochs=1 'optim.lr=range(1,3)')",
    ),
    ("train", ["optim.lr="], "optim.lr= has no value: give one, e.g. optim.lr=0.05"),
    (
        "train",
        ["hydra.run.dir="],
        "hydra.run.dir= has no value: give one, e.g. hydra.run.dir=outputs/run/${{hw_run_path:}}",
    ),
    ("train", ["logger.dir="], "logger.dir= has no value: give one, logger.dir=VALUE, or leave logger.dir out"),
    ("train", ["+optim.lr=1"], "+optim.lr=1: optim.lr is already in the config: set it without +, optim.lr=1"),
    (
        "train",
        ["+hydra/launcher=joblib"],
        "+hydra/launcher=joblib: hydra/launcher already has an option: choose another without +, hydra/launcher=joblib",
    ),
    ("train", ["~optim.lrr"], "~optim.lrr: nothing to remove, optim.lrr is not a config key (did you mean optim.lr?)"),
    (
        "train",
        ["~nope"],
        "~nope: nothing to remove, nope is not a config key (see `python -m hw_hparams.train --cfg job` for the keys)",
    ),
    ("train", ["~lr=lr0.5"], "~lr=lr0.5: lr is not lr0.5 here; remove whichever option it has with ~lr"),
    (
        "train",
        ["hydra=1"],
        "hydra=1 is not allowed: it is a group of keys: set one of them, e.g. hydra.run.dir=... (see `python -m hw_hparams.train --cfg hydra` for the keys)",
    ),
    ("train", ["lr@x=lr0.5"], "lr@x=lr0.5: a config group's package (@...) cannot be changed here; write lr=lr0.5"),
    ("train", ["@x=1"], f"'@x=1' {NOT_OVERRIDE}"),
    (
        "train",
        ["hydra.launcher=joblib"],
        "hydra.launcher=joblib is not allowed: a config group's option is chosen with /: hydra/launcher=joblib",
    ),
    (
        "train",
        ["hydra.run.dir=/proc/hw_hparams/run"],
        "cannot create the run folder /proc/hw_hparams/run: /proc is not a writable folder; choose another place with hydra.run.dir=...",
    ),
    ("train", ["--cfg", "job", "optim.lrr=1"], "optim.lrr is not a config key (did you mean optim.lr?)"),
    ("train", ["lr=0.1", "--cfg", "job"], f"lr=0.1 is not an option: {LR_OPTIONS} (or give a value: optim.lr=0.1)"),
    ("train", ["--help", "optim.lrr=1"], "optim.lrr is not a config key (did you mean optim.lr?)"),
    ("train", ["--info", "optim.lrr=1"], "optim.lrr is not a config key (did you mean optim.lr?)"),
    ("train", ["--cfg", "job", "--package", "optm"], "--package optm: optm is not a config key (did you mean optim?)"),
    (
        "train",
        ["-m", "optim.lr=0.1,0.2", "--info"],
        "-m and --info do not go together: drop -m for --info, or preview the sweep with -m --cfg job",
    ),
    ("train", ["--run", "--cfg", "job"], "--run and --cfg do not go together: give one of them"),
    ("train", ["--resolve"], "--resolve goes with --cfg: write --cfg job --resolve (or --cfg hydra, --cfg all)"),
    (
        "train",
        ["--shell-completion"],
        "--shell-completion: give install=SHELL or uninstall=SHELL (SHELL: bash, fish, zsh), e.g. --shell-completion install=bash",
    ),
    (
        "train",
        ["--shell-completion", "install=bsh"],
        "--shell-completion install=bsh: give install=SHELL or uninstall=SHELL (SHELL: bash, fish, zsh) (did you mean bash?)",
    ),
    ("train", ["-c"], "argument --cfg/-c: expected one argument: job, hydra, all (see --help)"),
    (
        "train",
        ["--shell-completion", "query=bash"],
        "--shell-completion query=bash is what the installed completion runs, with the line being typed in "
        "COMP_LINE: install it with --shell-completion install=bash",
    ),
    (
        "train",
        ["-m", "hydra.sweeper.params={{optim.lr:'0.1,0.2'}}"],
        "hydra.sweeper.params={{optim.lr:'0.1,0.2'}}: hydra.sweeper.params is null here, so it has no keys to set; "
        "sweep on the command line instead: -m optim.lr=0.1,0.2",
    ),
    (
        "train",
        ["-m", "experiment=lr_sweep", "hydra.sweeper.params.optim.lr=0.1,0.2"],
        "hydra.sweeper.params.optim.lr=0.1,0.2: a sweeper's params are not set one by one; "
        "sweep on the command line instead: -m optim.lr=0.1,0.2",
    ),
    ("train", ["--config-dir", "nowhere"], "--config-dir nowhere: no such folder"),
    ("train", ["--config-name", "trian"], "--config-name trian: there is no trian.yaml (did you mean train?)"),
    (
        "train",
        ["--config-path", "conf", "--config-name", "train"],
        "--config-path conf: give an absolute path (Hydra takes a relative one from the hw_hparams package), "
        "or add the folder with --config-dir conf",
    ),
    (
        "train",
        ["--experimental-rerun", "config.pickle"],
        "--experimental-rerun config.pickle: no such file (runs here keep none: re-run the same command instead; "
        "a finished run is not trained again, an unfinished one resumes)",
    ),
    (
        "homework",
        ["--multirun", "demo=true"],
        "--multirun: the study runs its sweeps itself; drop --multirun (seed=0,1,2 runs every section per seed)",
    ),
    (
        "homework",
        ["demo=true", "--cfg", "job"],
        "--cfg: the study takes key=value settings only; plan=true shows what it would run (see --help)",
    ),
    ("homework", ["out="], "out= has no value: give one, e.g. out=outputs"),
    (
        "homework",
        ["demo=true", "hydra.launcher=joblib"],
        "hydra.launcher is set by the study itself, section by section: use launcher=...",
    ),
    (
        "homework",
        ["out=/proc/hw_hparams"],
        "cannot create the study folder /proc/hw_hparams/homework: /proc is not a writable folder; choose another place with out=...",
    ),
    (
        "homework",
        ["demo=true", "~selct_by"],
        "~selct_by: nothing to remove, selct_by is not a setting of the study or a training key (did you mean select_by?)",
    ),
]

MISTAKES = [
    # (program, arguments, the line)
    # group options given as numbers, the right group blamed, with or without an experiment, single run or sweep
    ("train", ["lr=0.1"], f"lr=0.1 is not an option: {LR_OPTIONS} (or give a value: optim.lr=0.1)"),
    ("train", ["model=tiny", "lr=0.1"], f"lr=0.1 is not an option: {LR_OPTIONS} (or give a value: optim.lr=0.1)"),
    (
        "train",
        ["schedule=cosine", "lr=0.05"],
        f"lr=0.05 is not an option: {LR_OPTIONS} (or give a value: optim.lr=0.05)",
    ),
    (
        "train",
        ["-m", "experiment=lr_sweep", "lr=0.5"],
        f"lr=0.5 is not an option: {LR_OPTIONS} (or give a value: optim.lr=0.5)",
    ),
    ("train", ["-m", "lr=0.5,0.05"], f"lr=0.5 is not an option: {LR_OPTIONS} (or give a value: optim.lr=0.5,0.05)"),
    (
        "train",
        ["regularization=5e-4"],
        "regularization=5e-4 is not an option: choose one of none, wd1e-4, wd5e-4 (or give a value: optim.weight_decay=5e-4)",
    ),
    ("train", ["model=5"], "model=5 is not an option: choose one of mobilenetv1, mobilenetv2, tiny"),
    ("train", ["lr=null"], f"lr=null is not an option: {LR_OPTIONS}"),
    # typos and wrong groups
    ("train", ["schedule=linear"], "schedule=linear is not an option: choose one of constant, cosine"),
    ("train", ["model=resnet18"], "model=resnet18 is not an option: choose one of mobilenetv1, mobilenetv2, tiny"),
    (
        "train",
        ["-m", "experiment=lr_swep"],
        "experiment=lr_swep is not an option: choose one of lr_sweep, lr_wd_search, mixup, schedule_sweep, wd_sweep"
        " (did you mean lr_sweep?)",
    ),
    ("train", ["optim.lrr=0.1"], "optim.lrr is not a config key (did you mean optim.lr?)"),
    ("train", ["+foo=1"], "foo is not a config key (see `python -m hw_hparams.train --cfg job` for the keys)"),
    (
        "train",
        ["hydra/launcher=jobl1b"],
        f"hydra/launcher=jobl1b is not an option: choose one of {LAUNCHERS} (did you mean joblib?)",
    ),
    # wrong types
    ("train", ["optim.lr=fast"], "optim.lr=fast is not allowed: must be a number"),
    ("train", ["epochs=1.5"], "epochs=1.5 is not allowed: must be an integer"),
    ("train", ["eval_test=maybe"], "eval_test=maybe is not allowed: must be true or false"),
    ("train", ["augmentation.mixup_alpha=x"], "augmentation.mixup_alpha=x is not allowed: must be a number, or null"),
    ("train", ["schedule.name=linear"], "schedule.name=linear is not allowed: one of constant, cosine"),
    (
        "train",
        ["optim=3"],
        "optim=3 is not allowed: it is a group of keys: set one of optim.lr, optim.momentum, optim.weight_decay",
    ),
    # out-of-range values, every schema range up front
    ("train", ["optim.lr=0"], "optim.lr=0.0 is not allowed: must be a finite number > 0"),
    ("train", ["optim.momentum=1"], "optim.momentum=1.0 is not allowed: must be in [0, 1)"),
    ("train", ["optim.weight_decay=-1e-4"], "optim.weight_decay=-0.0001 is not allowed: must be a finite number >= 0"),
    ("train", ["epochs=0"], "epochs=0 is not allowed: must be an integer >= 1"),
    ("train", ["batch_size=-8"], "batch_size=-8 is not allowed: must be an integer >= 1"),
    ("train", ["seed=-1"], "seed=-1 is not allowed: must be an integer in [0, 2**32 - 1]"),
    (
        "train",
        ["augmentation.mixup_alpha=0"],
        "augmentation.mixup_alpha=0.0 is not allowed: must be a finite number > 0, or null for no mixup",
    ),
    (
        "train",
        ["trainer.device=gpu"],
        "trainer.device='gpu' is not allowed: one of auto, cpu, cuda, cuda:N, cuda:job, cuda:job/K (K jobs per GPU)",
    ),
    (
        "train",
        ["-m", "epochs=1", "trainer.progress=maybe"],
        "trainer.progress='maybe' is not allowed: one of auto, true, false",
    ),
    (
        "train",
        ["-m", "hydra/launcher=fused", "hydra.launcher.max_fused=0"],
        "hydra.launcher.max_fused=0 is not allowed: must be an integer >= 1, or null for every run that can share a network",
    ),
    (
        "train",
        ["-m", "hydra/launcher=fused", "hydra.launcher.max_fused=all"],
        "hydra.launcher.max_fused=all is not allowed: Value 'all' of type 'str' could not be converted to Integer",
    ),
    (
        "train",
        ["-m", "hydra/launcher=joblib", "hydra.launcher.njobs=3"],
        "hydra.launcher.njobs is not a config key (did you mean hydra.launcher.n_jobs?)",
    ),
    *NON_FINITE,
    *UNRESOLVED,
    *REMOVED,
    *DID_YOU_MEAN,
    *HYDRA_SAYS,
    # impossible combinations: what this machine and this dataset allow
    ("train", ["trainer.device=cuda"], "trainer.device='cuda' is not allowed here: no CUDA device; use auto or cpu"),
    (
        "train",
        [*FAKE[:3], "data.val_size=6000"],
        "data.val_size=6000 is not allowed: must be in [1, 599] for a training set of 600 images",
    ),
    (
        "train",
        ["data.root={root}/nowhere", "data.download=false"],
        "data.root='{root}/nowhere': CIFAR-100 in {root}/nowhere/cifar-100-python is missing; set data.download=true to fetch it, or point data.root at the folder that holds cifar-100-python/",
    ),
    # sweep syntax and command-line syntax
    ("train", ["-m", "optim.lr=0.1,,0.2"], f"'optim.lr=0.1,,0.2' {NOT_OVERRIDE}"),
    ("train", ["optim.lr=[0.1"], f"'optim.lr=[0.1' {NOT_OVERRIDE}"),
    (
        "train",
        ["--cfg", "nonsense"],
        "argument --cfg/-c: invalid choice: 'nonsense' (choose from 'job', 'hydra', 'all') (see --help)",
    ),
    ("train", ["--foo"], "unrecognized arguments: --foo (see --help)"),
    # bad paths
    (
        "train",
        ["hydra.run.dir={file}/run", *FAKE],
        "cannot create the run folder {file}/run: {file} is not a writable folder; choose another place with hydra.run.dir=...",
    ),
    # the study
    (
        "homework",
        ["demo=true", "trainer.device=cuda"],
        "trainer.device='cuda' is not allowed here: no CUDA device; use auto or cpu",
    ),
    (
        "homework",
        ["demo=true", "model=tiny", "seed=-1"],
        "seed=-1 is not allowed: must be an integer in [0, 2**32 - 1]",
    ),
    (
        "homework",
        ["demo=true", "data.val_size=99999"],
        "data.val_size=99999 is not allowed: must be in [1, 1999] for a training set of 2000 images",
    ),
    ("homework", ["demo=tru"], "demo='tru' is not allowed: must be true or false"),
    (
        "homework",
        ["select_by=best"],
        "select_by='best' is not allowed: one of train_loss, train_acc, val_loss, val_acc",
    ),
    (
        "homework",
        ["optim.lr=0.1"],
        "optim.lr is set by the study itself, section by section: run your own sweep with `python -m hw_hparams.train -m experiment=...`",
    ),
    ("homework", ["demo=true", "launcher=nope"], f"hydra/launcher=nope is not an option: choose one of {LAUNCHERS}"),
    ("homework", ["demo=true", "optim.momentum=inf"], "optim.momentum=inf is not allowed: must be in [0, 1)"),
    (
        "homework",
        ["demo=true", "optim.momentum=${{oops}}"],
        "optim.momentum=${{oops}} cannot be resolved: oops is not a config key",
    ),
    (
        "homework",
        ["seed=${{oc.env:HW_HPARAMS_UNSET}}"],
        "seed=${{oc.env:HW_HPARAMS_UNSET}} cannot be resolved: the resolver oc.env failed: Environment variable 'HW_HPARAMS_UNSET' not found",
    ),
    (
        "homework",
        ["demo=true", "~seed"],
        "~seed: seed cannot be removed, every run needs it; set it instead, e.g. seed=0",
    ),
    ("homework", ["~select_by"], "~select_by: select_by cannot be removed; set it instead, e.g. select_by=val_acc"),
    (
        "homework",
        ["data.root={root}/nowhere", "data.download=false"],
        "data.root='{root}/nowhere': CIFAR-100 in {root}/nowhere/cifar-100-python is missing; set data.download=true to fetch it, or point data.root at the folder that holds cifar-100-python/",
    ),
    # analysis, data, bench
    ("analysis", [], "the following arguments are required: RUN_OR_SWEEP_DIR, --out (see python -m analysis --help)"),
    ("analysis", ["nowhere", "--out", "report"], "path does not exist: nowhere"),
    (
        "analysis",
        ["{runs}/two_data", "--out", "report"],
        "these runs were trained on 2 different data sets, which cannot be ranked together (validation images: "
        "1000, 10000); choose one: --where data.val_size=1000 (2 runs); --where data.val_size=10000 (2 runs)",
    ),
    (
        "analysis",
        ["{runs}/mixup", "--out", "report", "--metric", "train_acc"],
        "--metric train_acc is lambda-weighted over two labels under mixup, plain without it, and these runs hold "
        "both (1 with mixup, 1 without); choose: --where augmentation.mixup_alpha=null (1 run); "
        "--where augmentation.mixup_alpha=0.2 (1 run); or rank by --metric val_acc",
    ),
    (
        "analysis",
        ["{runs}/mixup", "--out", "report", "--metric", "test_acc"],
        "--metric test_acc: none of these 2 runs has a finite value (the test split is evaluated only by runs "
        "trained with eval_test=true); rank by another metric, e.g. --metric val_acc",
    ),
    ("data", ["fake"], "the following arguments are required: --root (see python -m hw_hparams.data fake --help)"),
    ("data", ["fake", "--root", "x", "--train", "0"], "--train and --test must be >= 1 (got 0, 1000)"),
    ("bench", ["--device", "cuda"], "--device='cuda' is not allowed here: no CUDA device; use auto or cpu"),
    ("bench", ["--ks", "0"], "--ks=[0] is not allowed: integers >= 1"),
    (
        "bench",
        ["--model", "resnet"],
        "argument --model: invalid choice: 'resnet' (choose from 'mobilenetv2', 'mobilenetv1', 'tiny') (see python -m hw_hparams.bench --help)",
    ),
]


def _main(program: str):
    if program == "train":
        from hw_hparams.train.__main__ import main

        return lambda argv: (setattr(sys, "argv", ["hw-train", *argv]), main())
    if program == "homework":
        from hw_hparams.homework import main

        return main
    if program == "analysis":
        from analysis.__main__ import main

        return main
    if program == "data":
        from hw_hparams.data.__main__ import main

        return main
    from hw_hparams.bench.__main__ import main

    return main


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_fake_cifar100(root, train=600, test=50, seed=0)
    file = tmp_path_factory.mktemp("place") / "a_file"
    file.write_text("not a folder")
    conf = tmp_path_factory.mktemp("conf")  # a user's own config, found through hydra.searchpath
    (conf / "mine").mkdir()
    (conf / "mine" / "typo.yaml").write_text("# @package _global_\noptim:\n  lr: ${optim.lrr}\n")
    runs = tmp_path_factory.mktemp("runs")  # run folders for `python -m analysis`
    rng = np.random.default_rng(0)
    for folder, configs in {
        "two_data": [make_config(lr=lr, val_size=v) for v in (1000, 10000) for lr in (0.1, 0.01)],
        "mixup": [make_config(mixup=None), make_config(mixup=0.2)],
    }.items():
        for i, cfg in enumerate(configs):
            write_run(runs / folder / f"run{i}", cfg, make_history(cfg, rng))
    for lr in (0.1, 0.01):  # two finished runs of a sweep over optim.lr
        cfg = make_config(lr=lr, wd=0.0, seed=0, epochs=2)
        write_run(runs / "sweep" / f"optim.lr={lr}", cfg, make_history(cfg, np.random.default_rng(0)))
    return {"root": str(root), "file": str(file), "conf": str(conf), "runs": str(runs)}


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*"))


def test_the_table_holds_at_least_thirty_mistakes_of_every_program():
    assert len(MISTAKES) >= 30 and {p for p, _, _ in MISTAKES} == {"train", "homework", "analysis", "data", "bench"}


@pytest.mark.parametrize("program, args, line", MISTAKES, ids=[f"{p}:{' '.join(a)}" for p, a, _ in MISTAKES])
def test_each_mistake_is_one_line_exit_2_and_no_file(program, args, line, places, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    args = [a.format(**places) for a in args]
    with pytest.raises(SystemExit) as exit_:
        code = _main(program)(args)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err == f"error: {line.format(**places)}\n", err
    assert _files(tmp_path) == [], _files(tmp_path)


@pytest.fixture(scope="module")
def finished_run(places, tmp_path_factory):
    """A finished 1-epoch run (trained in-process) and a digest of every file it holds."""
    from support import compose_train

    from hw_hparams.train.lifecycle import run

    run_dir = tmp_path_factory.mktemp("finished") / "run"
    overrides = [a.format(**places) for a in FAKE] + [
        "model=tiny",
        "epochs=1",
        "batch_size=100",
        "trainer.progress=false",
        "trainer.device=cpu",
    ]
    assert run(compose_train(overrides), run_dir)["status"] == "completed"
    return run_dir, overrides


def _digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in _files(folder) if p.is_file()}


AT_A_FINISHED_RUN = [
    (p, a, line)
    for p, a, line in NON_FINITE + UNRESOLVED + REMOVED
    if p == "train" and "-m" not in a and not any(x.startswith(("hydra.run.dir", "~hydra.run")) for x in a)
]


@pytest.mark.parametrize("program, args, line", AT_A_FINISHED_RUN, ids=[" ".join(a) for _, a, _ in AT_A_FINISHED_RUN])
def test_each_mistake_pointed_at_a_finished_run_leaves_its_files_byte_for_byte(
    program, args, line, places, finished_run, monkeypatch, capsys
):
    run_dir, overrides = finished_run
    before, around = _digest(run_dir), _files(run_dir.parent)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    with pytest.raises(SystemExit) as exit_:
        _main(program)([*overrides, *(a.format(**places) for a in args), f"hydra.run.dir={run_dir}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err == f"error: {line.format(**places)}\n", err
    assert _digest(run_dir) == before and _files(run_dir.parent) == around


def test_an_offline_download_is_one_line_and_leaves_no_folder(tmp_path):
    nowhere = "http://127.0.0.1:9"  # a proxy that refuses: offline, even on a machine with a network
    result = run_cli(
        ["model=tiny", "epochs=1", "data.root=cifar"], tmp_path, env={"http_proxy": nowhere, "https_proxy": nowhere}
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert (
        lines[0].startswith("error: data.root='cifar': cannot read or fetch CIFAR-100")
        and "check the network" in lines[0]
    )
    assert "Traceback" not in result.stdout + result.stderr and _files(tmp_path) == []


def test_every_command_has_a_console_script_and_a_help_that_lists_what_a_newcomer_needs(tmp_path, capsys):
    from importlib.metadata import entry_points

    scripts = {e.name: e for e in entry_points(group="console_scripts") if e.name.startswith("hw-")}
    assert set(scripts) == {"hw-train", "hw-homework", "hw-analysis", "hw-data", "hw-bench"}
    assert all(callable(e.load()) for e in scripts.values())
    train_help = run_cli(["--help"], tmp_path).stdout
    for words in (
        "lr_sweep",
        "schedule_sweep",
        "wd_sweep",
        "mixup",
        "outputs/multirun/<experiment>/<name>/",
        "optim.lr (0.05)",
        "data.root (data)",
        "trainer.device",
        "lr: lr0.01, lr0.05, lr0.5",
        "hw-homework",
    ):
        assert words in train_help, words
    from hw_hparams.homework import main

    main(["--help"])
    homework_help = capsys.readouterr().out
    for words in (
        "<out>/<study>/<section>/<name>/",
        "report.md",
        "homework.log",
        "select_by=",
        "trainer.device",
        "demo=true",
    ):
        assert words in homework_help, words
    assert list(tmp_path.iterdir()) == []
