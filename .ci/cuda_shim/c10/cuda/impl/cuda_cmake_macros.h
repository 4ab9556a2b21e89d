// CI-only stand-in: the CPU torch wheel ships c10/cuda headers but not this
// generated one, which a CUDA build of torch provides. Lets CI syntax-check the
// CUDA glue sources against torch.
#pragma once
