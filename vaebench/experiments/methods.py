"""disentanglement_lib's six methods on dSprites, on one shared trainer: beta-VAE, AnnealedVAE,
FactorVAE, DIP-VAE-I, DIP-VAE-II and beta-TCVAE (``vaebench.methods``), each at one setting, over
seeds; MIG over training, the metric suite at the end, exported models.

A unit is (method, setting, seed); ``settings`` lists ``method=value`` pairs (value: the method's
``param``, e.g. ``factor_vae=35`` is gamma 35). Every unit of a seed starts from the same
initial weights and sees the same batches (paired comparisons across methods). Files, under
``out_dir`` (see ``vaebench.experiments.grid``): ``methods_losses.csv`` (with each method's own
values: tc, capacity, dip_penalty, disc_loss, disc_accuracy), ``methods_trajectory.csv``,
``methods_mig.csv``, ``methods_metrics.csv`` (the suite: one row per model with method, param,
setting, seed, mig, the suite's columns and ``model``, the model file), ``methods_arrays_<unit>.npz``,
``models/<unit>.pt`` (loadable with ``vaebench.models.load_vae``), ``methods_config.json``.

``reuse``: a beta-VAE results folder trained with this very training config (``run beta-vae
--profile cpu`` for the ``cpu`` profile). Its beta-VAE units at this run's ``beta_vae=`` settings
are taken from there instead of being trained again: their suite rows (where scored with the
same settings), trajectories and figure arrays.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from vaebench.experiments import grid
from vaebench.experiments.config import config_from_profile
from vaebench.methods import ALL, METHODS, Method, make_method
from vaebench.training import config as train_config
from vaebench.training.config import NOT_TRAINING, TrainConfig

PREFIX = "methods"
KEYS = ["method", "param", "setting", "seed"]
# The settings picked for the cpu budget, one per method: the higher full-grid MIG of the two literature
# values each had in the short sweep (results/methods_sweep); beta-VAE's beta 4 is results/cpu's.
CHOSEN = ("beta_vae=4", "annealed_vae=25", "factor_vae=20", "dip_vae_i=10", "dip_vae_ii=5", "beta_tcvae=6")


@dataclass(frozen=True)
class MethodsConfig(TrainConfig):
    """The shared trainer's config plus the grid: ``method=value`` settings and seeds."""

    prefix: ClassVar[str] = PREFIX
    grid_fields: ClassVar[tuple[str, ...]] = ("settings",)

    settings: tuple[str, ...] = CHOSEN
    num_seeds: int = 3
    reuse: str | None = None  # a beta-VAE results folder of the same training config (see module doc)


