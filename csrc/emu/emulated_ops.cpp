// Python entry points of the test-only emulated build: the CUDA launchers of
// csrc/cuda, run by the CPU emulator on CPU tensors. Outputs are arguments so
// that tests choose their memory (guard regions, misaligned starts).
#include <torch/extension.h>

#include "cuda/gaussian_logdensity.h"
#include "cuda/mig_histogram.h"
#include "cuda/reparam_gjs.h"
#include "cuda/reparam_kl.h"
#include "cuda/torch_dtype.h"
#include "emu/emulator.h"
#include "emu/selftest_kernels.h"
#include "gaussian_logdensity_checks.h"
#include "mig_histogram_checks.h"
#include "reparam_gjs_checks.h"
#include "reparam_kl_checks.h"

namespace vaebench {
namespace {

void check_out(const at::Tensor& out, const char* name, at::IntArrayRef shape, at::ScalarType dtype) {
  TORCH_CHECK(out.device().is_cpu(), "emulated op: ", name, " must be a CPU tensor");
  TORCH_CHECK(out.is_contiguous(), "emulated op: ", name, " must be contiguous");
  TORCH_CHECK(out.sizes() == shape && out.scalar_type() == dtype, "emulated op: ", name, " must be ", shape,
              " of ", dtype, ", got ", out.sizes(), " of ", out.scalar_type());
}

void check_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), "emulated op: ", name, " must be a contiguous CPU tensor");
}

void check_launch() {
  const cudaError_t e = cudaGetLastError();
  TORCH_CHECK(e == cudaSuccess, "emulated launch failed: ", cudaGetErrorString(e));
}

void reparam_kl_forward(const at::Tensor& mu, const at::Tensor& logvar, const at::Tensor& z, const at::Tensor& kl,
                        int64_t seed, int64_t offset) {
  check_reparam_inputs(mu, logvar, offset);
  check_cpu(mu, "mu");
  check_cpu(logvar, "logvar");
  check_out(z, "z", mu.sizes(), mu.scalar_type());
  check_out(kl, "kl", {mu.size(0)}, mu.scalar_type());
  cuda::reparam_kl_forward(to_cuda_dtype(mu.scalar_type(), "emulated reparam_kl"), mu.const_data_ptr(), logvar.const_data_ptr(),
                           z.mutable_data_ptr(), kl.mutable_data_ptr(), mu.size(0), mu.size(1),
                           static_cast<uint64_t>(seed), static_cast<uint64_t>(offset), nullptr);
  check_launch();
}

void reparam_kl_backward(const at::Tensor& grad_z, const at::Tensor& grad_kl, const at::Tensor& mu,
                         const at::Tensor& logvar, const at::Tensor& dmu, const at::Tensor& dlogvar, int64_t seed,
                         int64_t offset) {
  check_reparam_inputs(mu, logvar, offset);
  check_reparam_grads(grad_z, grad_kl, mu);
  for (const auto& [t, name] : {std::pair{&grad_z, "grad_z"}, {&grad_kl, "grad_kl"}, {&mu, "mu"}, {&logvar, "logvar"}})
    check_cpu(*t, name);
  check_out(dmu, "dmu", mu.sizes(), mu.scalar_type());
  check_out(dlogvar, "dlogvar", mu.sizes(), mu.scalar_type());
  cuda::reparam_kl_backward(to_cuda_dtype(mu.scalar_type(), "emulated reparam_kl"), grad_z.const_data_ptr(), grad_kl.const_data_ptr(),
                            mu.const_data_ptr(), logvar.const_data_ptr(), dmu.mutable_data_ptr(),
                            dlogvar.mutable_data_ptr(), mu.size(0), mu.size(1), static_cast<uint64_t>(seed),
                            static_cast<uint64_t>(offset), nullptr);
  check_launch();
}

