#pragma once
// Caps the instruction sets the kernels use (core/cpu_features.hpp) for the life of the guard, so a test can
// run each path on one machine; the cap in force before comes back when the guard ends, by return or
// exception.

#include <vector>

#include "resnet/core/cpu_features.hpp"

namespace resnet::testing {

class IsaCap {
 public:
  explicit IsaCap(Isa cap) : before_(max_isa()) { set_max_isa(cap); }
  ~IsaCap() { set_max_isa(before_); }
  IsaCap(const IsaCap&) = delete;
  IsaCap& operator=(const IsaCap&) = delete;

 private:
  Isa before_;
};

// Every instruction set this CPU has, from Generic up: the paths a test can force here.
inline std::vector<Isa> isas_of_this_cpu() {
  std::vector<Isa> isas;
  for (const Isa isa : {Isa::Generic, Isa::Avx512, Isa::Avx512Bf16, Isa::AmxBf16}) {
    if (isa <= cpu_isa()) isas.push_back(isa);
  }
  return isas;
}

}  // namespace resnet::testing
