// Per-element math of the fused reparameterized sample and analytic KL
// (REFERENCE.md section 1), shared by the CPU and CUDA kernels.
//
//   std = exp(logvar / 2),  z = mu + std * eps
//   kl_b = sum_d 0.5 * (mu^2 + exp(logvar) - 1 - logvar)
//   dmu     = gz + gk * mu
//   dlogvar = gz * eps * std / 2 + gk * (exp(logvar) - 1) / 2
//
// T is the accumulation type: float for float/half/bfloat16 inputs, double for
// double inputs. eps is always the float normal of the Philox stream.
#pragma once

#include <cmath>

#include "vaebench/common.h"

namespace vaebench {

// exp(v / 2) in float from +, *, FMA and bit tricks only: it vectorizes on the
// CPU and is the same code on the GPU. It equals, bit for bit, the textbook
// exp(x) at x = 0.5f * v (clamp x to [-104, 89], n = rint(x log2 e),
// r = x - n ln 2 with ln 2 split in two, Taylor to r^7, truncation error < 1e-8
// relative, times 2^n) with the halving folded in instead of spent as a
// multiply: v is clamped to [-208, 178], R = v - n (2 ln 2) = 2 r, and the
// series in R with its k-th constant scaled by 2^k gives 2^7 p. Each step is
// exactly the original one times a power of two (no underflow: r is 0 or
// >= 2^-25 when n != 0, and the series is exactly 1 for tiny v either way).
// NaN passes the clamps (both compares are false); both read the unclamped v
// so the compiler keeps two independent selects.
//
// 2^n, n in [-150, 128], is applied as two normal powers of two 2^n1 * 2^n2,
// n1 = floor(n / 2), so p * 2^n1 is exact and the product rounds once. The
// integers come from the bits of n + 1.5 * 2^23 + bias rather than a
// float-to-int conversion: (t >> 1) << 23 is 2^n1's bits and (t << 23) minus
// that is 2^n2's; the bias 247 = 254 - 7 also removes the 2^7. For NaN v the
// scales are never NaN (low 23 bits zero), so v's quieted NaN comes out.
VB_HD float exp_half_f(float v) {
  const float v_hi = 178.0f < v ? 178.0f : v;
  v = -208.0f > v ? -208.0f : v_hi;
  const float n = rint_f(v * (0.5f * 1.44269504088896341f));
  float r = fma_f(n, -2.0f * 0.693145751953125f, v);
  r = fma_f(n, -2.0f * 1.428606765330187e-06f, r);
  float p = fma_f(r, 1.0f / 5040.0f, 2.0f * (1.0f / 720.0f));
  p = fma_f(r, p, 4.0f * (1.0f / 120.0f));
  p = fma_f(r, p, 8.0f * (1.0f / 24.0f));
  p = fma_f(r, p, 16.0f * (1.0f / 6.0f));
  p = fma_f(r, p, 32.0f * 0.5f);
  p = fma_f(r, p, 64.0f);
  p = fma_f(r, p, 128.0f);
  const uint32_t t = float_bits(n + (0x1.8p23f + 247.0f));
  const uint32_t b1 = (t >> 1) << 23;
  const uint32_t b2 = (t << 23) - b1;
  return p * bits_float(b1) * bits_float(b2);
}

// exp(logvar / 2): the standard deviation.
VB_HD float exp_half_acc(float logvar) { return exp_half_f(logvar); }
VB_HD double exp_half_acc(double logvar) { return ::exp(0.5 * logvar); }

// The KL term from std = exp(logvar / 2); exp(logvar) is taken as std^2 so the
// fused forward needs one exponential per element.
template <typename T>
VB_HD T kl_term_from_std(T mu, T logvar, T sd) {
  return static_cast<T>(0.5) * (mu * mu + sd * sd - static_cast<T>(1) - logvar);
}

// Just the KL term (the CUDA forward reduces it per row without the noise).
template <typename T>
VB_HD T kl_term(T mu, T logvar) {
  return kl_term_from_std(mu, logvar, exp_half_acc(logvar));
}

// The reparameterized sample from std = exp(logvar / 2): every fused op that
// draws z (reparam_kl, reparam_gjs) forms it here, so their z are the same bits.
template <typename T>
VB_HD T reparam_sample(T mu, T sd, float eps) {
  return mu + sd * static_cast<T>(eps);
}

// One element of a fused forward: the sample and the element's term of the
// per-row sum (the KL term here, gjs.h's divergence term there).
template <typename T>
struct ReparamForward {
  T z;
  T term;
};

template <typename T>
VB_HD ReparamForward<T> reparam_kl_forward(T mu, T logvar, float eps) {
  const T sd = exp_half_acc(logvar);
  ReparamForward<T> out;
  out.z = reparam_sample(mu, sd, eps);
  out.term = kl_term_from_std(mu, logvar, sd);
  return out;
}

template <typename T>
struct ReparamBackward {
  T dmu;
  T dlogvar;
};

template <typename T>
VB_HD ReparamBackward<T> reparam_kl_backward(T gz, T gk, T mu, T logvar, float eps) {
  const T sd = exp_half_acc(logvar);
  const T half = static_cast<T>(0.5);
  ReparamBackward<T> out;
  out.dmu = gz + gk * mu;
  out.dlogvar = half * (gz * static_cast<T>(eps) * sd + gk * (sd * sd - static_cast<T>(1)));
  return out;
}

}  // namespace vaebench