void philox_normal(const at::Tensor& out, int64_t seed, int64_t offset) {
  check_philox_out(out, offset);
  check_cpu(out, "out");
  cuda::philox_normal(out.mutable_data_ptr<float>(), out.numel(), static_cast<uint64_t>(seed),
                      static_cast<uint64_t>(offset), nullptr);
  check_launch();
}

void reparam_gjs_forward(const at::Tensor& mu, const at::Tensor& logvar, const at::Tensor& alpha, bool dual,
                         const at::Tensor& z, const at::Tensor& div, int64_t seed, int64_t offset) {
  check_reparam_inputs(mu, logvar, offset, "emulated reparam_gjs");
  const double a = checked_gjs_alpha(alpha, mu, "emulated reparam_gjs");
  check_cpu(mu, "mu");
  check_cpu(logvar, "logvar");
  check_out(z, "z", mu.sizes(), mu.scalar_type());
  check_out(div, "div", {mu.size(0)}, mu.scalar_type());
  cuda::reparam_gjs_forward(to_cuda_dtype(mu.scalar_type(), "emulated reparam_gjs"), dual, a, mu.const_data_ptr(),
                            logvar.const_data_ptr(), z.mutable_data_ptr(), div.mutable_data_ptr(), mu.size(0),
                            mu.size(1), static_cast<uint64_t>(seed), static_cast<uint64_t>(offset), nullptr);
  check_launch();
}

// alpha_rows: [B] of the accumulation type (float32; float64 for float64 inputs), as the glue
// allocates it; the caller sums it as the glue does.
void reparam_gjs_backward(const at::Tensor& grad_z, const at::Tensor& grad_div, const at::Tensor& mu,
                          const at::Tensor& logvar, const at::Tensor& alpha, bool dual, const at::Tensor& dmu,
                          const at::Tensor& dlogvar, const at::Tensor& alpha_rows, int64_t seed, int64_t offset) {
  check_reparam_inputs(mu, logvar, offset, "emulated reparam_gjs_backward");
  check_reparam_grads(grad_z, grad_div, mu, "emulated reparam_gjs_backward", "grad_div");
  const double a = checked_gjs_alpha(alpha, mu, "emulated reparam_gjs_backward");
  for (const auto& [t, name] : {std::pair{&grad_z, "grad_z"}, {&grad_div, "grad_div"}, {&mu, "mu"}, {&logvar, "logvar"}})
    check_cpu(*t, name);
  check_out(dmu, "dmu", mu.sizes(), mu.scalar_type());
  check_out(dlogvar, "dlogvar", mu.sizes(), mu.scalar_type());
  check_out(alpha_rows, "alpha_rows", {mu.size(0)}, mu.scalar_type() == at::kDouble ? at::kDouble : at::kFloat);
  cuda::reparam_gjs_backward(to_cuda_dtype(mu.scalar_type(), "emulated reparam_gjs"), dual, a, grad_z.const_data_ptr(),
                             grad_div.const_data_ptr(), mu.const_data_ptr(), logvar.const_data_ptr(),
                             dmu.mutable_data_ptr(), dlogvar.mutable_data_ptr(), alpha_rows.mutable_data_ptr(),
                             mu.size(0), mu.size(1), static_cast<uint64_t>(seed), static_cast<uint64_t>(offset),
                             nullptr);
  check_launch();
}

// The workspace as the glue allocates it (csrc/cuda/gaussian_logdensity_glue.cpp), in host memory.
at::Tensor logdensity_workspace(const at::Tensor& z, int64_t M, bool backward) {
  const size_t bytes = cuda::gaussian_logdensity_workspace_bytes(to_cuda_dtype(z.scalar_type(), "emulated gaussian_logdensity_lse"),
                                                                 z.size(0), M, z.size(1), backward);
  return at::empty({static_cast<int64_t>(bytes)}, z.options().dtype(at::kByte));
}

