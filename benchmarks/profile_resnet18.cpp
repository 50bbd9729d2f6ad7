// Per-layer profile of a ResNet18 training step (or eval forward): the network of models/resnet.hpp rebuilt
// from the same ConvBn units and fused kernels as models/basic_block.hpp, each conv, BatchNorm and
// elementwise call timed on its own, forward and backward separately. Prints one row per layer kind and stage
// with milliseconds per step and, for convolutions, GFLOP/s, % of the peak (FP32 FMA, or TDPBF16PS /
// VDPBF16PS in bf16) and the forward's GB/s (input and output in float, the weight in the operand type: the
// least a conv moves).
//
//   profile_resnet18 [--batch N] [--size S] [--channels C] [--width W] [--threads T] [--steps S] [--eval]
//                    [--precision P]
// --precision fp32|bf16|auto (default auto, as the examples).
// --size 224 builds the ImageNet stem (7x7/2 conv + max-pool), any other size the CIFAR one (3x3 conv, no
// pool): 32 for CIFAR-10, 28 with --channels 1 for Fashion-MNIST. --width: channels of the first stage (64,
// as torchvision; train_cifar10's --width).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "bf16_peak.hpp"
#include "fma_peak.hpp"
#include "resnet/core/precision.hpp"
#include "resnet/kernels/elementwise.hpp"
#include "resnet/nn/adaptive_avgpool2d.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/conv_bn.hpp"
#include "resnet/nn/linear.hpp"
#include "resnet/nn/maxpool2d.hpp"
#include "resnet/nn/relu.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using resnet::Tensor;
namespace nn = resnet::nn;

struct Row {
  double forward_ms = 0, backward_ms = 0, forward_flops = 0, forward_bytes = 0;
};

// Times every call under a row name ("layer3 conv", ...); flops are per forward.
class Profile {
 public:
  template <typename F>
  Tensor<float> forward(const std::string& row, double flops, F&& f, double bytes = 0) {
    const auto start = Clock::now();
    Tensor<float> y = f();
    rows_[row].forward_ms += ms_since(start);
    rows_[row].forward_flops += flops;
    rows_[row].forward_bytes += bytes;
    return y;
  }
  template <typename F>
  Tensor<float> backward(const std::string& row, F&& f) {
    const auto start = Clock::now();
    Tensor<float> y = f();
    rows_[row].backward_ms += ms_since(start);
    return y;
  }
  const std::map<std::string, Row>& rows() const { return rows_; }
  void clear() { rows_.clear(); }

 private:
  static double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  }
  std::map<std::string, Row> rows_;
};

struct Block {
  std::string stage;
  nn::ConvBn<float> branch1, branch2;
  bool down;
  nn::ConvBn<float> shortcut;
  Tensor<float> output;  // the block's ReLU output, which BasicBlock keeps (it recomputes bn1's)
  Block(std::string stage_name, int in, int out, int stride)
      : stage(std::move(stage_name)),
        branch1(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false), nn::Activation::ReLU),
        branch2(nn::Conv2dOptions(out, out, 3).padding(1).bias(false), nn::Activation::None),
        down(stride != 1 || in != out),
        shortcut(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false), nn::Activation::None) {}
};

class Network {
 public:
  Network(bool cifar, int num_classes, int in_channels, int width)
      : cifar_(cifar),
        conv1_(nn::Conv2dOptions(in_channels, width, cifar ? 3 : 7)
                   .stride(cifar ? 1 : 2)
                   .padding(cifar ? 1 : 3)
                   .bias(false)),
        bn1_(width),
        pool_(3, 2, 1),
        avgpool_(1, 1),
        fc_(8 * width, num_classes) {
    const int widths[4] = {width, 2 * width, 4 * width, 8 * width};
    int in = width;
    for (int s = 0; s < 4; ++s) {
      for (int b = 0; b < 2; ++b) {
        blocks_.emplace_back("layer" + std::to_string(s + 1), in, widths[s], b == 0 && s > 0 ? 2 : 1);
        in = widths[s];
      }
    }
  }

  void train(bool on) {
    each_module([on](auto& m) { m.train(on); });
  }
  void set_precision(resnet::Precision precision) {
    each_module([precision](auto& m) { m.set_precision(precision); });
  }

