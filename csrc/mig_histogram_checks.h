// Argument checks and preparation shared by the CPU and CUDA entry points of
// vaebench::mig_histogram. The Python wrapper checks first with friendlier
// messages; these guard direct torch.ops calls.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace vaebench {

// Checks the arguments; returns latents as contiguous float32/float64 [N, D]
// and factors as contiguous int64 [N, K].
inline std::tuple<at::Tensor, at::Tensor> prepare_mig_histogram(const at::Tensor& latents,
                                                                const at::Tensor& factors,
                                                                int64_t num_bins,
                                                                int64_t num_classes) {
  TORCH_CHECK(latents.dim() == 2, "mig_histogram: latents must be 2-D [N, D], got shape ",
              latents.sizes());
  TORCH_CHECK(factors.dim() == 2, "mig_histogram: factors must be 2-D [N, K], got shape ",
              factors.sizes());
  TORCH_CHECK(latents.size(0) == factors.size(0),
              "mig_histogram: latents and factors must have the same N, got ", latents.size(0),
              " and ", factors.size(0));
  TORCH_CHECK(latents.size(0) > 0, "mig_histogram: need at least one sample, got N = 0");
  TORCH_CHECK(at::isFloatingType(latents.scalar_type()),
              "mig_histogram: latents must be floating, got ", latents.scalar_type());
  TORCH_CHECK(at::isIntegralType(factors.scalar_type(), /*includeBool=*/false),
              "mig_histogram: factors must be an integer tensor, got ", factors.scalar_type());
  TORCH_CHECK(factors.device() == latents.device(),
              "mig_histogram: factors must be on latents' device ", latents.device(), ", got ",
              factors.device());
  TORCH_CHECK(num_bins >= 2 && num_bins <= (int64_t{1} << 30),
              "mig_histogram: num_bins must be in [2, 2^30], got ", num_bins);
  TORCH_CHECK(num_classes >= 1, "mig_histogram: num_classes must be >= 1, got ", num_classes);
  const auto st = latents.scalar_type();
  // Half and bfloat16 widen exactly to float32; binning itself is float64.
  at::Tensor lat = (st == at::kFloat || st == at::kDouble ? latents : latents.to(at::kFloat)).contiguous();
  return {lat, factors.to(at::kLong).contiguous()};
}

inline std::string factor_range_message(int64_t num_classes, int64_t mn, int64_t mx) {
  return c10::str("mig_histogram: factor classes must be in [0, ", num_classes,
                  "), got values in [", mn, ", ", mx, "]");
}

// np.histogram's outer edges from the per-dimension min and max (float64 [D]):
// a constant column is widened to [x - 0.5, x + 0.5].
inline std::tuple<at::Tensor, at::Tensor> numpy_outer_edges(const at::Tensor& lo,
                                                            const at::Tensor& hi) {
  TORCH_CHECK(at::isfinite(lo).all().item<bool>() && at::isfinite(hi).all().item<bool>(),
              "mig_histogram: latents must be finite (found NaN or inf)");
  const at::Tensor same = lo == hi;
  at::Tensor first = at::where(same, lo - 0.5, lo).contiguous();
  at::Tensor last = at::where(same, hi + 0.5, hi).contiguous();
  TORCH_CHECK(at::isfinite(last - first).all().item<bool>(),
              "mig_histogram: a latent dimension's range max - min overflows float64");
  return {first, last};
}

}  // namespace vaebench
