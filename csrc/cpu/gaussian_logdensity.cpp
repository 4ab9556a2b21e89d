// CPU kernels of the pairwise Gaussian log-density with log-sum-exp over the
// mixture (csrc/include/vaebench/gaussian_logdensity.h holds the math).
//
// Nothing of size [B, M, D] is ever formed. The components' tables (mu,
// h = -logvar/2, q = -exp(-logvar)/2) are laid out [D, M] so that the inner
// loops run over contiguous components i and vectorise.
//
// Forward: parallel over rows j of z, in blocks of kRowBlock rows that take each
// tile of kTile components in turn. For each row and tile: per dimension d the
// tile's terms x_jid go to a small buffer (and are added into the tile's row
// sums), then one exp per term is taken relative to
// the tile's maximum and the tile merges into the running (max, sum) of
// marginal[j, d]; the row sums then do the same for joint[j]. One exp per
// term, one per pair, a few per tile.
//
// Backward saves nothing but the inputs and the two outputs; it recomputes the
// terms and the softmax weights w_ji = exp(s_ji - joint_j) and
// v_jid = exp(x_jid - marginal_jd) in two passes: one parallel over rows j of z
// (grad_z, a sum over components), one parallel over components i (grad_mu and
// grad_logvar, sums over rows of z, with z's tables laid out [D, B]). Each
// output element is written by one thread in a fixed order: deterministic.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "gaussian_logdensity_checks.h"  // csrc/
#include "vaebench/gaussian_logdensity.h"

namespace vaebench {
namespace {

constexpr int64_t kTile = 256;
// Rows of z that take each tile of components in turn (forward): the tile's tables stay in
// cache for all of them, so a large mixture (Chen et al.'s MIG: 737,280 components, 88 MB of
// tables) streams from memory once per block instead of once per row. Each row still sees
// the tiles in the same order with the same operations: the results do not depend on it.
constexpr int64_t kRowBlock = 32;
// Pairs x dimensions per parallel task, at least.
constexpr int64_t kGrainWork = 1 << 16;

int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, kGrainWork / std::max<int64_t>(work_per_item, 1));
}

// [rows, cols] of scalar_t -> three [cols, rows] tables of A: the values, -v/2 and -exp(-v)/2
// (the last two only where `tables`); the rows' (components') tables of the forward and backward.
template <typename scalar_t, typename A>
void component_tables(const scalar_t* mu, const scalar_t* lv, int64_t rows, int64_t cols, A* muT, A* hT,
                      A* qT) {
  at::parallel_for(0, rows, grain_for(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const A l = static_cast<A>(lv[r * cols + c]);
        muT[c * rows + r] = static_cast<A>(mu[r * cols + c]);
        hT[c * rows + r] = half_neg_logvar(l);
        qT[c * rows + r] = half_neg_precision(l);
      }
  });
}

// Merges buf[0, n) (terms) into the running sum `a`, relative to the tile's maximum mx.
template <typename A>
inline void merge_tile(Lse<A>& a, const A* __restrict__ buf, int64_t n, A mx) {
  if (!(mx > neg_inf(A{}))) return;
  A t = 0;
#pragma omp simd reduction(+ : t)
  for (int64_t k = 0; k < n; ++k) t += exp_acc(buf[k] - mx);
  lse_merge(a, Lse<A>{mx, t});
}

