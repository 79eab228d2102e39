// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11, the generator of cuRAND and
// PyTorch's CUDA RNG). Element i of a draw is a pure function of (seed, offset + i), so the same
// seed gives the same numbers on every device and with any number of threads.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/dtype.h"  // REMOE_HD

namespace remoe {

struct Philox4x32 {
  uint32_t v[4];
};

// One Philox4x32-10 block: 128 random bits from a 128-bit counter and a 64-bit key.
REMOE_HD inline Philox4x32 philox4x32(uint64_t counter_lo, uint64_t counter_hi, uint64_t key) {
  uint32_t c0 = static_cast<uint32_t>(counter_lo), c1 = static_cast<uint32_t>(counter_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(counter_hi), c3 = static_cast<uint32_t>(counter_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;  // Weyl key schedule
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform in (0, 1]: 24 random bits, never 0 (so log() below is finite). Same float on every device.
REMOE_HD inline float uint_to_unit(uint32_t x) { return (static_cast<float>(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }

// Element `index` of a uniform(0,1] stream for (seed, stream offset).
REMOE_HD inline float philox_uniform(uint64_t seed, uint64_t index) {
  return uint_to_unit(philox4x32(index, 0, seed).v[0]);
}

// Element `index` of a standard-normal stream: Box-Muller on two uniforms of the same block,
// computed in double so CPU and GPU agree to the last f32 bit.
REMOE_HD inline double philox_normal(uint64_t seed, uint64_t index) {
  Philox4x32 r = philox4x32(index, 0, seed);
  double u1 = uint_to_unit(r.v[0]), u2 = uint_to_unit(r.v[1]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// A seed plus a running offset: each draw of n numbers consumes indices [offset, offset + n).
// The offset is the RNG state a checkpoint saves.
struct Generator {
  uint64_t seed = 0;
  uint64_t offset = 0;
  explicit Generator(uint64_t s = 0) : seed(s) {}
};

}  // namespace remoe
