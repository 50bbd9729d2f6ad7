#pragma once
// The vector units of the CPU the process runs on, read once: what the kernels choose their paths by
// (kernels/gemm.hpp) and what runtime_info reports. AVX2, FMA and AVX-512F come from the compiler's runtime
// check, which also asks the OS whether it saves the registers (XGETBV); AVX512-BF16 is the CPUID bit itself
// (leaf 7). AMX-BF16 is its CPUID bits (AMX-TILE and AMX-BF16) with the OS saving the tile state (XCR0 bits
// 17 and 18); Linux then lets a process use the tiles only once it asks, which cpu_features() does once:
// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA). Where that is refused (an older kernel, a sandbox),
// the kernels run without tiles. Off x86-64, or with a compiler without these builtins, every feature reads
// false.
//
// The kernels ask isa_enabled(Isa), which is what the CPU has, capped by max_isa(): the environment variable
// RESNET_MAX_ISA (generic, avx512, avx512_bf16 or amx_bf16, read at first use, as oneDNN's
// ONEDNN_MAX_CPU_ISA) or set_max_isa, so that tests and benchmarks can run every path on one machine.

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "resnet/core/error.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <cpuid.h>
#define RESNET_HAVE_CPUID 1
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

namespace resnet {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512_bf16 = false;        // vdpbf16ps: bf16 pairs dotted into float
  bool amx_bf16 = false;           // AMX tiles with bf16 products, their state saved by the OS
  bool amx_tiles_granted = false;  // Linux lets this process use the tiles

  // "AVX2, FMA, AVX-512F, AVX512-BF16, no AMX-BF16": each feature, or "no" and its name; AMX-BF16 that the OS
  // does not let the process use is "AMX-BF16 (tiles refused by the OS)".
  std::string to_string() const {
    std::string text;
    const auto add = [&text](bool present, const char* name) {
      text += (text.empty() ? "" : ", ") + std::string(present ? "" : "no ") + name;
    };
    add(avx2, "AVX2");
    add(fma, "FMA");
    add(avx512f, "AVX-512F");
    add(avx512_bf16, "AVX512-BF16");
    add(amx_bf16, amx_bf16 && !amx_tiles_granted ? "AMX-BF16 (tiles refused by the OS)" : "AMX-BF16");
    return text;
  }
};

inline const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
#ifdef RESNET_HAVE_CPUID
    __builtin_cpu_init();  // for a caller that runs before libgcc's own constructor (a static initialiser)
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.avx512f = __builtin_cpu_supports("avx512f");
    unsigned a = 0, b = 0, c = 0, d = 0;
    bool amx_cpuid = false;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
      amx_cpuid =
          ((d >> 22) & 1u) && ((d >> 24) & 1u);  // CPUID.(EAX=7, ECX=0):EDX[22] AMX-BF16, [24] AMX-TILE
      const unsigned subleaves = a;
      if (subleaves >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d))
        f.avx512_bf16 = f.avx512f && ((a >> 5) & 1u);  // CPUID.(EAX=7, ECX=1):EAX[5]
    }
    if (amx_cpuid && __get_cpuid(1, &a, &b, &c, &d) && ((c >> 27) & 1u)) {  // OSXSAVE: XGETBV works
      unsigned xcr0_low = 0, xcr0_high = 0;
      asm volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
      f.amx_bf16 = ((xcr0_low >> 17) & 3u) == 3u;  // XTILECFG and XTILEDATA
    }
#if defined(__linux__)
    if (f.amx_bf16) {
      constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
      unsigned long permitted = 0;
      f.amx_tiles_granted = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0 &&
                            syscall(SYS_arch_prctl, kArchGetXcompPerm, &permitted) == 0 &&
                            ((permitted >> kXfeatureXtiledata) & 1u);
    }
#endif
#endif
    return f;
  }();
  return features;
}

// The instruction sets the kernels choose between, each including those before it.
enum class Isa {
  Generic,     // portable C++ and Eigen
  Avx512,      // AVX-512F and FMA: our float GEMMs
  Avx512Bf16,  // + AVX512-BF16: bf16 GEMMs by vdpbf16ps
  AmxBf16,     // + AMX-BF16 tiles
};

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Generic:
      return "generic";
    case Isa::Avx512:
      return "avx512";
    case Isa::Avx512Bf16:
      return "avx512_bf16";
    case Isa::AmxBf16:
      return "amx_bf16";
  }
  return "?";
}

inline Isa parse_isa(const std::string& name) {
  for (const Isa isa : {Isa::Generic, Isa::Avx512, Isa::Avx512Bf16, Isa::AmxBf16}) {
    if (name == isa_name(isa)) return isa;
  }
  throw Error("unknown instruction set '" + name + "': expected generic, avx512, avx512_bf16 or amx_bf16");
}

namespace detail {
inline std::atomic<Isa>& isa_cap() {
  static std::atomic<Isa> cap{[] {
    const char* env = std::getenv("RESNET_MAX_ISA");
    if (!env || !*env) return Isa::AmxBf16;
    try {
      return parse_isa(env);
    } catch (const Error& e) {
      throw Error(std::string("RESNET_MAX_ISA: ") + e.what());
    }
  }()};
  return cap;
}
}  // namespace detail

// The cap on the instruction sets the kernels use: RESNET_MAX_ISA, else every one the CPU has. Set it before
// running a model: an eval-mode layer repacks its weight for the new path on its next forward.
inline Isa max_isa() {
  return detail::isa_cap().load(std::memory_order_relaxed);
}
inline void set_max_isa(Isa isa) {
  detail::isa_cap().store(isa, std::memory_order_relaxed);
}

// The best instruction set the CPU has, ignoring the cap.
inline Isa cpu_isa() {
  const CpuFeatures& f = cpu_features();
  if (!(f.avx512f && f.fma)) return Isa::Generic;
  if (!f.avx512_bf16) return Isa::Avx512;
  return f.amx_bf16 && f.amx_tiles_granted ? Isa::AmxBf16 : Isa::Avx512Bf16;
}

// The instruction set the kernels use: the CPU's, capped by max_isa().
inline Isa active_isa() {
  return std::min(cpu_isa(), max_isa());
}
inline bool isa_enabled(Isa isa) {
  return isa <= active_isa();
}

}  // namespace resnet