template <typename scalar_t>
void forward_kernel(const scalar_t* z, const scalar_t* mu, const scalar_t* lv, scalar_t* joint, scalar_t* marg,
                    int64_t B, int64_t M, int64_t D) {
  using A = at::opmath_type<scalar_t>;
  std::vector<A> tables(static_cast<size_t>(3 * M * D));
  A* const muT = tables.data();
  A* const hT = muT + M * D;
  A* const qT = hT + M * D;
  component_tables(mu, lv, M, D, muT, hT, qT);
  const A c1 = static_cast<A>(kHalfLog2Pi), cD = static_cast<A>(kHalfLog2Pi * static_cast<double>(D));
  at::parallel_for(0, B, grain_for(M * D), [&](int64_t j0, int64_t j1) {
    std::vector<A> scratch(static_cast<size_t>(2 * kTile));
    A* __restrict__ buf = scratch.data();
    A* __restrict__ rowsum = buf + kTile;
    std::vector<Lse<A>> marg_acc(static_cast<size_t>(kRowBlock * D));
    std::vector<Lse<A>> joint_acc(static_cast<size_t>(kRowBlock));
    for (int64_t b0 = j0; b0 < j1; b0 += kRowBlock) {
      const int64_t b1 = std::min(j1, b0 + kRowBlock);
      std::fill(marg_acc.begin(), marg_acc.end(), lse_empty<A>());
      std::fill(joint_acc.begin(), joint_acc.end(), lse_empty<A>());
      for (int64_t i0 = 0; i0 < M; i0 += kTile) {
        const int64_t n = std::min(kTile, M - i0);
        for (int64_t j = b0; j < b1; ++j) {
          Lse<A>* const mj = marg_acc.data() + (j - b0) * D;
          std::fill(rowsum, rowsum + n, A(0));
          for (int64_t d = 0; d < D; ++d) {
            const A zd = static_cast<A>(z[j * D + d]);
            const A* __restrict__ m = muT + d * M + i0;
            const A* __restrict__ h = hT + d * M + i0;
            const A* __restrict__ q = qT + d * M + i0;
            A mx = neg_inf(A{});
#pragma omp simd reduction(max : mx)
            for (int64_t k = 0; k < n; ++k) {
              const A x = log_term(zd, m[k], h[k], q[k]);
              buf[k] = x;
              rowsum[k] += x;
              mx = max_acc(mx, x);
            }
            merge_tile(mj[d], buf, n, mx);
          }
          A mx = neg_inf(A{});
#pragma omp simd reduction(max : mx)
          for (int64_t k = 0; k < n; ++k) mx = max_acc(mx, rowsum[k]);
          merge_tile(joint_acc[j - b0], rowsum, n, mx);
        }
      }
      for (int64_t j = b0; j < b1; ++j) {
        joint[j] = static_cast<scalar_t>(lse_value(joint_acc[j - b0], cD));
        for (int64_t d = 0; d < D; ++d)
          marg[j * D + d] = static_cast<scalar_t>(lse_value(marg_acc[(j - b0) * D + d], c1));
      }
    }
  });
}

// grad_z[j, d] = sum_i (gj_j w_ji + gm_jd v_jid) 2 u_jid, parallel over rows j.
template <typename A>
void grad_z_pass(const A* zc, const A* muT, const A* hT, const A* qT, const A* jint, const A* mint, const A* gj,
                 const A* gm, bool has_gj, A* gz, int64_t B, int64_t M, int64_t D) {
  at::parallel_for(0, B, grain_for(M * D), [&](int64_t j0, int64_t j1) {
    std::vector<A> scratch(static_cast<size_t>(2 * kTile));
    A* __restrict__ w = scratch.data();
    A* __restrict__ rowsum = w + kTile;
    for (int64_t j = j0; j < j1; ++j) {
      A* __restrict__ out = gz + j * D;
      std::fill(out, out + D, A(0));
      const A gjj = has_gj ? gj[j] : A(0);
      for (int64_t i0 = 0; i0 < M; i0 += kTile) {
        const int64_t n = std::min(kTile, M - i0);
        if (gjj != A(0)) {
          std::fill(rowsum, rowsum + n, A(0));
          for (int64_t d = 0; d < D; ++d) {
            const A zd = zc[j * D + d];
            const A* __restrict__ m = muT + d * M + i0;
            const A* __restrict__ h = hT + d * M + i0;
            const A* __restrict__ q = qT + d * M + i0;
#pragma omp simd
            for (int64_t k = 0; k < n; ++k) rowsum[k] += log_term(zd, m[k], h[k], q[k]);
          }
          const A ref = jint[j];
#pragma omp simd
          for (int64_t k = 0; k < n; ++k) w[k] = gjj * exp_acc(rowsum[k] - ref);
        } else {
          std::fill(w, w + n, A(0));
        }
        for (int64_t d = 0; d < D; ++d) {
          const A zd = zc[j * D + d];
          const A g = gm[j * D + d], ref = mint[j * D + d];
          const A* __restrict__ m = muT + d * M + i0;
          const A* __restrict__ h = hT + d * M + i0;
          const A* __restrict__ q = qT + d * M + i0;
          A t = 0;
          if (g != A(0)) {
#pragma omp simd reduction(+ : t)
            for (int64_t k = 0; k < n; ++k) {
              const A diff = zd - m[k];
              const A u = diff * q[k];
              const A c = w[k] + g * exp_acc((h[k] + diff * u) - ref);
              t += c * u;
            }
          } else if (gjj != A(0)) {
#pragma omp simd reduction(+ : t)
            for (int64_t k = 0; k < n; ++k) t += w[k] * ((zd - m[k]) * q[k]);
          }
          out[d] += A(2) * t;
        }
      }
    }
  });
}

