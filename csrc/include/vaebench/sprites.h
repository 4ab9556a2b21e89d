// Point-in-sprite tests of the dSprites shapes, used by the C++ renderer (a
// CUDA one would need the heart's table in device memory). Coordinates are
// sprite-local, in units of the sprite's size (the side of the square), y
// pointing up, origin at the sprite's centre (its centre of rotation). The
// geometry, calibrated against real frames of the dataset, and the evidence
// for each number are documented in vaebench/data/render.py.
#pragma once

#include <cmath>

#include "vaebench/common.h"

namespace vaebench {

enum SpriteShape : int { kSquare = 0, kEllipse = 1, kHeart = 2 };

// Ellipse semi-axes, in sprite units (major axis along x at orientation 0).
constexpr double kEllipseA = 0.665015;
constexpr double kEllipseB = 0.375714;

// Heart: a mirror-symmetric polygon with a vertex every 2 degrees about the
// centre. Its left half, counter-clockwise from the notch (top, x = 0) through
// the left lobe to the tip (bottom, x = 0); same numbers as HEART_VERTICES in
// render.py.
constexpr int kHeartHalfVertices = 91;
constexpr double kHeartVertices[kHeartHalfVertices][2] = {
    {0.000000, 0.269914}, {-0.010453, 0.299334}, {-0.023030, 0.329349},
    {-0.037662, 0.358332}, {-0.053979, 0.384082}, {-0.071244, 0.404047},
    {-0.089884, 0.422870}, {-0.109688, 0.439935}, {-0.130347, 0.454576},
    {-0.151473, 0.466185}, {-0.172573, 0.474141}, {-0.194071, 0.480342},
    {-0.215752, 0.484586}, {-0.237376, 0.486694}, {-0.258686, 0.486517},
    {-0.279480, 0.484074}, {-0.299501, 0.479301}, {-0.319134, 0.473135},
    {-0.338260, 0.465575}, {-0.356761, 0.456634}, {-0.374521, 0.446337},
    {-0.391428, 0.434725}, {-0.407377, 0.421851}, {-0.422269, 0.407780},
    {-0.436016, 0.392591}, {-0.448542, 0.376372}, {-0.459781, 0.359220},
    {-0.469680, 0.341243}, {-0.478201, 0.322551}, {-0.485318, 0.303260},
    {-0.491021, 0.283491}, {-0.495256, 0.263332}, {-0.498026, 0.242904},
    {-0.499361, 0.222330}, {-0.499301, 0.201731}, {-0.497899, 0.181220},
    {-0.495217, 0.160906}, {-0.491325, 0.140885}, {-0.485282, 0.120994},
    {-0.479276, 0.101873}, {-0.471929, 0.083214}, {-0.463370, 0.065122},
    {-0.454115, 0.047729}, {-0.444242, 0.031064}, {-0.434095, 0.015159},
    {-0.423726, 0.000000}, {-0.413162, -0.014428}, {-0.402433, -0.028141},
    {-0.391935, -0.041194}, {-0.381639, -0.053636}, {-0.371519, -0.065509},
    {-0.361550, -0.076850}, {-0.351712, -0.087692}, {-0.341988, -0.098064},
    {-0.332362, -0.107991}, {-0.322819, -0.117497}, {-0.313558, -0.126686},
    {-0.304539, -0.135590}, {-0.295729, -0.144237}, {-0.287097, -0.152652},
    {-0.278615, -0.160859}, {-0.270259, -0.168877}, {-0.262006, -0.176725},
    {-0.253835, -0.184422}, {-0.245726, -0.191983}, {-0.237662, -0.199422},
    {-0.229652, -0.206780}, {-0.221677, -0.214071}, {-0.213774, -0.221370},
    {-0.205919, -0.228696}, {-0.198089, -0.236073}, {-0.190261, -0.243523},
    {-0.182412, -0.251069}, {-0.174520, -0.258736}, {-0.166560, -0.266552},
    {-0.158509, -0.274546}, {-0.150341, -0.282750}, {-0.142028, -0.291201},
    {-0.133541, -0.299938}, {-0.124847, -0.309007}, {-0.115955, -0.318585},
    {-0.106818, -0.328751}, {-0.097377, -0.339596}, {-0.087571, -0.351228},
    {-0.077324, -0.363779}, {-0.066546, -0.377402}, {-0.055133, -0.392290},
    {-0.042954, -0.408676}, {-0.030103, -0.430494}, {-0.016076, -0.460361},
    {0.000000, -0.501402},
};
constexpr double kHeartStep = 3.14159265358979323846 / (kHeartHalfVertices - 1);  // radians between vertices
// Radii of a disc inside the polygon (its nearest edge point, the notch) and
// of one containing it (its farthest vertex): most pixels skip the edge lookup.
constexpr double kHeartInner = 0.269913;
constexpr double kHeartOuter = 0.587023;

// Largest distance of a sprite point from its centre, in sprite units, over
// all shapes (the square's half diagonal): bounds every sprite.
constexpr double kSpriteRadius = 0.70710678118654752;

// Largest distance of a point of `shape` from its centre, in sprite units.
VB_HD double sprite_reach(int shape) {
  return shape == kSquare ? kSpriteRadius : shape == kEllipse ? kEllipseA : kHeartOuter;
}

// Angle of (x, y), x >= 0, measured from the +y axis towards +x, in [0, pi],
// to within 0.004 rad: a cheap stand-in for atan2 where only the approximate
// sector is needed.
inline double approx_angle_from_y(double x, double y) {
  const double ay = std::fabs(y);
  const double lo = x < ay ? x : ay, hi = x < ay ? ay : x;
  const double z = hi > 0.0 ? lo / hi : 0.0;
  const double t = z * (0.78539816339744831 + 0.273 * (1.0 - z));  // atan(z), z in [0, 1]
  const double a = x < ay ? t : 1.5707963267948966 - t;             // atan(x / |y|)
  return y >= 0.0 ? a : 3.14159265358979323846 - a;
}

// Heart polygon test. By symmetry only the left half is needed; the edge a
// point can cross is the one of the 2-degree sector holding its angle (the
// polygon is star-shaped about the centre). The sector is guessed from an
// approximate angle and then settled against the vertex rays themselves, so
// the result is exact (and the stored vertices may sit a rounding error off
// the 2-degree directions).
inline bool heart_inside(double u, double v) {
  const double x = -std::fabs(u), y = v;
  const double r2 = x * x + y * y;
  if (r2 <= kHeartInner * kHeartInner) return true;
  if (r2 > kHeartOuter * kHeartOuter) return false;
  int j = static_cast<int>(approx_angle_from_y(-x, y) / kHeartStep);
  j = j < 0 ? 0 : (j > kHeartHalfVertices - 2 ? kHeartHalfVertices - 2 : j);
  auto ccw_of = [&](int k) {  // is the point counter-clockwise of (or on) vertex k's ray?
    return kHeartVertices[k][0] * y - kHeartVertices[k][1] * x >= 0.0;
  };
  while (j > 0 && !ccw_of(j)) --j;
  while (j < kHeartHalfVertices - 2 && ccw_of(j + 1)) ++j;
  const double* a = kHeartVertices[j];
  const double* b = kHeartVertices[j + 1];
  // Inside: on the left of the counter-clockwise edge a -> b.
  return (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]) >= 0.0;
}

inline bool sprite_inside(int shape, double u, double v) {
  if (shape == kSquare) {
    return u >= -0.5 && u <= 0.5 && v >= -0.5 && v <= 0.5;
  }
  if (shape == kEllipse) {
    const double a = u / kEllipseA, b = v / kEllipseB;
    return a * a + b * b <= 1.0;
  }
  return heart_inside(u, v);
}

}  // namespace vaebench
