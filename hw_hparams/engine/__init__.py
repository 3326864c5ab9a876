"""The numerics of k runs trained as one fused network (k = 1 for a single run): models and their
fusion, every random draw, mixup, the SGD update and schedules, precision and device, the batch step
(step.py), a group of runs and its compiled form (group.py, capture.py, compile_guard.py)."""
