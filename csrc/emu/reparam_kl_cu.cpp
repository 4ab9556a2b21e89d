// The CUDA reparam+KL kernels and launchers, compiled as host C++ for the CPU
// emulator: this is the .cu file itself, not a copy.
#include "cuda/reparam_kl.cu"
