// Per-element math of the fused reparameterized sample + skew-geometric
// Jensen-Shannon divergence to the standard normal prior, shared by the CPU and
// CUDA kernels (derivation, limits and partials: docs/gjs.md).
//
// Per dimension, q = N(mu, v) with v = exp(logvar), p = N(0, 1), skew a in
// [0, 1], b = 1 - a, and M_a the Gaussian proportional to q^a p^b:
//
//   d = a + b v,  lam = d / v (M_a's precision),  r = 1 / d,  vr = v / d (M_a's
//   variance),  s = a / d,  t = b v / d  (s + t = 1; M_a's mean is s mu)
//
//   plain: b KL(q||M_a) + a KL(p||M_a)
//        = (mu^2 (b^2 t + a^2 s / v) + d lam - 1 - b logvar - log lam) / 2
//   dual:  b KL(M_a||q) + a KL(M_a||p)
//        = (mu^2 r (b^2 t + a^2 s) + (b + a v) r - 1 - a logvar + log d) / 2
//
// Both are written so that the plain term at a = 0 and the dual's at a = 1
// evaluate, operation for operation, to reparam_kl.h's KL term: the same bits.
// No intermediate outgrows the value it feeds, so float overflows only where a
// true value does (the dual's a-partial, about 1 / v^2 at a = 0 and v^2 at
// a = 1, past |logvar| of about 44).
//
// T is the accumulation type: float for float/half/bfloat16 inputs, double for
// double inputs; eps is the float normal of the Philox stream.
#pragma once

#include <cmath>

#include "vaebench/common.h"
#include "vaebench/reparam_kl.h"