def parse_settings(settings, registry: dict = METHODS) -> list[tuple[str, float]]:
    """``["factor_vae=35", ...]`` -> ``[("factor_vae", 35.0), ...]`` for methods of ``registry``;
    bad names or values raise."""
    out = []
    for item in settings:
        name, sep, value = str(item).partition("=")
        name = name.strip()
        if not sep or name not in registry:
            raise ValueError(f"settings: expected method=value with method one of {sorted(registry)}, got {item!r}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"settings: {item!r}: {registry[name].param} must be a number, got {value!r}") from None
        if not registry[name].allows(number):
            raise ValueError(f"settings: {item!r}: {registry[name].param} must be {registry[name].allowed()}, "
                             f"got {value!r}")
        out.append((name, number))
    if not out:
        raise ValueError("settings: expected at least one method=value, got none")
    return out


# Short-budget methods runs share the beta-VAE profiles' training settings (same data draws, same
# model), so that a folder of each can be compared or reused.
def from_beta_vae(profile: str, cls: type = None, **fields) -> MethodsConfig:
    """``cls`` (default MethodsConfig) with the training fields of the beta-VAE's ``profile``."""
    from vaebench.experiments.beta_vae import PROFILES as BETA_VAE

    base = {f.name: getattr(BETA_VAE[profile], f.name) for f in dataclasses.fields(TrainConfig)}
    return (cls or MethodsConfig)(**{**base, **fields})


ALL_STUDY = tuple(f"{name}={v:g}" for name, m in METHODS.items() for v in m.study_values)

PROFILES: dict[str, MethodsConfig] = {
    # CI: the beta-VAE smoke model, every method, 1 seed; seconds.
    "smoke": from_beta_vae("smoke", settings=CHOSEN, num_seeds=1),
    # The MLP of the beta-VAE quick profile, 1,250 steps per method, 1 seed: a few minutes, enough to
    # see each method's terms act (TC, capacity, covariance penalty), far too short to disentangle.
    "quick": from_beta_vae("quick", settings=CHOSEN, num_seeds=1, steps=1250, trajectory_every=250),
    # The beta-VAE cpu recipe (conv, batch 256, Adam 5e-4, 10k steps, bf16 where native), 3 seeds;
    # the beta-VAE rows come from results/cpu. About 40-50 minutes per unit on one core of the 2-core
    # CPU: run it two units at a time (--jobs 2), over several sessions (units resume one by one).
    "cpu": from_beta_vae("cpu", settings=CHOSEN, num_seeds=3, reuse="results/cpu"),
    # The short sweep that chose CHOSEN: the cpu recipe at a quarter of its budget (2,500 steps),
    # two literature values per method, 1 seed, MIG every 625 steps; no suite.
    "sweep": from_beta_vae("cpu", steps=2500, num_seeds=1, suite_scale=0.0, export_models=False, settings=(
        "annealed_vae=10", "annealed_vae=25", "factor_vae=20", "factor_vae=35", "dip_vae_i=5", "dip_vae_i=10",
        "dip_vae_ii=5", "dip_vae_ii=20", "beta_tcvae=4", "beta_tcvae=6")),
    # disentanglement_lib's grid: 6 methods x 6 settings x 5 seeds at its 300k steps of batch 64:
    # for a cluster (`--executor ray`).
    "paper": MethodsConfig(settings=ALL_STUDY, num_seeds=5, precision="auto", trajectory_every=25_000,
                           export_models=True),
}


@dataclass(frozen=True)
class Unit:
    """One (method, setting, seed) model; ``str`` is its tag, e.g. ``factor_vae_gamma35_seed0``.
    ``home``: where a reused unit's files are (``grid.Home``), None for a unit trained here."""

    method: str
    setting: float
    seed: int
    home: grid.Home | None = None

    @property
    def param(self) -> str:
        return ALL[self.method].param

    def __str__(self) -> str:
        return f"{self.method}_{self.param}{self.setting:g}_seed{self.seed}"

    def keys(self) -> dict:
        return {"method": self.method, "param": self.param, "setting": self.setting, "seed": self.seed}

    def make_method(self, cfg: MethodsConfig, setup) -> Method:
        return make_method(self.method, self.setting, setup)


def make_config(profile: str = "quick", **overrides) -> MethodsConfig:
    cfg = config_from_profile("methods", PROFILES, profile, overrides)
    train_config.validate(cfg)
    parse_settings(cfg.settings)
    if cfg.num_seeds < 1:
        raise ValueError(f"num_seeds must be >= 1, got {cfg.num_seeds}")
    return cfg


def units(cfg: MethodsConfig, seeds: list[int], run_seed: int = 0, registry: dict = METHODS) -> list[Unit]:
    """Seed-major, as the beta-VAE grid (a run stopped part-way has every method of its first
    seeds); ``beta_vae`` units finished in ``cfg.reuse`` point there (``reused_home``)."""
    out = []
    for s in seeds:
        for name, value in parse_settings(cfg.settings, registry):
            home = reused_home(cfg, name, value, s, run_seed) if name == "beta_vae" else None
            out.append(Unit(name, value, s, home))
    return out


def reused_home(cfg: MethodsConfig, method: str, value: float, seed: int, run_seed: int) -> grid.Home | None:
    """Where the beta-VAE unit (beta = ``value``, ``seed``) of ``cfg.reuse`` is, if that folder was
    trained with this very training config and run seed and holds the unit finished; else None
    (then the unit trains here)."""
    from vaebench.experiments import beta_vae

    path = Path(cfg.reuse or "") / f"{beta_vae.PREFIX}_config.json"
    if not cfg.reuse or not path.exists():
        return None
    recorded = json.loads(path.read_text())
    old, new = recorded.get("config", {}), json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    training = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_TRAINING]
    if any(old.get(k) != new[k] for k in training) or (recorded.get("seeds") or [None])[0] != run_seed:
        return None
    home = grid.Home(str(Path(cfg.reuse)), beta_vae.PREFIX, str(beta_vae.Unit(value, seed)), recorded.get("run_id"),
                     ("beta",))
    return home if grid.load_finished(None, Unit(method, value, seed, home), None) is not None else None


def experiment(out_dir: Path, profile: str = "quick", *, seed: int = 0, force: bool = False, device: str = "cpu",
               **overrides):
    cfg = make_config(profile, **overrides)
    seeds = [seed + i for i in range(cfg.num_seeds)]
    return grid.experiment("methods", cfg, units(cfg, seeds, seed), profile, out_dir, seed=seed, seeds=seeds,
                           force=force, device=device)


def run(out_dir: Path, profile: str = "quick", *, seed: int = 0, force: bool = False, device: str = "cpu",
        progress: bool = True, executor=None, train: bool = True, **overrides) -> None:
    """Trains, evaluates and scores every (method, setting, seed) of ``profile`` into ``out_dir``
    (see module doc), locally or with ``executor``; ``train=False``: scores the finished ones only."""
    exp = experiment(out_dir, profile, seed=seed, force=force, device=device, **overrides)
    grid.run(exp, executor, progress, train=train)
