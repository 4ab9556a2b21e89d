// Argument checks and preparation shared by the CPU and CUDA entry points of
// vaebench::mig_histogram. The Python wrapper checks first with friendlier
// messages; these guard direct torch.ops calls and compute numpy's bin ranges.
#pragma once

#include <ATen/ATen.h>

namespace vaebench {

struct MigHistogramInputs {
  at::Tensor latents;  // [N, D] float32 or float64, contiguous
  at::Tensor factors;  // [N, K] int64, contiguous
  at::Tensor lo, hi;   // [D] float64: np.histogram's outer edges per dimension
};

inline MigHistogramInputs prepare_mig_histogram(const at::Tensor& latents_in,
                                                const at::Tensor& factors_in, int64_t num_bins,
                                                int64_t num_classes) {
  TORCH_CHECK(latents_in.dim() == 2, "mig_histogram: latents must be 2-D [N, D], got shape ",
              latents_in.sizes());
  TORCH_CHECK(factors_in.dim() == 2, "mig_histogram: factors must be 2-D [N, K], got shape ",
              factors_in.sizes());
  TORCH_CHECK(latents_in.size(0) == factors_in.size(0),
              "mig_histogram: latents and factors must have the same N, got ", latents_in.size(0),
              " and ", factors_in.size(0));
  TORCH_CHECK(latents_in.size(0) > 0, "mig_histogram: need at least one sample, got N = 0");
  TORCH_CHECK(at::isFloatingType(latents_in.scalar_type()),
              "mig_histogram: latents must be floating, got ", latents_in.scalar_type());
  TORCH_CHECK(at::isIntegralType(factors_in.scalar_type(), /*includeBool=*/false),
              "mig_histogram: factors must be an integer tensor, got ", factors_in.scalar_type());
  TORCH_CHECK(factors_in.device() == latents_in.device(),
              "mig_histogram: factors must be on latents' device ", latents_in.device(), ", got ",
              factors_in.device());
  TORCH_CHECK(num_bins >= 2 && num_bins <= (int64_t{1} << 30),
              "mig_histogram: num_bins must be in [2, 2^30], got ", num_bins);
  TORCH_CHECK(num_classes >= 1, "mig_histogram: num_classes must be >= 1, got ", num_classes);

  MigHistogramInputs in;
  const auto st = latents_in.scalar_type();
  // Half and bfloat16 widen exactly to float32; binning itself is float64.
  in.latents = (st == at::kFloat || st == at::kDouble ? latents_in : latents_in.to(at::kFloat))
                   .contiguous();
  in.factors = factors_in.to(at::kLong).contiguous();
  if (in.factors.numel() > 0) {
    const auto [fmin, fmax] = at::aminmax(in.factors);
    const int64_t mn = fmin.item<int64_t>(), mx = fmax.item<int64_t>();
    TORCH_CHECK(mn >= 0 && mx < num_classes, "mig_histogram: factor classes must be in [0, ",
                num_classes, "), got values in [", mn, ", ", mx, "]");
  }
  if (in.latents.size(1) == 0) {
    in.lo = in.hi = at::empty({0}, in.latents.options().dtype(at::kDouble));
    return in;
  }
  auto [lo, hi] = at::aminmax(in.latents, /*dim=*/0);
  lo = lo.to(at::kDouble);
  hi = hi.to(at::kDouble);
  TORCH_CHECK(at::isfinite(lo).all().item<bool>() && at::isfinite(hi).all().item<bool>(),
              "mig_histogram: latents must be finite (found NaN or inf)");
  // np.histogram widens a constant column to [x - 0.5, x + 0.5].
  const at::Tensor same = lo == hi;
  in.lo = at::where(same, lo - 0.5, lo).contiguous();
  in.hi = at::where(same, hi + 0.5, hi).contiguous();
  TORCH_CHECK(at::isfinite(in.hi - in.lo).all().item<bool>(),
              "mig_histogram: a latent dimension's range max - min overflows float64");
  return in;
}

}  // namespace vaebench
