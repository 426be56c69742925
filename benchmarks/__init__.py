"""The side-by-side benchmarks: `python -m benchmarks` (see `__main__`), and `startup_cost.py`."""
