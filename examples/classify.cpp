// classify: one image file through a ResNet from a safetensors file, top-k classes with their softmax
// probabilities.
//
//   classify --weights resnet50.safetensors cat.jpg [--arch resnet50] [--top 5] [--benchmark N] [--threads N]
//
// Weights: a state dict of torchvision's ResNet family, resnet18 ... wide_resnet101_2, resnext50_32x4d,
// resnext101_32x8d (tools/export_torchvision.py --arch resnet50 --pretrained writes ImageNet's), or a file
// our save_safetensors wrote. The model is read from the tensor shapes (architectures.hpp: the block, the
// blocks per stage, the stem from conv1.weight, the class count from fc.weight); --arch names the one the
// file must hold, and a file holding another is refused. Image: PNG or JPEG (stb_image), as RGB or grayscale
// (alpha dropped), converted to the channels of the weights' conv1 (io::convert_channels: PIL's convert("L")
// for a grayscale model, the channel repeated for an RGB one); then torchvision's evaluation transform
// (io/image.hpp): shorter side to 256 with antialiased bilinear resizing (--no-antialias: plain bilinear, as
// Resize(antialias=False) on a tensor), centre crop 224, ImageNet mean and std (for a grayscale model, their
// luma: the same weights of the three channels). The model runs with BatchNorm folded into the convolutions
// (same logits, less work); --no-fold keeps it.
// --benchmark N times N forward passes at batch 1 (after one warm-up) and reports median, mean and minimum.

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#include <stb_image.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "architectures.hpp"

#include <resnet/io/image.hpp>
#include <resnet/io/safetensors.hpp>
#include <resnet/models/fold_batchnorm.hpp>
#include <resnet/resnet.hpp>

// CMake points this at examples/imagenet_classes.txt; --labels overrides it.
#ifndef RESNET_IMAGENET_CLASSES
#define RESNET_IMAGENET_CLASSES ""
#endif

namespace {

using resnet::Tensor;

struct Image {
  int width = 0, height = 0, channels = 0;  // channels: 1 (grayscale) or 3 (RGB)
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels{nullptr, stbi_image_free};  // [height, width, channels]
};

// A grayscale file (with or without alpha) as one channel, any other as RGB.
Image load_image(const std::string& path) {
  Image image;
  int channels_in_file = 0;
  resnet::check(stbi_info(path.c_str(), &image.width, &image.height, &channels_in_file) == 1,
                "classify: cannot read image ", path, ": ", stbi_failure_reason());
  image.channels = channels_in_file <= 2 ? 1 : 3;
  image.pixels.reset(stbi_load(path.c_str(), &image.width, &image.height, &channels_in_file, image.channels));
  resnet::check(image.pixels != nullptr, "classify: cannot read image ", path, ": ", stbi_failure_reason());
  return image;
}

// One class name a line; "class N" for every class when the file does not have exactly one per class (said
// on stderr when the file was asked for: the default ImageNet names just do not fit other class counts).
std::vector<std::string> load_labels(const std::string& path, int num_classes, bool asked_for) {
  std::vector<std::string> labels;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    labels.push_back(line);
  if (static_cast<int>(labels.size()) != num_classes) {
    if (asked_for)
      std::fprintf(stderr, "classify: %s has %zu names for %d classes; printing class numbers\n",
                   path.c_str(), labels.size(), num_classes);
    labels.clear();
    for (int c = 0; c < num_classes; ++c)
      labels.push_back("class " + std::to_string(c));
  }
  return labels;
}

// What the command line asks for.
struct Options {
  std::string weights_path, image_path, labels_path = RESNET_IMAGENET_CLASSES, arch, precision = "auto";
  int top = 5, benchmark = 0, threads = 0;
  bool labels_given = false, no_fold = false, no_antialias = false;
};

// The image through `model`, loaded from `weights`: the top classes, then the optional timing.
template <typename Model>
void classify(Model& model, const resnet::io::Safetensors& weights, const Options& o) {
  resnet::io::load_state(model, weights, {}, o.weights_path);
  model.eval();
  std::optional<Model> folded;
  if (!o.no_fold) folded.emplace(resnet::models::fold_batchnorm(model));
  const resnet::Precision chosen = resnet::parse_precision(o.precision);
  model.set_precision(chosen);
  if (folded) folded->set_precision(chosen);
  std::printf("Precision: %s%s\n", resnet::precision_name(chosen), o.precision == "auto" ? " (auto)" : "");
  const auto forward = [&](const Tensor<float>& x) { return folded ? folded->forward(x) : model.forward(x); };

  const Image image = load_image(o.image_path);
  const int channels = model.in_channels();
  const std::vector<std::uint8_t> pixels =
      resnet::io::convert_channels(image.pixels.get(), image.height, image.width, image.channels, channels);
  resnet::io::ImagePreprocessing preprocessing;
  preprocessing.antialias = !o.no_antialias;
  if (channels == 1) {
    const auto luma = [](const std::vector<float>& rgb) {
      return std::vector<float>{0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2]};
    };
    preprocessing.mean = luma(preprocessing.mean);
    preprocessing.std = luma(preprocessing.std);
  }
  const Tensor<float> input =
      resnet::io::preprocess_image<float>(pixels.data(), image.height, image.width, channels, preprocessing);
  const auto [h, w] = resnet::io::resized_shape(image.height, image.width, preprocessing.resize);
  const char* conversion = image.channels == channels ? ""
                           : channels == 1            ? ", RGB to grayscale (ITU-R 601-2 luma)"
                                                      : ", grayscale repeated to RGB";
  std::printf("%s: %dx%d pixels%s, resized to %dx%d, centre crop %dx%d\n", o.image_path.c_str(), image.width,
              image.height, conversion, w, h, preprocessing.crop, preprocessing.crop);
  std::printf("%s (%s stem, %s%d classes, BatchNorm %s) from %s\n",
              model.architecture().at("architecture").c_str(),
              model.stem() == resnet::models::Stem::ImageNet ? "imagenet" : "cifar",
              channels == 1 ? "grayscale, " : "", model.num_classes(), folded ? "folded" : "separate",
              o.weights_path.c_str());

