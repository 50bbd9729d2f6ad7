#pragma once
// The umbrella header: everything a user needs.

#include "resnet/core/error.hpp"
#include "resnet/core/parallel.hpp"
#include "resnet/core/rng.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/nn/init.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/nn/relu.hpp"
