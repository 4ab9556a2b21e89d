// The CUDA MIG histogram kernel and launcher, compiled as host C++ for the CPU
// emulator: this is the .cu file itself, not a copy.
#include "cuda/mig_histogram.cu"
