"""What a run is, and what a command line may say: the config schema and its checks (schema.py,
checks.py), each key's role (roles.py), the run folder's name (naming.py), the command line read as
Hydra reads it (overrides.py, compose_errors.py, hydra_flags.py), the one error type (errors.py) and
the one "did you mean" rule (suggest.py). Imports nothing here: analysis/ reads roles.py, errors.py
and suggest.py, which need only the standard library."""