void gaussian_logdensity_forward(const at::Tensor& z, const at::Tensor& mu, const at::Tensor& logvar,
                                 const at::Tensor& joint, const at::Tensor& marginal) {
  check_logdensity_inputs(z, mu, logvar);
  for (const auto& [t, name] : {std::pair{&z, "z"}, {&mu, "mu"}, {&logvar, "logvar"}}) check_cpu(*t, name);
  check_out(joint, "joint", {z.size(0)}, z.scalar_type());
  check_out(marginal, "marginal", z.sizes(), z.scalar_type());
  if (z.size(0) == 0) return;
  at::Tensor ws = logdensity_workspace(z, mu.size(0), false);
  cuda::gaussian_logdensity_forward(to_cuda_dtype(z.scalar_type(), "emulated gaussian_logdensity_lse"), z.const_data_ptr(),
                                    mu.const_data_ptr(), logvar.const_data_ptr(), joint.mutable_data_ptr(),
                                    marginal.mutable_data_ptr(), z.size(0), mu.size(0), z.size(1),
                                    ws.mutable_data_ptr(), nullptr);
  check_launch();
}

void gaussian_logdensity_backward(const at::Tensor& grad_joint, const at::Tensor& grad_marginal, const at::Tensor& z,
                                  const at::Tensor& mu, const at::Tensor& logvar, const at::Tensor& joint,
                                  const at::Tensor& marginal, const at::Tensor& grad_z, const at::Tensor& grad_mu,
                                  const at::Tensor& grad_logvar) {
  check_logdensity_inputs(z, mu, logvar);
  check_logdensity_backward(grad_joint, grad_marginal, z, joint, marginal);
  for (const auto& [t, name] : {std::pair{&grad_joint, "grad_joint"}, {&grad_marginal, "grad_marginal"}, {&z, "z"},
                                {&mu, "mu"}, {&logvar, "logvar"}, {&joint, "joint"}, {&marginal, "marginal"}})
    check_cpu(*t, name);
  check_out(grad_z, "grad_z", z.sizes(), z.scalar_type());
  check_out(grad_mu, "grad_mu", mu.sizes(), z.scalar_type());
  check_out(grad_logvar, "grad_logvar", mu.sizes(), z.scalar_type());
  at::Tensor ws = logdensity_workspace(z, mu.size(0), true);
  cuda::gaussian_logdensity_backward(to_cuda_dtype(z.scalar_type(), "emulated gaussian_logdensity_lse"),
                                     grad_joint.const_data_ptr(), grad_marginal.const_data_ptr(), z.const_data_ptr(),
                                     mu.const_data_ptr(), logvar.const_data_ptr(), joint.const_data_ptr(),
                                     marginal.const_data_ptr(), grad_z.mutable_data_ptr(), grad_mu.mutable_data_ptr(),
                                     grad_logvar.mutable_data_ptr(), z.size(0), mu.size(0), z.size(1),
                                     ws.mutable_data_ptr(), nullptr);
  check_launch();
}

// As the CUDA glue does it (csrc/cuda/mig_histogram_glue.cpp), on CPU tensors.
at::Tensor mig_histogram(const at::Tensor& latents_in, const at::Tensor& factors_in, int64_t num_bins,
                         int64_t num_classes) {
  check_cpu(latents_in, "latents");
  at::Tensor latents, factors;
  std::tie(latents, factors) = prepare_mig_histogram(latents_in, factors_in, num_bins, num_classes);
  const int64_t N = latents.size(0), D = latents.size(1), K = factors.size(1);
  at::Tensor counts = at::zeros({D, K, num_bins, num_classes}, factors.options());
  if (D == 0 || K == 0) return counts;
  const auto [mn, mx] = at::aminmax(factors);
  TORCH_CHECK(mn.item<int64_t>() >= 0 && mx.item<int64_t>() < num_classes,
              factor_range_message(num_classes, mn.item<int64_t>(), mx.item<int64_t>()));
  auto [lo, hi] = at::aminmax(latents, /*dim=*/0);
  const auto [first, last] = numpy_outer_edges(lo.to(at::kDouble), hi.to(at::kDouble));
  auto* out = reinterpret_cast<unsigned long long*>(counts.mutable_data_ptr<int64_t>());
  const auto bins = static_cast<int32_t>(num_bins);
  const int64_t* f = factors.const_data_ptr<int64_t>();
  const cudaError_t e =
      latents.scalar_type() == at::kDouble
          ? launch_mig_histogram(latents.const_data_ptr<double>(), f, N, D, K, first.const_data_ptr<double>(),
                                 last.const_data_ptr<double>(), bins, num_classes, out, nullptr)
          : launch_mig_histogram(latents.const_data_ptr<float>(), f, N, D, K, first.const_data_ptr<double>(),
                                 last.const_data_ptr<double>(), bins, num_classes, out, nullptr);
  TORCH_CHECK(e == cudaSuccess, "emulated launch failed: ", cudaGetErrorString(e));
  return counts;
}

