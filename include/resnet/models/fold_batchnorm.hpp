#pragma once
// fold_batchnorm(model): an inference-only copy of a ResNet (any block, either stem) in which every
// BatchNorm that directly follows a convolution, in its eval-mode form, is folded into it
// (nn::fold_conv_batchnorm), so inference runs one conv with a bias where it ran a conv and a BatchNorm (a
// pre-activation model keeps the BatchNorms that a ReLU separates from the next conv: each block's bn1 and
// the final bn). The trainable model is only read:
// it keeps training, and the folded copy does not follow it (fold again after training more).
//
//   auto fast = models::fold_batchnorm(net);   // same logits as net.eval() forward, to rounding
//
// The copy is the same model type, lowered by its own fold_batchnorm() (ResNet::fold_batchnorm), so there is
// one model tree for training, eval and the folded form. It keeps torchvision's names for what remains
// ("conv1.weight", "conv1.bias", "layer2.0.downsample.0.bias", "fc.weight", ...), so save_safetensors can
// write it; it has no backward, and forward refuses training mode.

#include <algorithm>

#include "resnet/models/resnet.hpp"
#include "resnet/nn/conv_bn.hpp"

namespace resnet::models {

using nn::fold_conv_batchnorm;

template <typename T, typename Block>
ResNet<T, Block> fold_batchnorm(const ResNet<T, Block>& model) {
  check(!model.is_folded(), "fold_batchnorm: the model is folded already");
  ResNet<T, Block> folded(model.options());
  // Same architecture, so the same names and shapes in the same order. named_parameters() is not const, but
  // only the values are read.
  auto& source = const_cast<ResNet<T, Block>&>(model);
  const auto copy = [](auto from, auto to) {
    for (std::size_t i = 0; i < from.size(); ++i)
      std::copy_n(from[i].value->cdata(), from[i].value->numel(), to[i].value->data());
  };
  copy(source.named_parameters(), folded.named_parameters());
  copy(source.named_buffers(), folded.named_buffers());
  folded.set_precision(model.precision());
  folded.fold_batchnorm();
  return folded;
}

}  // namespace resnet::models
