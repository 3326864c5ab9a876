"""`python -m hw_hparams.train`: the command line checked (preflight.py), each job's run accepted,
locked, resumed and trained (lifecycle.py) in parts that fit the device (sizing.py) through the
epoch loop (loop.py), and its record and last line (job.py)."""
