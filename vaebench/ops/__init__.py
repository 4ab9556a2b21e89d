"""vaebench's fused ops (torch custom ops in ``torch.ops.vaebench``) and their eager references."""
from vaebench.ops.reparam_kl import draw_seed, philox_normal, reparam_kl, reparam_kl_eager

__all__ = ["draw_seed", "philox_normal", "reparam_kl", "reparam_kl_eager"]
