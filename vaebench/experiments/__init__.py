"""Experiments: each module exposes a config dataclass, ``PROFILES`` and ``run(out_dir, profile, ...)``."""
