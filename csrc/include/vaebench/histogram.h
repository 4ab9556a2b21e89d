// Equal-width binning of one latent dimension, exactly as numpy does it.
//
// MIG (disentanglement_lib) discretizes a latent column x with
//   edges = np.histogram(x, bins)[1];  index = np.digitize(x, edges[:-1])
// np.histogram takes lo = min(x), hi = max(x) (lo - 0.5, hi + 0.5 when equal)
// and np.linspace builds edge i as (i * step) + lo with step = (hi - lo) / bins,
// or as (i / bins) * (hi - lo) + lo when step underflows to zero. digitize
// counts the edges[0..bins) that are <= x, so the index is in 1..bins.
//
// All of it in float64 with explicit rounding steps, so the CPU and CUDA
// builds reproduce numpy's edges, and therefore its counts, bit for bit.
#pragma once

#include "vaebench/common.h"

namespace vaebench {

VB_HD double mul_d(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

VB_HD double add_d(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

VB_HD double div_d(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

// One latent dimension's binning: numpy's lo, its linspace step and the
// reciprocal used only to guess a bin (the guess is corrected against edges).
struct BinSpec {
  double lo;
  double range;  // hi - lo
  double step;   // range / bins, as linspace computes it
  double inv_step;
  int32_t bins;
};

// lo and hi are numpy's outer edges (already widened by 0.5 for a constant column).
VB_HD BinSpec make_bin_spec(double lo, double hi, int32_t bins) {
  BinSpec s;
  s.lo = lo;
  s.range = add_d(hi, -lo);
  s.step = div_d(s.range, static_cast<double>(bins));
  s.inv_step = div_d(1.0, s.step);
  s.bins = bins;
  return s;
}

// Edge i of np.linspace(lo, hi, bins + 1), for i < bins.
VB_HD double bin_edge(const BinSpec& s, int32_t i) {
  const double di = static_cast<double>(i);
  if (s.step == 0.0) {  // linspace's denormal branch: y /= div; y *= delta
    return add_d(mul_d(div_d(di, static_cast<double>(s.bins)), s.range), s.lo);
  }
  return add_d(mul_d(di, s.step), s.lo);
}

// np.digitize(x, edges[:-1]) - 1: the 0-based bin of x, in [0, bins).
// x must be finite and within [lo, hi]; the guess is off by at most one bin
// for ordinary ranges, and the loops keep it exact for any range.
VB_HD int32_t bin_index(const BinSpec& s, double x) {
  double g = mul_d(add_d(x, -s.lo), s.inv_step);
  const double top = static_cast<double>(s.bins - 1);
  if (!(g >= 0.0)) g = 0.0;  // also catches NaN (0 * inf)
  if (g > top) g = top;
  int32_t j = static_cast<int32_t>(g);
  while (j > 0 && bin_edge(s, j) > x) --j;
  while (j + 1 < s.bins && bin_edge(s, j + 1) <= x) ++j;
  return j;
}

}  // namespace vaebench