// grad_mu[i, d] = -sum_j c_jid 2 u_jid and grad_logvar[i, d] = sum_j c_jid (-1/2 - diff u_jid),
// c_jid = gj_j w_ji + gm_jd v_jid; parallel over components i, z's tables laid out [D, B].
template <typename A>
void grad_component_pass(const A* zT, const A* mu_c, const A* h_c, const A* q_c, const A* jint, const A* mintT,
                         const A* gj, const A* gmT, bool has_gj, bool has_gm, A* gmu, A* glv, int64_t B,
                         int64_t M, int64_t D) {
  at::parallel_for(0, M, grain_for(B * D), [&](int64_t i0, int64_t i1) {
    std::vector<A> scratch(static_cast<size_t>(2 * kTile));
    A* __restrict__ w = scratch.data();
    A* __restrict__ rowsum = w + kTile;
    for (int64_t i = i0; i < i1; ++i) {
      A* __restrict__ out_mu = gmu + i * D;
      A* __restrict__ out_lv = glv + i * D;
      std::fill(out_mu, out_mu + D, A(0));
      std::fill(out_lv, out_lv + D, A(0));
      for (int64_t j0 = 0; j0 < B; j0 += kTile) {
        const int64_t n = std::min(kTile, B - j0);
        if (has_gj) {
          std::fill(rowsum, rowsum + n, A(0));
          for (int64_t d = 0; d < D; ++d) {
            const A m = mu_c[i * D + d], h = h_c[i * D + d], q = q_c[i * D + d];
            const A* __restrict__ zd = zT + d * B + j0;
#pragma omp simd
            for (int64_t k = 0; k < n; ++k) rowsum[k] += log_term(zd[k], m, h, q);
          }
          const A* __restrict__ ref = jint + j0;
          const A* __restrict__ g = gj + j0;
#pragma omp simd
          for (int64_t k = 0; k < n; ++k) w[k] = g[k] * exp_acc(rowsum[k] - ref[k]);
        } else {
          std::fill(w, w + n, A(0));
        }
        for (int64_t d = 0; d < D; ++d) {
          const A m = mu_c[i * D + d], h = h_c[i * D + d], q = q_c[i * D + d];
          const A* __restrict__ zd = zT + d * B + j0;
          const A* __restrict__ g = gmT + d * B + j0;
          const A* __restrict__ ref = mintT + d * B + j0;
          A t_mu = 0, t_c = 0, t_cdu = 0;
          if (has_gm) {
#pragma omp simd reduction(+ : t_mu, t_c, t_cdu)
            for (int64_t k = 0; k < n; ++k) {
              const A diff = zd[k] - m;
              const A u = diff * q;
              const A c = w[k] + g[k] * exp_acc((h + diff * u) - ref[k]);
              t_mu += c * u;
              t_c += c;
              t_cdu += c * (diff * u);
            }
          } else {
#pragma omp simd reduction(+ : t_mu, t_c, t_cdu)
            for (int64_t k = 0; k < n; ++k) {
              const A diff = zd[k] - m;
              const A u = diff * q;
              t_mu += w[k] * u;
              t_c += w[k];
              t_cdu += w[k] * (diff * u);
            }
          }
          out_mu[d] -= A(2) * t_mu;
          out_lv[d] -= A(0.5) * t_c + t_cdu;
        }
      }
    }
  });
}

template <typename scalar_t>
void backward_kernel(const scalar_t* gj_in, const scalar_t* gm_in, const scalar_t* z, const scalar_t* mu,
                     const scalar_t* lv, const scalar_t* joint, const scalar_t* marg, scalar_t* gz_out,
                     scalar_t* gmu_out, scalar_t* glv_out, int64_t B, int64_t M, int64_t D) {
  using A = at::opmath_type<scalar_t>;
  const A c1 = static_cast<A>(kHalfLog2Pi), cD = static_cast<A>(kHalfLog2Pi * static_cast<double>(D));
  // Components [D, M] for the rows' pass, [M, D] for their own; rows likewise.
  std::vector<A> comp(static_cast<size_t>(6 * M * D));
  A *muT = comp.data(), *hT = muT + M * D, *qT = hT + M * D;
  A *mu_c = qT + M * D, *h_c = mu_c + M * D, *q_c = h_c + M * D;
  component_tables(mu, lv, M, D, muT, hT, qT);
  for (int64_t d = 0; d < D; ++d)
    for (int64_t i = 0; i < M; ++i) {
      mu_c[i * D + d] = muT[d * M + i];
      h_c[i * D + d] = hT[d * M + i];
      q_c[i * D + d] = qT[d * M + i];
    }
  // Rows: z, the reference log-sums (outputs plus their constants) and the upstream gradients,
  // row-major [B, D] and transposed [D, B].
  std::vector<A> rows(static_cast<size_t>(6 * B * D + 2 * B));
  A *zc = rows.data(), *zT = zc + B * D, *mint = zT + B * D, *mintT = mint + B * D;
  A *gm = mintT + B * D, *gmT = gm + B * D, *jint = gmT + B * D, *gj = jint + B;
  bool has_gj = false, has_gm = false;
  for (int64_t j = 0; j < B; ++j) {
    jint[j] = static_cast<A>(joint[j]) + cD;
    gj[j] = static_cast<A>(gj_in[j]);
    has_gj |= gj[j] != A(0);
    for (int64_t d = 0; d < D; ++d) {
      const int64_t e = j * D + d, t = d * B + j;
      zc[e] = zT[t] = static_cast<A>(z[e]);
      mint[e] = mintT[t] = static_cast<A>(marg[e]) + c1;
      gm[e] = gmT[t] = static_cast<A>(gm_in[e]);
      has_gm |= gm[e] != A(0);
    }
  }
  std::vector<A> grads(static_cast<size_t>(B * D + 2 * M * D));
  A *gz = grads.data(), *gmu = gz + B * D, *glv = gmu + M * D;
  grad_z_pass(zc, muT, hT, qT, jint, mint, gj, gm, has_gj, gz, B, M, D);
  grad_component_pass(zT, mu_c, h_c, q_c, jint, mintT, gj, gmT, has_gj, has_gm, gmu, glv, B, M, D);
  for (int64_t e = 0; e < B * D; ++e) gz_out[e] = static_cast<scalar_t>(gz[e]);
  for (int64_t e = 0; e < M * D; ++e) {
    gmu_out[e] = static_cast<scalar_t>(gmu[e]);
    glv_out[e] = static_cast<scalar_t>(glv[e]);
  }
}

