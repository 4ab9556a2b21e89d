// The CUDA pairwise Gaussian log-density kernels and launchers, compiled as host C++ for the CPU
// emulator: this is the .cu file itself, not a copy.
#include "cuda/gaussian_logdensity.cu"
