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

// exp in float from +, *, FMA and bit tricks only: it vectorizes on the CPU
// and is the same code on the GPU. Range reduction x = n ln 2 + r, |r| <= ln2/2,
// then Taylor to r^7 (truncation error < 1e-8 relative).
VB_HD float exp_f(float x) {
  // Clamp to [-104, 89]; NaN passes through (both compares are false). Both
  // tests read the unclamped x so the compiler keeps two independent selects
  // instead of threading one through the other.
  const float x_hi = 89.0f < x ? 89.0f : x;
  x = -104.0f > x ? -104.0f : x_hi;
  const float n = rint_f(x * 1.44269504088896341f);
  float r = fma_f(n, -0.693145751953125f, x);
  r = fma_f(n, -1.428606765330187e-06f, r);
  float p = fma_f(r, 1.0f / 5040.0f, 1.0f / 720.0f);
  p = fma_f(r, p, 1.0f / 120.0f);
  p = fma_f(r, p, 1.0f / 24.0f);
  p = fma_f(r, p, 1.0f / 6.0f);
  p = fma_f(r, p, 0.5f);
  p = fma_f(r, p, 1.0f);
  p = fma_f(r, p, 1.0f);
  // 2^n, n in [-150, 128], as two normal powers of two 2^n1 * 2^n2 with
  // n1 = floor(n / 2): p * 2^n1 is exact, so the product rounds once. The
  // integers come from the bits of n + 1.5 * 2^23 + 254 (= 0x4B4000FE + n)
  // instead of a float-to-int conversion: (t >> 1) << 23 == (n1 + 127) << 23
  // and (t << 23) - that == (n - n1 + 127) << 23. For NaN x the scales are
  // never NaN (low 23 bits zero), so x's quieted NaN comes out.
  const uint32_t t = float_bits(n + (0x1.8p23f + 254.0f));
  const uint32_t b1 = (t >> 1) << 23;
  const uint32_t b2 = (t << 23) - b1;
  return p * bits_float(b1) * bits_float(b2);
}

// exp(v / 2), bit for bit exp_f(0.5f * v), with the halving folded in instead
// of spent as a multiply: clamp v to [-208, 178], n = rint(v * (log2(e) / 2)),
// R = v - n (2 ln 2) = 2 r, and the series in R with its k-th constant scaled by
// 2^k gives 2^7 p. Each step is exactly the original one times a power of two
// (no underflow: r is 0 or >= 2^-25 when n != 0, and the series is exactly 1 for
// tiny v either way), and the 2^-7 goes into the exponent bias (247 = 254 - 7).
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

VB_HD float exp_acc(float x) { return exp_f(x); }
VB_HD double exp_acc(double x) { return ::exp(x); }

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

template <typename T>
struct ReparamForward {
  T z;
  T kl_term;
};

template <typename T>
VB_HD ReparamForward<T> reparam_kl_forward(T mu, T logvar, float eps) {
  const T sd = exp_half_acc(logvar);
  ReparamForward<T> out;
  out.z = mu + sd * static_cast<T>(eps);
  out.kl_term = kl_term_from_std(mu, logvar, sd);
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