void set_options(int64_t max_grid_x, int64_t max_grid_y, int64_t resident_blocks, int64_t order_seed) {
  TORCH_CHECK(max_grid_x >= 0 && max_grid_y >= 0, "grid caps must be >= 0 (0: none)");
  TORCH_CHECK(resident_blocks >= 1, "resident_blocks must be >= 1, got ", resident_blocks);
  emu::Options o;
  o.max_grid_x = static_cast<unsigned>(max_grid_x);
  o.max_grid_y = static_cast<unsigned>(max_grid_y);
  o.resident_blocks = static_cast<int>(resident_blocks);
  o.order_seed = static_cast<uint64_t>(order_seed);
  emu::set_options(o);
}

// (grid x, y, z, block x, y, z, dynamic shared bytes) of each launch since the last clear.
std::vector<std::vector<int64_t>> launches() {
  std::vector<std::vector<int64_t>> out;
  for (const auto& r : emu::launches())
    out.push_back({r.grid.x, r.grid.y, r.grid.z, r.block.x, r.block.y, r.block.z,
                   static_cast<int64_t>(r.dynamic_smem)});
  return out;
}

}  // namespace
}  // namespace vaebench

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "vaebench's CUDA launchers run by the CPU emulator (tests only)";
  m.def("reparam_kl_forward", &vaebench::reparam_kl_forward);
  m.def("reparam_kl_backward", &vaebench::reparam_kl_backward);
  m.def("philox_normal", &vaebench::philox_normal);
  m.def("reparam_gjs_forward", &vaebench::reparam_gjs_forward);
  m.def("reparam_gjs_backward", &vaebench::reparam_gjs_backward);
  m.def("mig_histogram", &vaebench::mig_histogram);
  m.def("gaussian_logdensity_forward", &vaebench::gaussian_logdensity_forward);
  m.def("gaussian_logdensity_backward", &vaebench::gaussian_logdensity_backward);
  m.def("set_options", &vaebench::set_options, py::arg("max_grid_x") = 0, py::arg("max_grid_y") = 0,
        py::arg("resident_blocks") = 2, py::arg("order_seed") = 1);
  m.def("launches", &vaebench::launches);
  m.def("clear_launches", &vaebench::emu::clear_launches);
  namespace st = vaebench::emu_selftest;
  auto t = m.def_submodule("selftest", "kernels that check the emulator itself");
  t.def("reverse", &st::reverse);
  t.def("shuffles", &st::shuffles);
  t.def("lockstep", &st::lockstep);
  t.def("divergent_barrier", &st::divergent_barrier);
  t.def("deadlock", &st::deadlock);
  t.def("exited_lane", &st::exited_lane);
  t.def("early_exit", &st::early_exit);
  t.def("uninitialised_shared", &st::uninitialised_shared);
  t.def("atomics", &st::atomics);
  t.def("block_private", &st::block_private);
  t.def("bad_config", &st::bad_config);
}
