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
  x = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);  // NaN passes through
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
  // 2^n as two normal powers of two so that n in [-150, 128] stays exact.
  const float nc = n < -150.0f ? -150.0f : (n > 128.0f ? 128.0f : n);
  const int32_t ni = nc == nc ? static_cast<int32_t>(nc) : 0;
  const int32_t n1 = ni >> 1;
  const int32_t n2 = ni - n1;
  const float s1 = bits_float(static_cast<uint32_t>(n1 + 127) << 23);
  const float s2 = bits_float(static_cast<uint32_t>(n2 + 127) << 23);
  return p * s1 * s2;
}

VB_HD float exp_acc(float x) { return exp_f(x); }
VB_HD double exp_acc(double x) { return ::exp(x); }

// The KL term from std = exp(logvar / 2); exp(logvar) is taken as std^2 so the
// fused forward needs one exponential per element.
template <typename T>
VB_HD T kl_term_from_std(T mu, T logvar, T sd) {
  return static_cast<T>(0.5) * (mu * mu + sd * sd - static_cast<T>(1) - logvar);
}

// Just the KL term (the CUDA forward reduces it per row without the noise).
template <typename T>
VB_HD T kl_term(T mu, T logvar) {
  return kl_term_from_std(mu, logvar, exp_acc(static_cast<T>(0.5) * logvar));
}

template <typename T>
struct ReparamForward {
  T z;
  T kl_term;
};

template <typename T>
VB_HD ReparamForward<T> reparam_kl_forward(T mu, T logvar, float eps) {
  const T sd = exp_acc(static_cast<T>(0.5) * logvar);
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
  const T sd = exp_acc(static_cast<T>(0.5) * logvar);
  const T half = static_cast<T>(0.5);
  ReparamBackward<T> out;
  out.dmu = gz + gk * mu;
  out.dlogvar = half * (gz * static_cast<T>(eps) * sd + gk * (sd * sd - static_cast<T>(1)));
  return out;
}

}  // namespace vaebench
