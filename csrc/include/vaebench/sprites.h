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
    {0.000000, 0.272072}, {-0.010389, 0.297499}, {-0.022923, 0.327810},
    {-0.038332, 0.364705}, {-0.054027, 0.384425}, {-0.071114, 0.403308},
    {-0.090096, 0.423866}, {-0.109742, 0.440151}, {-0.130347, 0.454574},
    {-0.151076, 0.464964}, {-0.173066, 0.475494}, {-0.194460, 0.481305},
    {-0.215387, 0.483767}, {-0.236906, 0.485729}, {-0.259032, 0.487169},
    {-0.279576, 0.484239}, {-0.300332, 0.480631}, {-0.319551, 0.473754},
    {-0.338700, 0.466180}, {-0.357026, 0.456973}, {-0.375150, 0.447087},
    {-0.391010, 0.434261}, {-0.406433, 0.420874}, {-0.421398, 0.406939},
    {-0.435474, 0.392103}, {-0.449028, 0.376779}, {-0.461303, 0.360410},
    {-0.470035, 0.341501}, {-0.478068, 0.322461}, {-0.485404, 0.303314},
    {-0.490788, 0.283357}, {-0.495474, 0.263448}, {-0.498072, 0.242926},
    {-0.498704, 0.222037}, {-0.498719, 0.201495}, {-0.498134, 0.181306},
    {-0.495217, 0.160906}, {-0.491325, 0.140885}, {-0.485282, 0.120994},
    {-0.479276, 0.101873}, {-0.471778, 0.083187}, {-0.464045, 0.065217},
    {-0.454142, 0.047732}, {-0.444193, 0.031061}, {-0.434199, 0.015163},
    {-0.423647, 0.000000}, {-0.413104, -0.014426}, {-0.402443, -0.028142},
    {-0.391803, -0.041180}, {-0.381185, -0.053572}, {-0.371385, -0.065485},
    {-0.361532, -0.076846}, {-0.351838, -0.087723}, {-0.342084, -0.098091},
    {-0.332276, -0.107963}, {-0.322422, -0.117352}, {-0.313549, -0.126682},
    {-0.304552, -0.135595}, {-0.296052, -0.144394}, {-0.287396, -0.152811},
    {-0.279025, -0.161095}, {-0.270485, -0.169018}, {-0.261789, -0.176579},
    {-0.254020, -0.184557}, {-0.246032, -0.192221}, {-0.237835, -0.199567},
    {-0.229441, -0.206590}, {-0.220862, -0.213284}, {-0.213699, -0.221292},
    {-0.206247, -0.229061}, {-0.198515, -0.236581}, {-0.190596, -0.243951},
    {-0.182406, -0.251060}, {-0.174914, -0.259320}, {-0.167087, -0.267395},
    {-0.158928, -0.275271}, {-0.150441, -0.282938}, {-0.142156, -0.291462},
    {-0.133494, -0.299834}, {-0.124919, -0.309184}, {-0.115909, -0.318457},
    {-0.106457, -0.327642}, {-0.097413, -0.339718}, {-0.087766, -0.352011},
    {-0.077484, -0.364534}, {-0.066528, -0.377302}, {-0.055329, -0.393683},
    {-0.043182, -0.410848}, {-0.029991, -0.428890}, {-0.016150, -0.462466},
    {0.000000, -0.500978},
};
constexpr double kHeartStep = 3.14159265358979323846 / (kHeartHalfVertices - 1);  // radians between vertices
// Radii of a disc inside the polygon (its nearest edge point, the notch) and
// of one containing it (its farthest vertex): most pixels skip the edge lookup.
constexpr double kHeartInner = 0.272072;
constexpr double kHeartOuter = 0.586165;

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
