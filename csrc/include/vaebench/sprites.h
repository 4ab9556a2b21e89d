// Point-in-sprite tests of the dSprites shapes, shared by the C++ renderer and
// any CUDA one. Coordinates are sprite-local, in units of the sprite's size
// (the side of the square), y pointing up, origin at the sprite's centre.
// The geometry (and why it was chosen) is documented in vaebench/data/render.py.
#pragma once

#include "vaebench/common.h"

namespace vaebench {

enum SpriteShape : int { kSquare = 0, kEllipse = 1, kHeart = 2 };

// Ellipse semi-axes, in sprite units (major axis along x at orientation 0).
constexpr double kEllipseA = 0.7;
constexpr double kEllipseB = 0.4;
// Heart: the curve (x^2 + y^2 - 1)^3 - x^2 y^3 = 0 spans x in [-kHeartHalfW,
// kHeartHalfW] and y in [-1, kHeartTop]; it is centred on its bounding box and
// scaled to kHeartWidth sprite units wide.
constexpr double kHeartHalfW = 1.13903;
constexpr double kHeartTop = 1.23666;
constexpr double kHeartWidth = 1.1;
constexpr double kHeartScale = (kHeartWidth / 2.0) / kHeartHalfW;  // sprite units per curve unit
constexpr double kHeartYShift = (kHeartTop - 1.0) / 2.0;          // bbox centre in curve units

// Largest distance of a sprite point from its centre, in sprite units, over
// all shapes (the square's half diagonal): sets the renderer's bounding boxes.
constexpr double kSpriteRadius = 0.70710678118654752;

VB_HD bool sprite_inside(int shape, double u, double v) {
  if (shape == kSquare) {
    return u >= -0.5 && u <= 0.5 && v >= -0.5 && v <= 0.5;
  }
  if (shape == kEllipse) {
    const double a = u / kEllipseA, b = v / kEllipseB;
    return a * a + b * b <= 1.0;
  }
  // Heart: back to curve units, lobes up.
  const double x = u / kHeartScale, y = v / kHeartScale + kHeartYShift;
  const double r = x * x + y * y - 1.0;
  return r * r * r - x * x * y * y * y <= 0.0;
}

}  // namespace vaebench
