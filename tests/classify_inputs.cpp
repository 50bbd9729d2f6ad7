// Writes the inputs of the Classify ctests (examples/CMakeLists.txt) into the directory given: image.png, a
// 300x200 RGB gradient written with stb_image_write, gray.png, its 1-channel form, and weights.safetensors
// and weights_gray.safetensors, ResNet18s (ImageNet stem, 1000 classes; 3 and 1 input channels) saved with
// save_safetensors whose head ignores the image: fc.weight 0, fc.bias 10 for class 7 ("cock") and 0
// elsewhere. So classify must print class 7 at e^10 / (e^10 + 999) = 95.66%, then classes 0, 1, 2 ... at
// 0.00% in class order, with the names from imagenet_classes.txt, whichever image it gives whichever model:
// it has to convert the image's channels to the model's to get there.

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <resnet/io/safetensors.hpp>
#include <resnet/resnet.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::filesystem::create_directories(dir);
  const int width = 300, height = 200;
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c)
        pixels[(static_cast<std::size_t>(y) * width + x) * 3 + c] =
            static_cast<std::uint8_t>((x + 2 * y + 80 * c) % 256);
  const std::vector<std::uint8_t> gray = resnet::io::convert_channels(pixels.data(), height, width, 3, 1);
  if (!stbi_write_png((dir + "/image.png").c_str(), width, height, 3, pixels.data(), width * 3) ||
      !stbi_write_png((dir + "/gray.png").c_str(), width, height, 1, gray.data(), width)) {
    std::fprintf(stderr, "cannot write %s/image.png and gray.png\n", dir.c_str());
    return 1;
  }

  for (int channels : {3, 1}) {
    resnet::models::ResNet18<float> model(1000, resnet::models::Stem::ImageNet, channels, /*seed=*/1);
    for (auto& p : model.named_parameters()) {
      if (p.name == "fc.weight") p.value->fill(0.0f);
      if (p.name == "fc.bias") p.value->fill(0.0f)[7] = 10.0f;
    }
    resnet::io::save_safetensors(
        model, dir + (channels == 3 ? "/weights.safetensors" : "/weights_gray.safetensors"));
  }
  std::printf("wrote %s/{image,gray}.png and %s/weights{,_gray}.safetensors\n", dir.c_str(), dir.c_str());
  return 0;
}
