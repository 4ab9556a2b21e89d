// CPU renderer of binary sprite images (the dSprites shapes of sprites.h):
// each pixel is on when its centre lies inside the rotated, scaled, shifted
// shape. Only the sprite's bounding box is tested; images render in parallel.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "vaebench/sprites.h"

namespace vaebench {
namespace {

void check_render_inputs(const at::Tensor& shape, const at::Tensor& pose, int64_t height, int64_t width) {
  TORCH_CHECK(shape.device().is_cpu() && pose.device().is_cpu(),
              "render_sprites: shape and pose must be CPU tensors");
  TORCH_CHECK(shape.dim() == 1 && shape.scalar_type() == at::kLong,
              "render_sprites: shape must be a 1-D int64 tensor [n], got ", shape.scalar_type(), " of shape ",
              shape.sizes());
  TORCH_CHECK(pose.dim() == 2 && pose.size(1) == 4 && pose.scalar_type() == at::kDouble,
              "render_sprites: pose must be a float64 tensor [n, 4] (cx, cy, size, angle), got ",
              pose.scalar_type(), " of shape ", pose.sizes());
  TORCH_CHECK(pose.size(0) == shape.size(0), "render_sprites: shape has ", shape.size(0), " rows but pose has ",
              pose.size(0));
  TORCH_CHECK(height > 0 && width > 0, "render_sprites: height and width must be positive, got ", height, "x",
              width);
}

// Renders sprite i into `row_bits` rows of `out` (one byte per pixel, or
// MSB-first bits when packed).
void render_one(int shape, const double* p, int64_t height, int64_t width, bool packed, uint8_t* out,
                uint8_t* row) {
  const int64_t row_bytes = packed ? (width + 7) / 8 : width;
  std::memset(out, 0, static_cast<size_t>(height * row_bytes));
  const double cx = p[0], cy = p[1], size = p[2], angle = p[3];
  const double c = std::cos(angle), s = std::sin(angle), inv = 1.0 / size;
  const double reach = size * kSpriteRadius;
  const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(cx - reach - 0.5)));
  const int64_t x1 = std::min<int64_t>(width - 1, static_cast<int64_t>(std::ceil(cx + reach - 0.5)));
  const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(cy - reach - 0.5)));
  const int64_t y1 = std::min<int64_t>(height - 1, static_cast<int64_t>(std::ceil(cy + reach - 0.5)));
  for (int64_t r = y0; r <= y1; ++r) {
    const double dy = cy - (static_cast<double>(r) + 0.5);  // y up
    uint8_t* dst = out + r * row_bytes;
    if (packed) std::memset(row, 0, static_cast<size_t>(width));
    for (int64_t col = x0; col <= x1; ++col) {
      const double dx = (static_cast<double>(col) + 0.5) - cx;
      // Rotate the pixel by -angle into the sprite's frame.
      const double u = (c * dx + s * dy) * inv;
      const double v = (c * dy - s * dx) * inv;
      const uint8_t on = sprite_inside(shape, u, v) ? 1 : 0;
      if (packed) row[col] = on; else dst[col] = on;
    }
    if (packed) {
      for (int64_t b = x0 / 8; b <= x1 / 8; ++b) {
        uint8_t byte = 0;
        for (int k = 0; k < 8; ++k) {
          const int64_t col = b * 8 + k;
          byte = static_cast<uint8_t>(byte << 1 | (col < width ? row[col] : 0));
        }
        dst[b] = byte;
      }
    }
  }
}

at::Tensor render_sprites_cpu(const at::Tensor& shape_in, const at::Tensor& pose_in, int64_t height, int64_t width,
                              bool packed) {
  check_render_inputs(shape_in, pose_in, height, width);
  const at::Tensor shape = shape_in.contiguous();
  const at::Tensor pose = pose_in.contiguous();
  const int64_t n = shape.size(0);
  const int64_t* sh = shape.const_data_ptr<int64_t>();
  const double* ps = pose.const_data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK(sh[i] >= kSquare && sh[i] <= kHeart, "render_sprites: shape[", i, "] must be 0, 1 or 2, got ",
                sh[i]);
    TORCH_CHECK(std::isfinite(ps[4 * i]) && std::isfinite(ps[4 * i + 1]) && std::isfinite(ps[4 * i + 3]) &&
                    std::isfinite(ps[4 * i + 2]) && ps[4 * i + 2] > 0,
                "render_sprites: pose[", i, "] must be finite with size > 0");
  }
  const int64_t row_bytes = packed ? (width + 7) / 8 : width;
  at::Tensor out = at::empty({n, height, row_bytes}, shape.options().dtype(at::kByte));
  uint8_t* o = out.mutable_data_ptr<uint8_t>();
  at::parallel_for(0, n, 64, [&](int64_t i0, int64_t i1) {
    std::vector<uint8_t> row(static_cast<size_t>(width));
    for (int64_t i = i0; i < i1; ++i) {
      render_one(static_cast<int>(sh[i]), ps + 4 * i, height, width, packed, o + i * height * row_bytes,
                 row.data());
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(vaebench, m) {
  m.def("render_sprites(Tensor shape, Tensor pose, int height, int width, bool packed) -> Tensor");
}

TORCH_LIBRARY_IMPL(vaebench, CPU, m) { m.impl("render_sprites", &render_sprites_cpu); }

}  // namespace vaebench