  Tensor<float> forward(Profile& p, const Tensor<float>& input) {
    Tensor<float> x = conv(p, "stem", conv1_, input);
    x = p.forward("stem bn", 0, [&] { return bn1_.forward(x); });
    x = p.forward("stem relu", 0, [&] { return relu_.forward(x); });
    if (!cifar_) x = p.forward("stem maxpool", 0, [&] { return pool_.forward(x); });
    for (Block& b : blocks_) {
      Tensor<float> r = conv(p, b.stage, b.branch1.conv(), x);
      const Tensor<float> hidden =
          p.forward(b.stage + " bn+relu", 0, [&] { return b.branch1.bn().forward(r, nn::Activation::ReLU); });
      r = conv(p, b.stage, b.branch2.conv(), hidden, nn::Cache::None);
      r = p.forward(b.stage + " bn", 0, [&] { return b.branch2.bn().forward(r); });
      Tensor<float> shortcut = x;
      if (b.down) {
        shortcut = conv(p, b.stage + " 1x1", b.shortcut.conv(), x);
        shortcut = p.forward(b.stage + " bn", 0, [&] { return b.shortcut.bn().forward(shortcut); });
      }
      x = p.forward(b.stage + " add+relu", 0, [&] {
        Tensor<float> sum(r.shape());
        resnet::kernels::add_relu(r.data(), shortcut.data(), sum.data(), sum.numel());
        return sum;
      });
      b.output = x;
    }
    x = p.forward("head pool+fc", 0, [&] {
      Tensor<float> pooled = avgpool_.forward(x);
      return fc_.forward(pooled.reshape({pooled.size(0), pooled.size(1)}));
    });
    pooled_shape_ = {x.size(0), fc_.in_features(), 1, 1};
    return x;
  }

  void backward(Profile& p, const Tensor<float>& grad_logits) {
    Tensor<float> g = p.backward(
        "head pool+fc", [&] { return avgpool_.backward(fc_.backward(grad_logits).reshape(pooled_shape_)); });
    for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) {
      Block& b = *it;
      const Tensor<float> hidden = p.backward(b.stage + " bn+relu", [&] { return b.branch1.output_again(); });
      Tensor<float> gr = p.backward(b.stage + " bn", [&] { return b.branch2.bn().backward(g, b.output); });
      gr = p.backward(b.stage + " conv",
                      [&] { return b.branch2.conv().backward(gr, nn::InputGrad::Compute, hidden); });
      gr = p.backward(b.stage + " bn+relu", [&] { return b.branch1.bn().backward(gr, hidden); });
      gr = p.backward(b.stage + " conv", [&] { return b.branch1.conv().backward(gr); });
      if (b.down) {
        Tensor<float> gs = p.backward(b.stage + " bn", [&] { return b.shortcut.bn().backward(g, b.output); });
        gs = p.backward(b.stage + " 1x1 conv", [&] { return b.shortcut.conv().backward(gs); });
        g = p.backward(b.stage + " add+relu", [&] {
          resnet::kernels::add(gr.data(), gs.data(), gr.data(), gr.numel());
          return gr;
        });
      } else {
        g = p.backward(b.stage + " add+relu", [&] {
          resnet::kernels::add_relu_backward(b.output.data(), g.data(), gr.data(), gr.numel());
          return gr;
        });
      }
    }
    if (!cifar_) g = p.backward("stem maxpool", [&] { return pool_.backward(g); });
    g = p.backward("stem relu", [&] { return relu_.backward(g); });
    g = p.backward("stem bn", [&] { return bn1_.backward(g); });
    // As ResNet's training step: no input gradient.
    p.backward("stem conv", [&] { return conv1_.backward(g, nn::InputGrad::Skip); });
  }

 private:
  // Cache::None: as BasicBlock runs conv2, whose input backward recomputes.
  Tensor<float> conv(Profile& p, const std::string& stage, nn::Conv2d<float>& c, const Tensor<float>& x,
                     nn::Cache cache = nn::Cache::Input) {
    const std::int64_t o =
        resnet::kernels::window_output_size(x.size(2), c.kernel_size(), c.stride(), c.padding());
    const double flops = 2.0 * static_cast<double>(x.size(0) * c.out_channels() * o * o) * c.in_channels() *
                         c.kernel_size() * c.kernel_size();
    const double operand = c.precision() == resnet::Precision::BF16 ? 2 : 4;
    const double bytes = 4.0 * static_cast<double>(x.numel() + x.size(0) * c.out_channels() * o * o) +
                         operand * static_cast<double>(c.weight().numel());
    return p.forward(
        stage + " conv", flops, [&] { return c.forward(x, {}, cache); }, bytes);
  }

  template <typename F>
  void each_module(F&& f) {
    f(conv1_), f(bn1_), f(relu_), f(pool_), f(avgpool_), f(fc_);
    for (Block& b : blocks_) {
      for (nn::ConvBn<float>* unit : {&b.branch1, &b.branch2, &b.shortcut})
        f(unit->conv()), f(unit->bn());
    }
  }

  bool cifar_;
  nn::Conv2d<float> conv1_;
  nn::BatchNorm2d<float> bn1_;
  nn::ReLU<float> relu_;
  nn::MaxPool2d<float> pool_;
  std::vector<Block> blocks_;
  nn::AdaptiveAvgPool2d<float> avgpool_;
  nn::Linear<float> fc_;
  std::vector<std::int64_t> pooled_shape_;
};

}  // namespace

