// Per-element math of the pairwise Gaussian log-density with log-sum-exp over
// the mixture components, shared by the CPU and CUDA kernels.
//
// For a code z[j, :] and the diagonal Gaussians N(mu[i, :], diag exp(logvar[i, :])):
//
//   log N(z_jd; mu_id, exp(lv_id)) = -log(2 pi) / 2 + x_jid,
//   x_jid = h_id + diff * u,  diff = z_jd - mu_id,  u = diff * q_id,
//   h_id = -lv_id / 2,  q_id = -exp(-lv_id) / 2.
//
//   joint[j]      = logsumexp_i sum_d x_jid - D log(2 pi) / 2
//   marginal[j,d] = logsumexp_i x_jid       -   log(2 pi) / 2
//
// The kernels work with x (no constant) and add the constant once per output.
// Derivatives of x_jid: dz = 2u, dmu = -2u, dlogvar = -1/2 - diff * u.
// Backward weights: w_ji = exp(sum_d x_jid - joint_j - D log(2 pi) / 2) for the
// joint, v_jid = exp(x_jid - marginal_jd - log(2 pi) / 2) for the marginal.
//
// T is the accumulation type: float for float/half/bfloat16 inputs, double for
// double inputs.
#pragma once

#include <cmath>

#include "vaebench/common.h"
#include "vaebench/reparam_kl.h"  // exp_half_f

namespace vaebench {

constexpr double kHalfLog2Pi = 0.918938533204672741780329736406;  // log(2 pi) / 2

// exp(x): the vectorisable float exponential of reparam_kl.h at 2x (exact
// doubling), so the same code runs on the CPU and the GPU (no ex2.approx).
VB_HD float exp_acc(float x) { return exp_half_f(x + x); }
VB_HD double exp_acc(double x) { return ::exp(x); }

// log(s) for a normal positive finite s (the sums here are >= 1: the largest
// term is exp(0)), in double, once per output. CUDA's log divides through an
// approximate reciprocal; this uses only exp, +, * (no division): a start
// from the exponent bits and a cubic in the mantissa (error < 0.15), then four
// Newton steps on exp(y) = s, y <- y - 1 + s exp(-y) (error e -> e^2 / 2).
VB_HD double log_pos(double s) {
  const uint64_t b = double_bits(s);
  const double e = static_cast<double>(static_cast<int64_t>((b >> 52) & 0x7ff) - 1023);
  const double f = bits_double((b & ((uint64_t{1} << 52) - 1)) | (uint64_t{1023} << 52)) - 1.0;  // [0, 1)
  double y = e * 0.693147180559945309417 + f * (1.0 - f * (0.5 - f * (1.0 / 3.0)));
  for (int k = 0; k < 4; ++k) y = (y - 1.0) + s * ::exp(-y);
  return y;
}

VB_HD float log_acc(float s) { return static_cast<float>(log_pos(static_cast<double>(s))); }
VB_HD double log_acc(double s) { return log_pos(s); }

VB_HD float neg_inf(float) { return -HUGE_VALF; }
VB_HD double neg_inf(double) { return -HUGE_VAL; }

template <typename T>
VB_HD T max_acc(T a, T b) { return a < b ? b : a; }

// The per-component tables, from logvar.
template <typename T>
VB_HD T half_neg_logvar(T lv) { return static_cast<T>(-0.5) * lv; }
template <typename T>
VB_HD T half_neg_precision(T lv) { return static_cast<T>(-0.5) * exp_acc(-lv); }

// x_jid without the constant; every kernel computes it in exactly this order.
template <typename T>
VB_HD T log_term(T z, T mu, T h, T q) {
  const T diff = z - mu;
  return h + diff * (diff * q);
}

// A running log-sum-exp: the sum is s * exp(m). Empty: m = -inf, s = 0.
template <typename T>
struct Lse {
  T m;
  T s;
};

template <typename T>
VB_HD Lse<T> lse_empty() { return Lse<T>{neg_inf(T{}), static_cast<T>(0)}; }

// Adds exp(x), one exponential: whichever of x and m is larger becomes the
// reference. -inf terms add nothing.
template <typename T>
VB_HD void lse_push(Lse<T>& a, T x) {
  if (!(x > neg_inf(T{}))) return;
  if (x > a.m) {
    a.s = a.s * exp_acc(a.m - x) + static_cast<T>(1);
    a.m = x;
  } else {
    a.s += exp_acc(x - a.m);
  }
}

// Adds another running sum (a tile's, or a split's partial): b.s * exp(b.m).
template <typename T>
VB_HD void lse_merge(Lse<T>& a, const Lse<T>& b) {
  if (!(b.m > neg_inf(T{}))) return;
  if (b.m > a.m) {
    a.s = a.s * exp_acc(a.m - b.m) + b.s;
    a.m = b.m;
  } else {
    a.s += b.s * exp_acc(b.m - a.m);
  }
}

// log(sum) (-inf for an empty sum) minus `constant`.
template <typename T>
VB_HD T lse_value(const Lse<T>& a, T constant) {
  if (!(a.s > static_cast<T>(0))) return neg_inf(T{});
  return a.m + log_acc(a.s) - constant;
}

}  // namespace vaebench