  // Classes by probability; ties keep class order.
  const Tensor<float> probability = resnet::nn::softmax(forward(input));
  const int classes = model.num_classes();
  std::vector<int> order(static_cast<std::size_t>(classes));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return probability[a] > probability[b]; });
  const std::vector<std::string> labels = load_labels(o.labels_path, classes, o.labels_given);
  const int top = std::min(o.top, classes);
  std::printf("top %d:\n", top);
  for (int k = 0; k < top; ++k) {
    const int c = order[static_cast<std::size_t>(k)];
    std::printf("%4d %7.2f%%  %s (%d)\n", k + 1, 100.0 * probability[c],
                labels[static_cast<std::size_t>(c)].c_str(), c);
  }

  if (o.benchmark > 0) {
    forward(input);  // warm-up: workspaces, caches
    std::vector<double> ms;
    for (int i = 0; i < o.benchmark; ++i) {
      const auto start = std::chrono::steady_clock::now();
      forward(input);
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(ms.begin(), ms.end());
    const double median = ms.size() % 2 ? ms[ms.size() / 2] : (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]) / 2;
    std::printf(
        "benchmark: %d forward passes at batch 1, %d thread%s: median %.2f ms, mean %.2f ms, min %.2f ms\n",
        o.benchmark, resnet::num_threads(), resnet::num_threads() == 1 ? "" : "s", median,
        std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size()), ms.front());
  }
}

// The model to build: the one the file's shapes describe, which --arch, when given, must name.
arch::FileModel model_for(const resnet::io::Safetensors& weights, const Options& o) {
  arch::FileModel file = arch::torchvision_model_in(weights, "classify: " + o.weights_path);
  resnet::check(file.args.in_channels == 3 || file.args.in_channels == 1, "classify: ", o.weights_path,
                " is for ", file.args.in_channels,
                "-channel images; classify gives a model RGB or grayscale ones");
  if (o.arch.empty()) return file;
  const arch::Arch asked = arch::parse_arch(o.arch);
  resnet::check(asked.torchvision(), "classify: --arch ", o.arch, " is not one of torchvision's models (",
                arch::arch_names(true), ")");
  resnet::check(file.arch.name == asked.name, "classify: ", o.weights_path, " holds a ", file.arch.name,
                " (by its tensor shapes; base width ", file.args.width, "), not the ", asked.name,
                " --arch names");
  file.arch = asked;
  return file;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Classify an image with a ResNet from a safetensors file"};
  Options o;
  app.add_option("--weights", o.weights_path,
                 "safetensors file with torchvision names (resnet18 ... wide_resnet101_2, resnext)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("image", o.image_path, "PNG or JPEG file")->required()->check(CLI::ExistingFile);
  app.add_option("--arch", o.arch,
                 "the model the weights must be: " + arch::arch_names(true) +
                     " (default: what the file's tensor shapes describe)");
  app.add_option("--top", o.top, "how many classes to print")->check(CLI::PositiveNumber);
  app.add_option("--benchmark", o.benchmark, "time N forward passes at batch 1")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--threads", o.threads, "threads (default: OMP_NUM_THREADS or all cores)")
      ->check(CLI::PositiveNumber);
  app.add_option("--precision", o.precision, "fp32, bf16 or auto (bf16 where the CPU has AVX512-BF16 or AMX)")
      ->check(CLI::IsMember({"fp32", "bf16", "auto"}))
      ->capture_default_str();
  app.add_option("--labels", o.labels_path, "class names, one a line")->capture_default_str();
  app.add_flag("--no-fold", o.no_fold, "run with separate BatchNorm layers");
  app.add_flag("--no-antialias", o.no_antialias, "resize with plain bilinear interpolation");
  CLI11_PARSE(app, argc, argv);
  o.labels_given = app.count("--labels") > 0;

  try {
    if (o.threads > 0) resnet::set_num_threads(o.threads);
    std::printf("%s\n", resnet::runtime_info().c_str());
    const resnet::io::Safetensors weights = resnet::io::read_safetensors(o.weights_path);
    const arch::FileModel file = model_for(weights, o);
    arch::with_torchvision_model(file.arch, file.args, [&](auto& model) { classify(model, weights, o); });
  } catch (const resnet::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
