"""`python -m hw_hparams.bench`: seconds per epoch of the classic pipeline and of ours, side by side
(__main__.py), what one benchmark process measures (workers.py) and the report (report.py)."""