namespace vaebench {

// ---- log ------------------------------------------------------------------------

// log(x) for a normal, positive, finite x, from +, *, / and bit operations only:
// it vectorises on the CPU and is the same code on the GPU (no approximate
// instruction). x = m 2^e with m in [sqrt(1/2), sqrt(2)) (subtracting the bits
// of sqrt(1/2) borrows from the exponent exactly when the mantissa is below it),
// ln m = 2 atanh(s) with s = (m - 1) / (m + 1), |s| < 0.1716, by its odd series
// (float: to s^9, truncation < 1e-9; double: to s^21, < 3e-19), and ln 2 split
// so that e ln2_hi is exact.
VB_HD float log_positive(float x) {
  constexpr uint32_t kSqrtHalf = 0x3F3504F3u;
  const uint32_t t = float_bits(x) - kSqrtHalf;
  const float e = static_cast<float>(static_cast<int32_t>(t) >> 23);
  const float m = bits_float((t & 0x007FFFFFu) + kSqrtHalf);
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  float p = fma_f(s2, 2.0f / 9.0f, 2.0f / 7.0f);
  p = fma_f(s2, p, 2.0f / 5.0f);
  p = fma_f(s2, p, 2.0f / 3.0f);
  p = fma_f(s2, p, 2.0f);
  return fma_f(e, 0.693145751953125f, fma_f(e, 1.428606765330187e-06f, s * p));
}

VB_HD double log_positive(double x) {
  constexpr uint64_t kSqrtHalf = 0x3FE6A09E667F3BCDull;
  // The exponent through a bias, so the shift is a logical one (no 64-bit arithmetic shift on AVX2).
  const uint64_t t = double_bits(x) - kSqrtHalf + (uint64_t{1023} << 52);
  const double e = static_cast<double>(static_cast<int32_t>(t >> 52) - 1023);
  const double m = bits_double((t & ((uint64_t{1} << 52) - 1)) + kSqrtHalf);
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double p = 2.0 / 21.0;
  p = p * s2 + 2.0 / 19.0;
  p = p * s2 + 2.0 / 17.0;
  p = p * s2 + 2.0 / 15.0;
  p = p * s2 + 2.0 / 13.0;
  p = p * s2 + 2.0 / 11.0;
  p = p * s2 + 2.0 / 9.0;
  p = p * s2 + 2.0 / 7.0;
  p = p * s2 + 2.0 / 5.0;
  p = p * s2 + 2.0 / 3.0;
  p = p * s2 + 2.0;
  return e * 6.93147180369123816490e-01 + (e * 1.90821492927058770002e-10 + s * p);
}

// ---- the divergence term and its partials ----------------------------------------

template <typename T>
struct GjsParts {
  T v, a, b, d, lam, r, vr, s, t;
};

template <typename T>
VB_HD GjsParts<T> gjs_parts(T v, T a) {
  GjsParts<T> p;
  p.v = v;
  p.a = a;
  p.b = static_cast<T>(1) - a;
  p.d = a + p.b * v;
  p.lam = p.d / v;
  p.r = static_cast<T>(1) / p.d;
  p.vr = v / p.d;
  p.s = a * p.r;
  p.t = p.b * p.vr;
  return p;
}

// Plain: the mean's coefficient k = b^2 t + a^2 s / v (1 / v taken as lam r).
template <typename T>
VB_HD T gjs_plain_k(const GjsParts<T>& p, T& s_over_v) {
  s_over_v = p.s * (p.lam * p.r);
  return p.b * p.b * p.t + p.a * p.a * s_over_v;
}

// The dual's: h = r (b^2 t + a^2 s) = r P.
template <typename T>
VB_HD T gjs_dual_p(const GjsParts<T>& p) {
  return p.b * p.b * p.t + p.a * p.a * p.s;
}

// The divergence term of one element, v = exp(logvar).
template <bool Dual, typename T>
VB_HD T gjs_term(T mu, T logvar, T v, T a) {
  const GjsParts<T> p = gjs_parts(v, a);
  const T half = static_cast<T>(0.5), one = static_cast<T>(1);
  if constexpr (Dual) {
    const T h = p.r * gjs_dual_p(p);
    return half * (mu * mu * h + (p.b + p.a * p.v) * p.r - one - p.a * logvar + log_positive(p.d));
  } else {
    T sv;
    const T k = gjs_plain_k(p, sv);
    return half * (mu * mu * k + p.d * p.lam - one - p.b * logvar - log_positive(p.lam));
  }
}

template <typename T>
struct GjsGrad {
  T dmu, dlogvar, dalpha;
};

// The term's partials with respect to mu, logvar and a (docs/gjs.md).
template <bool Dual, typename T>
VB_HD GjsGrad<T> gjs_grad(T mu, T logvar, T v, T a) {
  const GjsParts<T> p = gjs_parts(v, a);
  const T half = static_cast<T>(0.5), one = static_cast<T>(1), two = static_cast<T>(2),
          three = static_cast<T>(3);
  const T mu2 = mu * mu, rv = p.r - p.vr;  // rv = (1 - v) / d
  GjsGrad<T> g;
  if constexpr (Dual) {
    const T P = gjs_dual_p(p);
    g.dmu = mu * (p.r * P);
    g.dlogvar = half * ((two * p.a - one) * p.vr * p.r + p.t - p.a + mu2 * (p.r * p.t) * (p.b * p.b - two * P));
    g.dalpha = half * (-(rv * (p.vr + p.r)) + rv - logvar +
                       mu2 * p.r * (three * (p.a * p.s - p.b * p.t) - two * rv * P));
  } else {
    T sv;
    const T k = gjs_plain_k(p, sv);
    g.dmu = mu * k;
    g.dlogvar = half * (two * p.b * p.d - p.d * p.lam - p.t + p.a + mu2 * (p.b * p.b * p.t - p.a * p.a * sv - p.t * k));
    g.dalpha = half * ((one - p.v) * (two * p.lam - p.r) + logvar + mu2 * (three * (p.a * sv - p.b * p.t) - rv * k));
  }
  return g;
}

// ---- fused with the sample ---------------------------------------------------------

// z (reparam_kl's, the same bits) and the divergence term.
template <bool Dual, typename T>
VB_HD ReparamForward<T> reparam_gjs_forward(T mu, T logvar, T a, float eps) {
  const T sd = exp_half_acc(logvar);
  ReparamForward<T> out;
  out.z = reparam_sample(mu, sd, eps);
  out.term = gjs_term<Dual>(mu, logvar, sd * sd, a);
  return out;
}

// From the upstream gradients gz (of z) and gd (of the row's divergence): dmu,
// dlogvar, and this element's share of a's gradient.
template <bool Dual, typename T>
VB_HD GjsGrad<T> reparam_gjs_backward(T gz, T gd, T mu, T logvar, T a, float eps) {
  const T sd = exp_half_acc(logvar);
  const GjsGrad<T> g = gjs_grad<Dual>(mu, logvar, sd * sd, a);
  GjsGrad<T> out;
  out.dmu = gz + gd * g.dmu;
  out.dlogvar = static_cast<T>(0.5) * (gz * static_cast<T>(eps) * sd) + gd * g.dlogvar;
  out.dalpha = gd * g.dalpha;
  return out;
}

}  // namespace vaebench