std::tuple<at::Tensor, at::Tensor> gaussian_logdensity_lse_cpu(const at::Tensor& z_in, const at::Tensor& mu_in,
                                                              const at::Tensor& logvar_in) {
  check_logdensity_inputs(z_in, mu_in, logvar_in);
  const at::Tensor z = z_in.contiguous(), mu = mu_in.contiguous(), logvar = logvar_in.contiguous();
  const int64_t B = z.size(0), D = z.size(1), M = mu.size(0);
  at::Tensor joint = at::empty({B}, z.options());
  at::Tensor marg = at::empty({B, D}, z.options());
  if (B == 0) return {joint, marg};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "gaussian_logdensity_lse_cpu", [&] {
    forward_kernel<scalar_t>(z.const_data_ptr<scalar_t>(), mu.const_data_ptr<scalar_t>(),
                             logvar.const_data_ptr<scalar_t>(), joint.mutable_data_ptr<scalar_t>(),
                             marg.mutable_data_ptr<scalar_t>(), B, M, D);
  });
  return {joint, marg};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> gaussian_logdensity_lse_backward_cpu(
    const at::Tensor& grad_joint, const at::Tensor& grad_marginal, const at::Tensor& z_in, const at::Tensor& mu_in,
    const at::Tensor& logvar_in, const at::Tensor& joint, const at::Tensor& marginal) {
  check_logdensity_inputs(z_in, mu_in, logvar_in);
  check_logdensity_backward(grad_joint, grad_marginal, z_in, joint, marginal);
  const at::Tensor z = z_in.contiguous(), mu = mu_in.contiguous(), logvar = logvar_in.contiguous();
  const at::Tensor gj = grad_joint.contiguous(), gm = grad_marginal.contiguous();
  const at::Tensor jo = joint.contiguous(), ma = marginal.contiguous();
  const int64_t B = z.size(0), D = z.size(1), M = mu.size(0);
  at::Tensor gz = at::empty_like(z), gmu = at::empty_like(mu), glv = at::empty_like(mu);
  if (B == 0 || M == 0 || D == 0) {
    gz.zero_(), gmu.zero_(), glv.zero_();
    return {gz, gmu, glv};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "gaussian_logdensity_lse_backward_cpu",
                                  [&] {
                                    backward_kernel<scalar_t>(
                                        gj.const_data_ptr<scalar_t>(), gm.const_data_ptr<scalar_t>(),
                                        z.const_data_ptr<scalar_t>(), mu.const_data_ptr<scalar_t>(),
                                        logvar.const_data_ptr<scalar_t>(), jo.const_data_ptr<scalar_t>(),
                                        ma.const_data_ptr<scalar_t>(), gz.mutable_data_ptr<scalar_t>(),
                                        gmu.mutable_data_ptr<scalar_t>(), glv.mutable_data_ptr<scalar_t>(), B, M, D);
                                  });
  return {gz, gmu, glv};
}

}  // namespace

TORCH_LIBRARY_IMPL(vaebench, CPU, m) {
  m.impl("gaussian_logdensity_lse", &gaussian_logdensity_lse_cpu);
  m.impl("gaussian_logdensity_lse_backward", &gaussian_logdensity_lse_backward_cpu);
}

}  // namespace vaebench
