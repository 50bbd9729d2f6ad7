#pragma once
// The umbrella header: everything a user needs.

#include "resnet/core/error.hpp"
#include "resnet/core/parallel.hpp"
#include "resnet/core/rng.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/models/resnet.hpp"
#include "resnet/nn/adaptive_avgpool2d.hpp"
#include "resnet/nn/basic_block.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/cross_entropy_loss.hpp"
#include "resnet/nn/init.hpp"
#include "resnet/nn/linear.hpp"
#include "resnet/nn/maxpool2d.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/nn/relu.hpp"
#include "resnet/optim/sgd.hpp"
