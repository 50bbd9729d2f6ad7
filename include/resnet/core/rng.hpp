#pragma once
// A small seeded generator (xoshiro256** seeded by splitmix64) with uniform and normal draws. We write our
// own instead of std::normal_distribution so that a seed gives the same weights with every standard library.

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "resnet/core/error.hpp"

namespace resnet {

class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) { reseed(seed); }

  void reseed(std::uint64_t seed) {
    for (auto& word : state_)
      word = splitmix64(seed);
    has_spare_normal_ = false;
  }

  std::uint64_t next_u64() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  double uniform(double low, double high) { return low + (high - low) * uniform(); }

  // Standard normal by the Box-Muller transform; the second value of each pair is kept for the next call.
  double normal() {
    if (has_spare_normal_) {
      has_spare_normal_ = false;
      return spare_normal_;
    }
    const double two_pi = 6.283185307179586476925;
    const double u1 = 1.0 - uniform();  // in (0, 1], so log(u1) is finite
    const double u2 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    spare_normal_ = radius * std::sin(two_pi * u2);
    has_spare_normal_ = true;
    return radius * std::cos(two_pi * u2);
  }
  double normal(double mean, double std) { return mean + std * normal(); }

  // Uniform integer in [0, n) without modulo bias (Lemire's method). [0, 0) is empty (and its threshold a
  // division by zero).
  std::uint64_t below(std::uint64_t n) {
    check(n > 0, "Rng::below: the range [0, 0) is empty");
    std::uint64_t x = next_u64();
    __uint128_t m = static_cast<__uint128_t>(x) * n;
    std::uint64_t low = static_cast<std::uint64_t>(m);
    if (low < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        x = next_u64();
        m = static_cast<__uint128_t>(x) * n;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

  // The whole generator state as six words (xoshiro state, spare-normal flag, spare-normal bits), so
  // checkpoints can save it and a resumed run continues the same stream.
  using State = std::array<std::uint64_t, 6>;
  State state() const {
    State s{state_[0], state_[1], state_[2], state_[3], has_spare_normal_ ? 1u : 0u, 0};
    std::memcpy(&s[5], &spare_normal_, sizeof(double));
    return s;
  }
  void set_state(const State& s) {
    for (int i = 0; i < 4; ++i)
      state_[i] = s[static_cast<std::size_t>(i)];
    has_spare_normal_ = s[4] != 0;
    std::memcpy(&spare_normal_, &s[5], sizeof(double));
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  std::uint64_t state_[4] = {};
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

}  // namespace resnet
