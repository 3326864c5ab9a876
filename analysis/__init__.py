"""Tables and figures from hw_hparams run folders (reads run folders only; never imports the training
code: of hw_hparams only modules that need the standard library alone: the run folder's format
(hw_hparams.runs.format), which keys change a run (hw_hparams.config.roles), the one error printer
and "did you mean" rule of every command (hw_hparams.config.errors, hw_hparams.config.suggest)).

    runs, history = analysis.collect(["outputs/multirun/lr_sweep"])
    files = analysis.write_all(["outputs/multirun"], "report")   # {'csv': [...], 'tables': [...], 'figures': [...]}
    doc = analysis.generic_document(runs, history, None)   # the blocks those files are rendered from
    result = analysis.paper.build("outputs/homework")   # a study's report.md, paper.tex, paper.pdf

The study report (analysis.paper, `python -m analysis.paper STUDY_DIR`) reads the study's
choices.json (analysis.read.contract) and its run folders, nothing else.

Accuracies are fractions in the CSVs and percent in tables and figures.
"""

from analysis.read.labels import fmt_num, setting_label
from analysis.read.runs import (
    GROUP_COLS,
    HISTORY_COLUMNS,
    HPARAMS,
    RUN_COLS,
    AnalysisError,
    collect,
    find_run_dirs,
    load_config,
    load_data_stats,
    read_history,
)
from analysis.render.figures import beta_pdf, mixup_alphas
from analysis.render.tables import latex_escape, metrics_table, summarize
from analysis.report import generic_document, write_all, write_document
