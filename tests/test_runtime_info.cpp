// models/runtime_info.hpp: the thread count set, the CPU features and GEMM path, and per conv the algorithm
// its kernels::conv_plan picks (with the weight packed, as an eval-mode Conv2d keeps it, where the plan has a
// packed form).

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"

namespace {

using resnet::kernels::ConvShape;

// Restores the thread count a test changes.
struct ThreadsGuard {
  int saved = resnet::num_threads();
  ~ThreadsGuard() { resnet::set_num_threads(saved); }
};

TEST(RuntimeInfo, NamesThreadsCpuAndGemm) {
  const ThreadsGuard guard;
  for (int threads : {1, 3}) {
    resnet::set_num_threads(threads);
    const std::string info = resnet::runtime_info();
#ifdef _OPENMP
    EXPECT_NE(info.find("threads: " + std::to_string(threads) + " (OpenMP on)"), std::string::npos) << info;
#else
    EXPECT_NE(info.find("threads: 1 (OpenMP off)"), std::string::npos) << info;
#endif
  }
  const std::string info = resnet::runtime_info();
  EXPECT_EQ(info.rfind("CPU: " + resnet::cpu_features().to_string() + ";", 0), 0u) << info;
  EXPECT_NE(info.find("; kernels: " + std::string(resnet::isa_name(resnet::active_isa())) + "; threads: "),
            std::string::npos)
      << info;
  EXPECT_NE(info.find("\nGEMM: float on " + resnet::kernels::gemm_path<float>() + ", bf16 on " +
                      resnet::kernels::gemm_path<resnet::bfloat16>() + ", double on Eigen ("),
            std::string::npos)
      << info;
  const bool ours = resnet::kernels::avx512::cpu_supported();
  EXPECT_EQ(resnet::kernels::gemm_path<float>().rfind("our AVX-512 SGEMM", 0) == 0, ours);
  EXPECT_NE(info.find("\nConv search: " + std::string(resnet::conv_search() ? "on" : "off") + "; choices: "),
            std::string::npos)
      << info;
  EXPECT_EQ(std::count(info.begin(), info.end(), '\n'), 2) << "three lines";
}

TEST(RuntimeInfo, CpuFeaturesSpellEachFeature) {
  resnet::CpuFeatures f;
  EXPECT_EQ(f.to_string(), "no AVX2, no FMA, no AVX-512F, no AVX512-BF16, no AMX-BF16");
  f.avx2 = f.avx512f = f.amx_bf16 = f.amx_tiles_granted = true;
  EXPECT_EQ(f.to_string(), "AVX2, no FMA, AVX-512F, no AVX512-BF16, AMX-BF16");
  f.amx_tiles_granted = false;
  EXPECT_EQ(f.to_string(), "AVX2, no FMA, AVX-512F, no AVX512-BF16, AMX-BF16 (tiles refused by the OS)");
  EXPECT_EQ(resnet::kernels::avx512::cpu_supported(),
            resnet::cpu_features().avx512f && resnet::cpu_features().fma);
}

// Linux lists the features of the CPU that the kernel enables in /proc/cpuinfo: the same as ours.
TEST(RuntimeInfo, CpuFeaturesAsLinuxListsThem) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line) && line.rfind("flags", 0) != 0) {
  }
  if (line.rfind("flags", 0) != 0) GTEST_SKIP() << "no x86 flags in /proc/cpuinfo";
  std::istringstream words(line.substr(line.find(':') + 1));
  const std::set<std::string> flags{std::istream_iterator<std::string>(words), {}};
  const resnet::CpuFeatures& f = resnet::cpu_features();
  EXPECT_EQ(f.avx2, flags.count("avx2") == 1);
  EXPECT_EQ(f.fma, flags.count("fma") == 1);
  EXPECT_EQ(f.avx512f, flags.count("avx512f") == 1);
  EXPECT_EQ(f.avx512_bf16, flags.count("avx512_bf16") == 1);
  EXPECT_EQ(f.amx_bf16, flags.count("amx_bf16") == 1);
}

// "name [shape]: algorithm" lines after the header.
std::vector<std::string> conv_lines(const std::string& info) {
  std::vector<std::string> lines;
  std::istringstream in(info);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("  ", 0) == 0) lines.push_back(line.substr(2));
  return lines;
}

TEST(RuntimeInfo, WinogradPerConvAsTheKernelsChoose) {
  // A 3x3 stride-1 conv of 64 channels on 56x56 is Winograd in either mode; on 7x7 (49 outputs) im2col.
  const ConvShape layer1{1, 64, 56, 56, 64, 3, 1, 1}, layer4{1, 512, 7, 7, 512, 3, 1, 1};
  ASSERT_TRUE(resnet::kernels::use_winograd(layer1) && resnet::kernels::use_winograd(layer1, true));
  ASSERT_FALSE(resnet::kernels::use_winograd(layer4) || resnet::kernels::use_winograd(layer4, true));

  resnet::models::ResNet18<float> net(1000, resnet::models::Stem::ImageNet);
  for (bool training : {true, false}) {
    net.train(training);
    const std::string info = resnet::runtime_info(net, {1, 3, 224, 224});
    EXPECT_EQ(info.rfind(resnet::runtime_info() + "\nConvolutions of an input [1, 3, 224, 224] in " +
                             (training ? "training" : "eval") + " mode:\n",
                         0),
              0u)
        << info;
    const std::vector<std::string> lines = conv_lines(info);
    ASSERT_EQ(lines.size(), 20u) << info;  // conv1, 16 in the blocks, 3 downsample
    EXPECT_EQ(lines.front(), "conv1 [1, 3, 224, 224]: im2col");
    EXPECT_NE(std::find(lines.begin(), lines.end(), "layer1.0.conv1 [1, 64, 56, 56]: winograd"), lines.end());
    EXPECT_NE(std::find(lines.begin(), lines.end(), "layer4.1.conv2 [1, 512, 7, 7]: im2col"), lines.end());
    // layer3 at batch 1: 196 outputs, Winograd only with the weight packed (eval mode, where it packs).
    const ConvShape layer3{1, 256, 14, 14, 256, 3, 1, 1};
    const std::string expected = resnet::kernels::algorithm_name(
        resnet::kernels::conv_plan<float>(layer3, resnet::Precision::FP32, !training).forward);
    EXPECT_NE(std::find(lines.begin(), lines.end(), "layer3.1.conv1 [1, 256, 14, 14]: " + expected),
              lines.end())
        << info;
  }
  EXPECT_FALSE(net.is_training());
}

TEST(RuntimeInfo, OneConv) {
  resnet::nn::Conv2d<float> conv(64, 64, 3, 1, 1);
  EXPECT_EQ(conv_lines(resnet::runtime_info(conv, {1, 64, 56, 56})),
            std::vector<std::string>{"Conv2d [1, 64, 56, 56]: winograd"});
  EXPECT_EQ(conv_lines(resnet::runtime_info(conv, {1, 64, 7, 7})),
            std::vector<std::string>{"Conv2d [1, 64, 7, 7]: im2col"});
  EXPECT_THROW(conv.algorithm({1, 3, 7, 7}), resnet::Error);
  resnet::nn::Conv2d<float> unpadded(64, 64, 3);
  EXPECT_THROW(conv.algorithm({0, 64, 7, 7}), resnet::Error);
  EXPECT_THROW(unpadded.algorithm({1, 64, 2, 7}), resnet::Error);  // no output row
  EXPECT_THROW(resnet::runtime_info(unpadded, {1, 64, 2, 2}), resnet::Error);
}

}  // namespace
