"""The run folder: its format (format.py: file names, history columns, statuses, metrics; read by
analysis/), its files and rules (folder.py), checkpoints, the lock, interrupts, what a person watching
sees (progress.py) and what a job returns to a search (objective.py). Imports nothing here."""
