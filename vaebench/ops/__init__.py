"""vaebench's fused ops (torch custom ops in ``torch.ops.vaebench``) and their eager references."""
from vaebench.ops.gaussian_logdensity import gaussian_logdensity_lse, gaussian_logdensity_lse_eager
from vaebench.ops.output_cache import (
    cpu_output_cache_info,
    cpu_output_cache_limit,
    empty_cpu_output_cache,
    set_cpu_output_cache_limit,
)
from vaebench.ops.reparam_gjs import reparam_gjs, reparam_gjs_eager
from vaebench.ops.reparam_kl import draw_seed, kl_normal, philox_normal, reparam_kl, reparam_kl_eager

__all__ = [
    "cpu_output_cache_info",
    "cpu_output_cache_limit",
    "draw_seed",
    "empty_cpu_output_cache",
    "gaussian_logdensity_lse",
    "gaussian_logdensity_lse_eager",
    "kl_normal",
    "philox_normal",
    "reparam_gjs",
    "reparam_gjs_eager",
    "reparam_kl",
    "reparam_kl_eager",
    "set_cpu_output_cache_limit",
]