int main(int argc, char** argv) {
  int batch = 128, size = 32, channels = 3, width = 64, threads = 2, steps = 3;
  bool eval = false;
  std::string precision_name = "auto";
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (!std::strcmp(argv[i], "--batch"))
      batch = next();
    else if (!std::strcmp(argv[i], "--size"))
      size = next();
    else if (!std::strcmp(argv[i], "--channels"))
      channels = next();
    else if (!std::strcmp(argv[i], "--width"))
      width = next();
    else if (!std::strcmp(argv[i], "--threads"))
      threads = next();
    else if (!std::strcmp(argv[i], "--steps"))
      steps = next();
    else if (!std::strcmp(argv[i], "--eval"))
      eval = true;
    else if (!std::strcmp(argv[i], "--precision") && i + 1 < argc)
      precision_name = argv[++i];
    else {
      std::fprintf(
          stderr,
          "usage: %s [--batch N] [--size S] [--channels C] [--width W] [--threads T] [--steps S] [--eval] "
          "[--precision fp32|bf16|auto]\n",
          argv[0]);
      return 2;
    }
  }
  if (batch < 1 || size < 8 || channels < 1 || width < 1 || threads < 1 || steps < 1) {
    std::fprintf(stderr,
                 "profile_resnet18: --batch, --channels, --width, --threads and --steps must be positive "
                 "and --size at least 8\n");
    return 2;
  }
  resnet::Precision precision;
  try {
    precision = resnet::parse_precision(precision_name);
  } catch (const resnet::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  resnet::set_num_threads(threads);
  const bool bf16 = precision == resnet::Precision::BF16;
  const double bf16_peak = bf16 ? resnet::bench::bf16_peak_gflops(threads) : 0;
  const double peak = bf16_peak > 0 ? bf16_peak : resnet::bench::fma_peak_gflops(threads);
  const bool cifar = size != 224;
  Network net(cifar, cifar ? 10 : 1000, channels, width);
  net.train(!eval);
  net.set_precision(precision);
  resnet::Rng rng(1);
  Tensor<float> images({batch, channels, size, size});
  images.fill_normal(rng);
  Tensor<float> grad_logits({batch, cifar ? 10 : 1000}, 1.0f / batch);

  Profile prof;
  double total_ms = 0;
  for (int step = 0; step <= steps; ++step) {  // step 0 warms up and is discarded
    if (step == 1) prof.clear();
    const auto start = Clock::now();
    net.forward(prof, images);
    if (!eval) net.backward(prof, grad_logits);
    if (step > 0) total_ms += std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  }
  std::printf(
      "ResNet18 width %d %s batch %d, %dx%dx%d, %d threads, %d steps, %s on %s; %s peak %.0f GFLOP/s\n",
      width, eval ? "eval forward" : "training step (no loss/SGD)", batch, channels, size, size, threads,
      steps, resnet::precision_name(precision), resnet::isa_name(resnet::active_isa()),
      bf16_peak > 0 ? resnet::bench::bf16_peak_instruction() : "FMA", peak);
  std::printf("%-20s %10s %10s %8s %8s %8s %8s %8s\n", "layer", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s",
              "fwd %pk", "bwd %pk", "fwd GB/s");
  double sum_ms = 0, conv_ms = 0, conv_flops = 0;
  for (const auto& [name, row] : prof.rows()) {
    const double f = row.forward_ms / steps, b = row.backward_ms / steps, fl = row.forward_flops / steps;
    sum_ms += f + b;
    if (fl > 0) {
      const double fg = fl / f / 1e6, bg = eval ? 0 : 2 * fl / b / 1e6;
      conv_ms += f + b;
      conv_flops += fl * (eval ? 1 : 3);
      std::printf("%-20s %10.1f %10.1f %8.1f %8.1f %7.0f%% %7.0f%% %8.1f\n", name.c_str(), f, b, fg, bg,
                  100 * fg / peak, 100 * bg / peak, row.forward_bytes / steps / f / 1e6);
    } else {
      std::printf("%-20s %10.1f %10.1f\n", name.c_str(), f, b);
    }
  }
  const double step_ms = total_ms / steps;
  std::printf(
      "sum of layers %.1f ms, step %.1f ms (%.1f images/s); convs %.1f ms = %.0f%% of the step at "
      "%.1f GFLOP/s (%.0f%% of peak)\n",
      sum_ms, step_ms, 1000.0 * batch / step_ms, conv_ms, 100 * conv_ms / step_ms, conv_flops / conv_ms / 1e6,
      100 * conv_flops / conv_ms / 1e6 / peak);
}
