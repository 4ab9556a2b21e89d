"""Speed comparisons: the cases (what is timed) and the runner of ``python -m vaebench bench``."""
