"""Reading: run folders found and loaded into tables (runs.py), a study's choices.json (contract.py)
and its runs (study.py), runs selected and grouped by the keys a sweep varied (sweep.py), what may be
compared (comparable.py), and values in words (labels.py). Nothing here draws or writes a report."""
