"""Speed benchmarks: `python -m benchmarks` prints a table of medians beside their baselines."""
