#pragma once
// The check behind every bad-input test: the call throws resnet::Error and its message names what is wrong.

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"

namespace resnet::testing {

// Runs fn, expects resnet::Error, and checks that its message contains every one of `parts`.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected resnet::Error";
  } catch (const resnet::Error& e) {
    const std::string message = e.what();
    for (const auto& part : parts)
      EXPECT_NE(message.find(part), std::string::npos) << "'" << message << "' lacks '" << part << "'";
  }
}

}  // namespace resnet::testing
