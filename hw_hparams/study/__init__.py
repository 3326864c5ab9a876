"""`python -m hw_hparams.homework`: the study as a graph of sections (graph.py), its plan in runs
(plan.py), its command line (args.py), stage after stage launched as sweeps (run.py, sweeps.py), the
choices made between them (selection.py) and the hand-over to analysis/ (contract.py)."""
