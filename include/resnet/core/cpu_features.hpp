#pragma once
// The vector units of the CPU the process runs on, read once: what the kernels choose their paths by
// (kernels/gemm.hpp) and what runtime_info reports. AVX2, FMA and AVX-512F come from the compiler's runtime
// check, which also asks the OS whether it saves the registers (XGETBV); AVX512-BF16 and AMX-BF16 are the
// CPUID bits themselves (leaf 7): the CPU has them. AMX tiles also need the OS's permission per process
// (Linux's arch_prctl(ARCH_REQ_XCOMP_PERM)), which nothing asks for while no kernel uses them. Off x86-64,
// or with a compiler without these builtins, every feature reads false.

#include <string>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <cpuid.h>
#define RESNET_HAVE_CPUID 1
#endif

namespace resnet {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512_bf16 = false;  // vdpbf16ps: bf16 pairs dotted into float
  bool amx_bf16 = false;     // AMX tiles with bf16 products

  // "AVX2, FMA, AVX-512F, AVX512-BF16, no AMX-BF16": each feature, or "no" and its name.
  std::string to_string() const {
    std::string text;
    const auto add = [&text](bool present, const char* name) {
      text += (text.empty() ? "" : ", ") + std::string(present ? "" : "no ") + name;
    };
    add(avx2, "AVX2");
    add(fma, "FMA");
    add(avx512f, "AVX-512F");
    add(avx512_bf16, "AVX512-BF16");
    add(amx_bf16, "AMX-BF16");
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
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
      f.amx_bf16 = (d >> 22) & 1u;  // CPUID.(EAX=7, ECX=0):EDX[22]
      const unsigned subleaves = a;
      if (subleaves >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d))
        f.avx512_bf16 = f.avx512f && ((a >> 5) & 1u);  // CPUID.(EAX=7, ECX=1):EAX[5]
    }
#endif
    return f;
  }();
  return features;
}

}  // namespace resnet
