// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011) and the standard-normal stream built on it.
//
// The stream is a pure function of (seed, position): position p belongs to the
// Philox block with counter p / 4 and takes lane p % 4 of it. Normals come from
// the Box-Muller transform of the block's two word pairs, (w0, w1) -> (n0, n1)
// and (w2, w3) -> (n2, n3). All float math is plain IEEE arithmetic with
// explicit FMAs and correctly rounded division and sqrt, so CPU and CUDA give
// identical bits.
#pragma once

#include "vaebench/common.h"

namespace vaebench {

struct PhiloxKey {
  uint32_t k0, k1;
};

VB_HD PhiloxKey philox_key(uint64_t seed) {
  return PhiloxKey{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
}

struct U32x4 {
  uint32_t w0, w1, w2, w3;
};

VB_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// One Philox4x32-10 block: 10 rounds of the S-box with Weyl key schedule.
// The state words are carried in 64-bit variables whose low 32 bits are the
// Philox word (upper bits are don't-care): a vectorized CPU loop then keeps one
// block per 64-bit lane and each 32x32->64 product is a single vpmuludq, with
// no 32/64-bit lane shuffling between rounds.
VB_HD U32x4 philox4x32_10(U32x4 c, PhiloxKey key) {
  constexpr uint64_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  constexpr uint64_t kLo = 0xFFFFFFFFu;
  uint64_t w0 = c.w0, w1 = c.w1, w2 = c.w2, w3 = c.w3;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = (w0 & kLo) * kM0;
    const uint64_t p1 = (w2 & kLo) * kM1;
    const uint64_t k0 = static_cast<uint32_t>(key.k0 + static_cast<uint32_t>(r) * kW0);
    const uint64_t k1 = static_cast<uint32_t>(key.k1 + static_cast<uint32_t>(r) * kW1);
    w0 = (p1 >> 32) ^ w1 ^ k0;
    w1 = p1;
    w2 = (p0 >> 32) ^ w3 ^ k1;
    w3 = p0;
  }
  return U32x4{static_cast<uint32_t>(w0), static_cast<uint32_t>(w1), static_cast<uint32_t>(w2),
               static_cast<uint32_t>(w3)};
}

// The block holding stream positions [4 * block, 4 * block + 4).
VB_HD U32x4 philox_block(uint64_t block, PhiloxKey key) {
  return philox4x32_10(
      U32x4{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u}, key);
}

// ---- uniform to normal -----------------------------------------------------

// -2 * ln(u) for u = (top 24 bits of w + 0.5) * 2^-24, so u lies in (0, 1) and
// the largest |normal| is sqrt(2 * 25 * ln 2) = 5.89.
VB_HD float minus_two_log_uniform(uint32_t w) {
  // v = 2 * (w >> 8) + 1 rounds to float exactly as u = v * 2^-25 does, so u's
  // bits are v's bits less 25 in the exponent field (folded into the constant below).
  const uint32_t vbits = float_bits(static_cast<float>(static_cast<int32_t>((w >> 7) | 1u)));
  // u = m * 2^e with m in (sqrt(1/2), sqrt(2)]: ln u = e ln 2 + ln m. Subtracting
  // the bits of sqrt(1/2) (rounded up) borrows from the exponent field exactly
  // when the mantissa is at most sqrt(2), giving e and m without compares.
  const uint32_t t = vbits - (0x3F3504F4u + (25u << 23));
  const int32_t e = static_cast<int32_t>(t) >> 23;
  const float m = bits_float((t & 0x007FFFFFu) + 0x3F3504F4u);
  // ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172: odd series to s^11.
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  // The series is evaluated times -4 (constants scaled by -4): scaling by a
  // power of two commutes with rounding here (no overflow or underflow), so
  // s * p4 == -2 * ((2 * s) * p) bit for bit and the -2 of -2 ln u is folded in.
  float p4 = fma_f(s2, -4.0f * (1.0f / 11.0f), -4.0f * (1.0f / 9.0f));
  p4 = fma_f(s2, p4, -4.0f * (1.0f / 7.0f));
  p4 = fma_f(s2, p4, -4.0f * (1.0f / 5.0f));
  p4 = fma_f(s2, p4, -4.0f * (1.0f / 3.0f));
  p4 = fma_f(s2, p4, -4.0f);
  // -2 ln u = e * (-2 ln2_hi) + (e * (-2 ln2_lo) - 2 ln m); ln 2 is split so
  // that e * hi is exact.
  const float fe = static_cast<float>(e);
  return fma_f(fe, -2.0f * 0.693145751953125f, fma_f(fe, -2.0f * 1.428606765330187e-06f, s * p4));
}

// cos and sin of 2 pi t, t = w / 2^32: the top two bits pick the quadrant and
// the next 24 give the angle inside it, evaluated by Taylor series on [0, pi/2).
VB_HD void sincos_two_pi(uint32_t w, float& c, float& s) {
  // x = k * 2^-24 * (pi/2) for the 24 bits k = (w >> 6) & 0xFFFFFF. k * 2^6 is
  // converted exactly and the powers of two are folded into the constant, so
  // the single rounding of the product is unchanged.
  const float x = static_cast<float>(static_cast<int32_t>(w & 0x3FFFFFC0u)) *
                  (1.57079632679489662f * 0x1p-30f);
  const float x2 = x * x;
  float ps = fma_f(x2, 1.6059043836821613e-10f, -2.5052108385441720e-08f);  // x^13, x^11
  ps = fma_f(x2, ps, 2.7557319223985893e-06f);
  ps = fma_f(x2, ps, -1.9841269841269841e-04f);
  ps = fma_f(x2, ps, 8.3333333333333333e-03f);
  ps = fma_f(x2, ps, -1.6666666666666667e-01f);
  const float sin_x = fma_f(x * x2, ps, x);
  float pc = fma_f(x2, 2.0876756987868099e-09f, -2.7557319223985891e-07f);  // x^12, x^10
  pc = fma_f(x2, pc, 2.4801587301587302e-05f);
  pc = fma_f(x2, pc, -1.3888888888888889e-03f);
  pc = fma_f(x2, pc, 4.1666666666666667e-02f);
  pc = fma_f(x2, pc, -0.5f);
  const float cos_x = fma_f(x2, pc, 1.0f);
  // Rotate by quadrant * pi/2 (bits 31..30 of w): odd quadrants swap sin and
  // cos; sign flips are XORed into the sign bit (cos: bit 31 ^ bit 30, which is
  // bit 31 of w + 2^30; sin: bit 31), avoiding compare-and-blend chains.
  const bool odd = (w & 0x40000000u) != 0u;
  c = bits_float(float_bits(odd ? sin_x : cos_x) ^ ((w + 0x40000000u) & 0x80000000u));
  s = bits_float(float_bits(odd ? cos_x : sin_x) ^ (w & 0x80000000u));
}

struct F32x4 {
  float n0, n1, n2, n3;
};

// Four standard normals from one Philox block.
VB_HD F32x4 box_muller4(U32x4 w) {
  const float r01 = sqrt_f(minus_two_log_uniform(w.w0));
  const float r23 = sqrt_f(minus_two_log_uniform(w.w2));
  float c01, s01, c23, s23;
  sincos_two_pi(w.w1, c01, s01);
  sincos_two_pi(w.w3, c23, s23);
  return F32x4{r01 * c01, r01 * s01, r23 * c23, r23 * s23};
}

VB_HD F32x4 normal_block(uint64_t block, PhiloxKey key) {
  return box_muller4(philox_block(block, key));
}

VB_HD float lane(const F32x4& v, int i) {
  return i == 0 ? v.n0 : i == 1 ? v.n1 : i == 2 ? v.n2 : v.n3;
}

// The single normal at stream position p (used where one element is wanted,
// e.g. by a thread that owns one element; block-wise generation is cheaper).
VB_HD float normal_at(uint64_t p, PhiloxKey key) {
  return lane(normal_block(p >> 2, key), static_cast<int>(p & 3u));
}

}  // namespace vaebench
