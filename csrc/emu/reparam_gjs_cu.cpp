// The CUDA reparam+GJS kernels and launchers, compiled as host C++ for the CPU
// emulator: this is the .cu file itself, not a copy.
#include "cuda/reparam_gjs.cu"
