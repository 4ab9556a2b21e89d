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

// Heart: the classic parametric heart x = 16 sin^3 t, y = 13 cos t - 5 cos 2t -
// 2 cos 3t - cos 4t as a polygon of 150 points equally spaced in t, scaled and
// shifted as fitted to real frames. Its left half, counter-clockwise from the
// notch (top, x = 0) through the left lobe to the tip (bottom, x = 0); the same
// doubles as HEART_VERTICES in render.py. The polygon is star-shaped about the
// centre: the vertices' angles about it increase along the list.
constexpr int kHeartHalfVertices = 76;
constexpr double kHeartVertices[kHeartHalfVertices][2] = {
    {0.0, 0.24752766143651933},
    {-3.6722838444039456e-05, 0.24876644399672934},
    {-0.00029301029344148456, 0.25245712635313344},
    {-0.00098457810942487374, 0.25852325539682675},
    {-0.0023195056631357992, 0.26683920587008597},
    {-0.0044945702520228989, 0.27723283024036849},
    {-0.0076917616510440833, 0.28948907968836979},
    {-0.012075032575811237, 0.30335451011390485},
    {-0.017787336964897722, 0.31854256629564448},
    {-0.024948003449148486, 0.33473951930516088},
    {-0.033650486082671363, 0.35161091742727912},
    {-0.043960528452346527, 0.36880839954766509},
    {-0.055914770754125695, 0.38597671251058457},
    {-0.069519822428095179, 0.40276077049905468},
    {-0.084751815590591237, 0.41881259511424024},
    {-0.10155644690657832, 0.43379797949155385},
    {-0.119849507828832, 0.44740272834197187},
    {-0.13951789541392792, 0.45933833800120122},
    {-0.16042108833034671, 0.46934699606430336},
    {-0.18239306532096311, 0.47720579855172368},
    {-0.2052446363867865, 0.48273010329339716},
    {-0.22876615043141277, 0.48577596077020652},
    {-0.25273053714920418, 0.48624158741160045},
    {-0.27689663564871614, 0.48406787068209089},
    {-0.30101275775979741, 0.47923791955437306},
    {-0.32482043024983676, 0.47177569752661941},
    {-0.348058257330493, 0.46174379758368966},
    {-0.37046584291591095, 0.44924043885461534},
    {-0.39178771112710875, 0.43439578266543472},
    {-0.41177716354033755, 0.41736768078021669},
    {-0.43020001264961366, 0.39833698049786581},
    {-0.44683813294013419, 0.3775025196523179},
    {-0.46149277381949994, 0.35507594927053993},
    {-0.473987582382707, 0.33127652259924256},
    {-0.48417128853597358, 0.30632598644306736},
    {-0.49192001030192817, 0.28044370439112626},
    {-0.49713914309101742, 0.25384213176904136},
    {-0.49976480325721168, 0.2267227493540459},
    {-0.49976480325721168, 0.19927254742583883},
    {-0.49713914309101742, 0.17166113405965938},
    {-0.49192001030192833, 0.14403852221979302},
    {-0.48417128853597358, 0.11653362974202271},
    {-0.473987582382707, 0.089253505287619661},
    {-0.46149277381949994, 0.062283272403198135},
    {-0.44683813294013403, 0.035686763515740863},
    {-0.43020001264961344, 0.0095077965914618107},
    {-0.4117771635403375, -0.016227970187979383},
    {-0.39178771112710858, -0.04151068556128177},
    {-0.37046584291591067, -0.066343546555537425},
    {-0.34805825733049273, -0.090739736183462649},
    {-0.32482043024983598, -0.1147191660936428},
    {-0.30101275775979736, -0.13830513603091399},
    {-0.27689663564871653, -0.16152102185568767},
    {-0.25273053714920402, -0.18438710046916801},
    {-0.22876615043141257, -0.20691761343813878},
    {-0.20524463638678603, -0.22911816163982454},
    {-0.18239306532096269, -0.25098351116759698},
    {-0.16042108833034657, -0.27249587643810819},
    {-0.13951789541392773, -0.29362373036639228},
    {-0.1198495078288318, -0.31432117412213517},
    {-0.10155644690657815, -0.33452788087501995},
    {-0.084751815590591084, -0.35416960962491789},
    {-0.069519822428095041, -0.37315926724050491},
    {-0.055914770754125577, -0.39139847973036551},
    {-0.043960528452346562, -0.408779618047035},
    {-0.033650486082671377, -0.4251882098360783},
    {-0.024948003449148499, -0.44050565689143428},
    {-0.017787336964897729, -0.45461216899866219},
    {-0.01207503257581114, -0.46738981859518469},
    {-0.0076917616510440113, -0.47872561742190173},
    {-0.0044945702520228763, -0.48851451616461516},
    {-0.0023195056631357667, -0.49666223097573775},
    {-0.00098457810942486528, -0.50308780662475927},
    {-0.00029301029344148076, -0.50772583465996102},
    {-3.6722838444038507e-05, -0.51052825610176267},
    {0.0, -0.51146569148381993},
};
// Radii of a disc inside the polygon (its nearest edge point) and of one
// containing it (its farthest vertex): most pixels skip the edge lookup.
constexpr double kHeartInner = 0.247527;
constexpr double kHeartOuter = 0.586308;

// Largest distance of a sprite point from its centre, in sprite units, over
// all shapes (the square's half diagonal): bounds every sprite.
constexpr double kSpriteRadius = 0.70710678118654752;

// Largest distance of a point of `shape` from its centre, in sprite units.
VB_HD double sprite_reach(int shape) {
  return shape == kSquare ? kSpriteRadius : shape == kEllipse ? kEllipseA : kHeartOuter;
}

// Heart polygon test. By symmetry only the left half is needed. The edge a
// point can cross is the one whose two vertex rays enclose it (the polygon is
// star-shaped about the centre), found by bisection on which side of each
// vertex ray the point lies; then the point is inside when it is on the inner
// side of that edge.
inline bool heart_inside(double u, double v) {
  const double x = -std::fabs(u), y = v;
  const double r2 = x * x + y * y;
  if (r2 <= kHeartInner * kHeartInner) return true;
  if (r2 > kHeartOuter * kHeartOuter) return false;
  // Largest j with the point counter-clockwise of (or on) vertex j's ray; vertex 0's ray
  // (straight up) has every point of the left half-plane on that side.
  int lo = 0, hi = kHeartHalfVertices - 1;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (kHeartVertices[mid][0] * y - kHeartVertices[mid][1] * x >= 0.0) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  const double* a = kHeartVertices[lo];
  const double* b = kHeartVertices[lo + 1];
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
