// The schemas of every vaebench op, in one place, and the Python module stub.
//
// Importing vaebench._C runs the TORCH_LIBRARY blocks of all linked sources:
// this file defines the ops, csrc/cpu/*.cpp register CPU kernels and, in a CUDA
// build, csrc/cuda/*_glue.cpp register CUDA kernels. Seeds and offsets are op
// arguments (not hidden generator state) so each op is a pure function that
// opcheck and torch.compile can replay.
#include <Python.h>
#include <torch/library.h>

#include "cpu/output_cache.h"

TORCH_LIBRARY(vaebench, m) {
  // z = mu + exp(logvar / 2) * eps and kl[b] = KL(N(mu_b, diag exp(logvar_b)) || N(0, I)),
  // eps the Philox normals at stream positions [offset, offset + B * D).
  m.def("reparam_kl(Tensor mu, Tensor logvar, int seed, int offset) -> (Tensor, Tensor)");
  m.def(
      "reparam_kl_backward(Tensor grad_z, Tensor grad_kl, Tensor mu, Tensor logvar, int seed, "
      "int offset) -> (Tensor, Tensor)");
  // The same z, and div[b] = the skew-geometric Jensen-Shannon divergence between
  // N(mu_b, diag exp(logvar_b)) and N(0, I) at skew alpha (a 0-dim tensor in [0, 1]), or its
  // dual (csrc/include/vaebench/gjs.h, docs/gjs.md). The backward returns alpha's gradient too.
  m.def(
      "reparam_gjs(Tensor mu, Tensor logvar, Tensor alpha, bool dual, int seed, int offset) -> "
      "(Tensor, Tensor)");
  m.def(
      "reparam_gjs_backward(Tensor grad_z, Tensor grad_div, Tensor mu, Tensor logvar, Tensor alpha, "
      "bool dual, int seed, int offset) -> (Tensor, Tensor, Tensor)");
  // joint[j] = logsumexp_i log N(z[j]; mu[i], diag exp(logvar[i])) and
  // marginal[j, d] = logsumexp_i log N(z[j, d]; mu[i, d], exp(logvar[i, d])), the Gaussians'
  // own constants included, none for the mixture (csrc/include/vaebench/gaussian_logdensity.h).
  m.def("gaussian_logdensity_lse(Tensor z, Tensor mu, Tensor logvar) -> (Tensor, Tensor)");
  m.def(
      "gaussian_logdensity_lse_backward(Tensor grad_joint, Tensor grad_marginal, Tensor z, Tensor mu, "
      "Tensor logvar, Tensor joint, Tensor marginal) -> (Tensor, Tensor, Tensor)");
  // Fills a float32 tensor with the Philox normals at positions [offset, offset + numel).
  m.def("philox_normal_(Tensor(a!) out, int seed, int offset) -> ()");
  // The CPU output cache of the fused ops (csrc/cpu/output_cache.h).
  m.def("cpu_output_cache_stats() -> int[]", &vaebench::cpu_output_cache_stats);
  m.def("empty_cpu_output_cache() -> ()", &vaebench::empty_cpu_output_cache);
  m.def("set_cpu_output_cache_limit(int limit_bytes) -> int", &vaebench::set_cpu_output_cache_limit);
}

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
