// CPU renderer of binary sprite images (the dSprites shapes of sprites.h):
// each pixel is on when its centre lies inside the rotated, scaled, shifted
// shape. Only the sprite's bounding box is tested; images render in parallel.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <cstring>

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

// Calls on(row, col) for every pixel of the sprite's bounding box whose centre
// lies inside the sprite `shape` at pose p = (cx, cy, size, angle).
template <typename On>
void for_each_sprite_pixel(int shape, const double* p, int64_t height, int64_t width, const On& on) {
  const double cx = p[0], cy = p[1], size = p[2], angle = p[3];
  const double c = std::cos(angle), s = std::sin(angle), inv = 1.0 / size;
  const double reach = size * sprite_reach(shape);
  const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(cx - reach - 0.5)));
  const int64_t x1 = std::min<int64_t>(width - 1, static_cast<int64_t>(std::ceil(cx + reach - 0.5)));
  const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(cy - reach - 0.5)));
  const int64_t y1 = std::min<int64_t>(height - 1, static_cast<int64_t>(std::ceil(cy + reach - 0.5)));
  for (int64_t r = y0; r <= y1; ++r) {
    const double dy = cy - (static_cast<double>(r) + 0.5);  // y up
    for (int64_t col = x0; col <= x1; ++col) {
      const double dx = (static_cast<double>(col) + 0.5) - cx;
      // Rotate the pixel by -angle into the sprite's frame.
      if (sprite_inside(shape, (c * dx + s * dy) * inv, (c * dy - s * dx) * inv)) on(r, col);
    }
  }
}

at::Tensor render_sprites_cpu(const at::Tensor& shape_in, const at::Tensor& pose_in, int64_t height, int64_t width,
                              bool packed, at::ScalarType dtype) {
  check_render_inputs(shape_in, pose_in, height, width);
  TORCH_CHECK(dtype == at::kByte || dtype == at::kFloat, "render_sprites: dtype must be uint8 or float32, got ",
              dtype);
  TORCH_CHECK(!packed || dtype == at::kByte, "render_sprites: packed output is uint8, got dtype ", dtype);
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
  const int64_t row_len = packed ? (width + 7) / 8 : width;
  at::Tensor out = at::empty({n, height, row_len}, shape.options().dtype(dtype));
  const int64_t plane = height * row_len;
  uint8_t* base = static_cast<uint8_t*>(out.data_ptr());
  const int64_t plane_bytes = plane * out.element_size();
  // Images are independent. A grain of 1024 (a few ms of work) keeps training
  // batches on the calling thread: waking the pool costs more on a busy machine.
  at::parallel_for(0, n, 1024, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int shp = static_cast<int>(sh[i]);
      // Zeroed here, per image, rather than by a separate parallel fill: only the sprite's pixels are written.
      std::memset(base + i * plane_bytes, 0, static_cast<size_t>(plane_bytes));
      if (packed) {
        uint8_t* o = base + i * plane_bytes;  // MSB-first, as np.packbits
        for_each_sprite_pixel(shp, ps + 4 * i, height, width, [&](int64_t r, int64_t col) {
          o[r * row_len + col / 8] |= static_cast<uint8_t>(0x80u >> (col % 8));
        });
      } else if (dtype == at::kByte) {
        uint8_t* o = base + i * plane_bytes;
        for_each_sprite_pixel(shp, ps + 4 * i, height, width, [&](int64_t r, int64_t col) { o[r * width + col] = 1; });
      } else {
        float* o = reinterpret_cast<float*>(base + i * plane_bytes);
        for_each_sprite_pixel(shp, ps + 4 * i, height, width,
                              [&](int64_t r, int64_t col) { o[r * width + col] = 1.0f; });
      }
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(vaebench, m) {
  m.def("render_sprites(Tensor shape, Tensor pose, int height, int width, bool packed, ScalarType dtype) -> Tensor");
}

TORCH_LIBRARY_IMPL(vaebench, CPU, m) { m.impl("render_sprites", &render_sprites_cpu); }

}  // namespace vaebench
