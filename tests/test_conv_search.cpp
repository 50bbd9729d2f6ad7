// kernels/conv_search.hpp and io/conv_choices.hpp: off by default the plans are conv_plan's; with search on
// each new key is searched once, among the valid candidates, and cached; choices saved to a file load back
// and are used as they are; a choice that cannot run its shape is refused with the file and entry named; and
// a conv run under a choice other than the rules' gives the same numbers (to float rounding) on any thread
// count.

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "support/compare.hpp"
#include "support/expect_error.hpp"

namespace {

namespace kernels = resnet::kernels;
using kernels::ConvAlgorithm;
using kernels::ConvChoice;
using kernels::ConvShape;
using resnet::Precision;
using resnet::Tensor;

// Search off and no cached choice for the test, and the setting before it back afterwards.
class ConvSearch : public ::testing::Test {
 protected:
  void SetUp() override {
    kernels::clear_conv_choices();
    resnet::set_conv_search(false);
  }
  void TearDown() override {
    kernels::clear_conv_choices();
    resnet::set_conv_search(saved_);
    std::filesystem::remove(path_);
  }
  void write(const std::string& text) const { std::ofstream(path_) << text; }

  const bool saved_ = resnet::conv_search();
  const std::string path_ = (std::filesystem::temp_directory_path() /
                             ("resnet_conv_choices_" + std::to_string(::getpid()) + "_" +
                              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".json"))
                                .string();
};

// Small shapes, so that searching them is quick: a 3x3 "same" conv where the rules take im2col, one where
// they take Winograd, a 1x1, a strided 3x3 and a 5x5.
const std::vector<ConvShape> kShapes = {
    {2, 16, 8, 8, 16, 3, 1, 1}, {2, 16, 16, 16, 16, 3, 1, 1}, {2, 16, 8, 8, 32, 1, 1, 0},
    {2, 8, 9, 9, 16, 3, 2, 1},  {1, 8, 9, 9, 8, 5, 1, 2},
};

bool contains(const std::vector<ConvChoice>& choices, const ConvChoice& c) {
  return std::find(choices.begin(), choices.end(), c) != choices.end();
}

std::string choice_json(const ConvShape& g, const char* precision, const char* mode, const char* forward,
                        const char* weight_grad, bool as_conv) {
  return "{\"format\": \"resnet-conv-choices\", \"version\": 1, \"choices\": [{\"N\": " +
         std::to_string(g.N) + ", \"C\": " + std::to_string(g.C) + ", \"H\": " + std::to_string(g.H) +
         ", \"W\": " + std::to_string(g.W) + ", \"O\": " + std::to_string(g.O) +
         ", \"k\": " + std::to_string(g.k) + ", \"s\": " + std::to_string(g.s) +
         ", \"p\": " + std::to_string(g.p) + ", \"mode\": \"" + mode +
         "\", \"type\": \"float\", \"precision\": \"" + precision + "\", \"isa\": \"" +
         resnet::isa_name(resnet::active_isa()) + "\", \"forward\": \"" + forward +
         "\", \"weight_grad\": \"" + weight_grad +
         "\", \"input_grad_as_conv\": " + (as_conv ? "true" : "false") + "}]}";
}

TEST_F(ConvSearch, OffByDefaultEveryPlanIsTheRules) {
  const char* env = std::getenv("RESNET_CONV_SEARCH");
  if (!env || std::string(env) != "1") {
    EXPECT_FALSE(saved_) << "conv search is on without RESNET_CONV_SEARCH";
  }
  const std::int64_t searches = kernels::conv_searches();
  for (const ConvShape& g : kShapes)
    for (const Precision p : {Precision::FP32, Precision::BF16})
      for (const bool pack : {false, true})
        EXPECT_EQ(kernels::select_conv_plan<float>(g, p, pack), kernels::conv_plan<float>(g, p, pack));
  EXPECT_EQ(kernels::select_conv_plan<double>(kShapes[1], Precision::FP32, false),
            kernels::conv_plan<double>(kShapes[1], Precision::FP32, false));
  EXPECT_EQ(kernels::conv_searches(), searches);
  EXPECT_TRUE(kernels::conv_choices().empty());
  EXPECT_NE(resnet::runtime_info().find("\nConv search: off; choices: 0 searched, 0 loaded"),
            std::string::npos);
}

TEST_F(ConvSearch, CandidatesAreTheValidAlternativesTheRulesFirst) {
  const ConvShape same{2, 16, 8, 8, 16, 3, 1, 1}, pointwise{2, 16, 8, 8, 32, 1, 1, 0};
  const ConvShape strided{2, 8, 9, 9, 16, 3, 2, 1};
  // Forward 2 x (weight gradient, dX): (im2col, col2im), (im2col, conv), (winograd, conv).
  EXPECT_EQ(kernels::conv_candidates<float>(same, Precision::FP32, false).size(), 6u);
  EXPECT_EQ(kernels::conv_candidates<float>(same, Precision::FP32, true).size(), 2u);   // the forward alone
  EXPECT_EQ(kernels::conv_candidates<float>(same, Precision::BF16, false).size(), 2u);  // dX as a conv or not
  EXPECT_EQ(kernels::conv_candidates<float>(pointwise, Precision::FP32, false).size(), 2u);
  EXPECT_EQ(kernels::conv_candidates<float>(strided, Precision::FP32, false).size(), 1u);
  for (const ConvShape& g : kShapes)
    for (const Precision p : {Precision::FP32, Precision::BF16})
      for (const bool pack : {false, true}) {
        const std::vector<ConvChoice> candidates = kernels::conv_candidates<float>(g, p, pack);
        EXPECT_EQ(candidates.front(), kernels::conv_rule<float>(g, p, pack));
        for (const ConvChoice& c : candidates) {
          EXPECT_EQ(kernels::conv_choice_error(g, p, c), "");
          const bool winograd =
              c.forward == ConvAlgorithm::Winograd || c.weight_grad == ConvAlgorithm::Winograd;
          EXPECT_TRUE(!winograd || (p == Precision::FP32 && g.k == 3 && g.s == 1));
          EXPECT_TRUE(!c.input_grad_as_conv || g.s == 1);
          EXPECT_TRUE(c.weight_grad == ConvAlgorithm::Im2col || c.input_grad_as_conv);
          EXPECT_EQ(std::count(candidates.begin(), candidates.end(), c), 1);
        }
      }
}

TEST_F(ConvSearch, SearchesEachNewKeyOnceAmongTheCandidates) {
  resnet::set_conv_search(true);
  for (const ConvShape& g : kShapes)
    for (const Precision p : {Precision::FP32, Precision::BF16})
      for (const bool pack : {false, true}) {
        const std::int64_t before = kernels::conv_searches();
        const kernels::ConvPlan plan = kernels::select_conv_plan<float>(g, p, pack);
        EXPECT_EQ(kernels::conv_searches(), before + 1);
        EXPECT_TRUE(contains(kernels::conv_candidates<float>(g, p, pack), plan.choice()));
        EXPECT_EQ(plan, kernels::conv_plan<float>(g, p, pack, plan.choice()));
        EXPECT_EQ(kernels::select_conv_plan<float>(g, p, pack), plan);  // cached: not timed again
        EXPECT_EQ(kernels::conv_searches(), before + 1);
      }
  const std::vector<kernels::ConvChoiceEntry> entries = kernels::conv_choices();
  EXPECT_EQ(entries.size(), kShapes.size() * 4);
  for (const auto& e : entries)
    EXPECT_EQ(e.source, kernels::ConvChoiceSource::Searched);
  EXPECT_EQ(kernels::conv_choice_count(kernels::ConvChoiceSource::Searched),
            static_cast<std::int64_t>(entries.size()));
  EXPECT_NE(resnet::runtime_info().find("\nConv search: on; choices: 20 searched, 0 loaded"),
            std::string::npos)
      << resnet::runtime_info();

  // Searched choices apply while search is on; off, the rules do again.
  resnet::set_conv_search(false);
  for (const ConvShape& g : kShapes)
    EXPECT_EQ(kernels::select_conv_plan<float>(g, Precision::FP32, false),
              kernels::conv_plan<float>(g, Precision::FP32, false));
}

TEST_F(ConvSearch, Conv2dSearchesOncePerShapeAndMode) {
  resnet::set_conv_search(true);
  resnet::nn::Conv2d<float> conv(16, 16, 3, 1, 1);
  resnet::Rng rng(1);
  Tensor<float> x({2, 16, 8, 8});
  x.fill_normal(rng);
  const std::int64_t before = kernels::conv_searches();
  const Tensor<float> y = conv.forward(x);
  conv.backward(y);  // the same training-mode plan: no second search
  conv.forward(x);
  conv.backward(y);
  EXPECT_EQ(kernels::conv_searches(), before + 1);
  conv.eval();
  conv.forward(x);
  conv.forward(x);
  EXPECT_EQ(kernels::conv_searches(), before + 2);
}

TEST_F(ConvSearch, SavedChoicesLoadBackAndAreUsedWithoutSearching) {
  resnet::set_conv_search(true);
  for (const ConvShape& g : kShapes)
    for (const bool pack : {false, true})
      kernels::select_conv_plan<float>(g, Precision::FP32, pack);
  // And one the search would not give: im2col throughout where the rules take Winograd.
  const ConvShape winograd = kShapes[1];
  ASSERT_EQ(kernels::conv_rule<float>(winograd, Precision::FP32, false).forward, ConvAlgorithm::Winograd);
  const ConvChoice forced{ConvAlgorithm::Im2col, ConvAlgorithm::Im2col, false};
  kernels::set_conv_choice(kernels::conv_choice_key<float>(winograd, Precision::FP32, false), forced);
  const std::vector<kernels::ConvChoiceEntry> saved = kernels::conv_choices();
  resnet::io::save_conv_choices(path_);

  kernels::clear_conv_choices();
  ASSERT_TRUE(kernels::conv_choices().empty());
  EXPECT_EQ(resnet::io::load_conv_choices(path_), saved.size());
  const std::vector<kernels::ConvChoiceEntry> loaded = kernels::conv_choices();
  ASSERT_EQ(loaded.size(), saved.size());
  for (std::size_t i = 0; i < saved.size(); ++i) {
    EXPECT_FALSE(saved[i].key < loaded[i].key || loaded[i].key < saved[i].key) << i;
    EXPECT_EQ(loaded[i].choice, saved[i].choice) << kernels::key_string(saved[i].key);
    EXPECT_EQ(loaded[i].source, kernels::ConvChoiceSource::Loaded);
  }
  EXPECT_EQ(resnet::io::conv_choices_json(), [&] {
    std::ifstream in(path_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }());

  // Loaded choices are used as they are, search on (no timing) or off.
  for (const bool search : {true, false}) {
    resnet::set_conv_search(search);
    const std::int64_t searches = kernels::conv_searches();
    for (const auto& e : loaded)
      EXPECT_EQ(kernels::select_conv_plan<float>(e.key.shape, e.key.precision, e.key.pack_weight).choice(),
                e.choice);
    EXPECT_EQ(kernels::conv_searches(), searches);
  }
  resnet::nn::Conv2d<float> conv(16, 16, 3, 1, 1);
  EXPECT_STREQ(conv.algorithm({2, 16, 16, 16}), "im2col");
}

TEST_F(ConvSearch, AChoiceThatCannotRunItsShapeIsRefusedNamingFileAndEntry) {
  using resnet::testing::expect_error;
  const ConvShape pointwise{2, 16, 8, 8, 32, 1, 1, 0}, same{2, 16, 16, 16, 16, 3, 1, 1};
  const ConvShape strided{2, 8, 9, 9, 16, 3, 2, 1};
  const auto refused = [&](const std::string& text, const std::vector<std::string>& parts) {
    write(text);
    std::vector<std::string> all = {path_};
    all.insert(all.end(), parts.begin(), parts.end());
    expect_error([&] { resnet::io::load_conv_choices(path_); }, all);
    EXPECT_TRUE(kernels::conv_choices().empty()) << text;
  };
  refused(choice_json(pointwise, "fp32", "eval", "winograd", "im2col", false),
          {"entry 0", "[2, 16, 8, 8] -> 32, k 1", "forward winograd needs a 3x3 kernel"});
  refused(choice_json(same, "bf16", "training", "winograd", "im2col", true),
          {"entry 0", "forward winograd runs in fp32 only"});
  refused(choice_json(same, "bf16", "training", "im2col", "winograd", true), {"weight_grad winograd"});
  refused(choice_json(strided, "fp32", "training", "im2col", "im2col", true),
          {"entry 0", "input_grad_as_conv needs stride 1"});
  refused(choice_json(same, "fp32", "training", "im2col", "winograd", false),
          {"entry 0", "weight_grad winograd computes no dX"});
  refused("{\"format\": \"resnet-conv-choices\", \"version\": 1, \"choices\": [", {"not valid JSON"});
  refused("[]", {"not a choices file"});
  refused("{\"format\": \"resnet-conv-choices\", \"version\": 2, \"choices\": []}", {"version 2"});
  std::string text = choice_json(same, "fp32", "training", "im2col", "im2col", true);
  refused(std::string(text).insert(text.find("\"N\""), "\"extra\": 1, "),
          {"entry 0", "unknown field 'extra'"});
  refused(std::string(text).replace(text.find("\"N\""), 3, "\"n\""), {"entry 0", "has no field 'N'"});
  refused(std::string(text).replace(text.find("\"im2col\""), 8, "\"fft\""),
          {"'forward': unknown conv algorithm 'fft'"});
  refused(std::string(text).replace(text.find("true"), 4, "1"), {"'input_grad_as_conv': 1"});
  refused(std::string(text).replace(text.find("16"), 2, "-16"), {"'C': -16"});
  // A file before grouped convs has no "groups" (the valid entry below): 1. Groups that do not divide the
  // channels, and a grouped conv under a choice beyond im2col and col2im, are refused.
  const auto with_groups = [&](const std::string& groups) {
    return std::string(text).insert(text.find("\"N\""), "\"groups\": " + groups + ", ");
  };
  refused(with_groups("3"), {"entry 0", "3 groups do not divide 16 input"});
  refused(with_groups("0"), {"entry 0", "0 groups do not divide"});
  refused(with_groups("4"),
          {"entry 0", "groups 4", "a grouped conv (4 groups) runs im2col with col2im only"});
  const std::string entry = text.substr(text.find("[{") + 1, text.find("}]") - text.find("[{"));
  refused(std::string(text).replace(text.find("}]"), 2, "}, " + entry + "]"), {"entry 1", "repeats entry 0"});
  expect_error([&] { resnet::io::load_conv_choices(path_ + ".missing"); },
               {path_ + ".missing", "cannot open"});

  expect_error(
      [&] {
        kernels::set_conv_choice(kernels::conv_choice_key<float>(pointwise, Precision::FP32, true),
                                 {ConvAlgorithm::Winograd, ConvAlgorithm::Im2col, false});
      },
      {"set_conv_choice", "forward winograd needs a 3x3 kernel"});
  EXPECT_TRUE(kernels::conv_choices().empty());

  write(text);  // the valid entry loads
  EXPECT_EQ(resnet::io::load_conv_choices(path_), 1u);
}

// Runs a conv forward and backward under `choice` (for both its training and eval keys) on `threads`
// threads: y, dx, dw, db and the eval-mode y.
std::vector<Tensor<float>> run_conv(const ConvShape& g, Precision precision, const ConvChoice* choice,
                                    int threads) {
  kernels::clear_conv_choices();
  if (choice) {
    kernels::set_conv_choice(kernels::conv_choice_key<float>(g, precision, false), *choice);
    const ConvChoice forward_only{choice->forward, kernels::conv_rule<float>(g, precision, true).weight_grad,
                                  kernels::conv_rule<float>(g, precision, true).input_grad_as_conv};
    kernels::set_conv_choice(kernels::conv_choice_key<float>(g, precision, true), forward_only);
  }
  const int saved = resnet::num_threads();
  resnet::set_num_threads(threads);
  resnet::nn::Conv2d<float> conv(static_cast<int>(g.C), static_cast<int>(g.O), static_cast<int>(g.k),
                                 static_cast<int>(g.s), static_cast<int>(g.p), true, 3);
  conv.set_precision(precision);
  resnet::Rng rng(11);
  Tensor<float> x({g.N, g.C, g.H, g.W});
  x.fill_normal(rng);
  const Tensor<float> y = conv.forward(x);
  Tensor<float> dy(y.shape());
  dy.fill_normal(rng);
  const Tensor<float> dx = conv.backward(dy);
  EXPECT_STREQ(conv.algorithm(x.shape()),
               kernels::algorithm_name(kernels::select_conv_plan<float>(g, precision, false).forward));
  conv.eval();
  const Tensor<float> y_eval = conv.forward(x);
  resnet::set_num_threads(saved);
  return {y, dx, conv.named_parameters()[0].grad->clone(), conv.named_parameters()[1].grad->clone(), y_eval};
}

TEST_F(ConvSearch, EveryCandidateGivesTheRulesNumbersOnAnyThreadCount) {
  for (const ConvShape& g : kShapes)
    for (const Precision p : {Precision::FP32, Precision::BF16}) {
      const std::vector<Tensor<float>> rule = run_conv(g, p, nullptr, 1);
      for (const ConvChoice& c : kernels::conv_candidates<float>(g, p, false)) {
        const std::string name = kernels::key_string(kernels::conv_choice_key<float>(g, p, false)) + ": " +
                                 kernels::algorithm_name(c.forward) + ", " +
                                 kernels::algorithm_name(c.weight_grad) +
                                 (c.input_grad_as_conv ? ", dX as a conv" : ", dX by col2im");
        const std::vector<Tensor<float>> one = run_conv(g, p, &c, 1), three = run_conv(g, p, &c, 3);
        for (std::size_t i = 0; i < rule.size(); ++i) {
          // Both are exact algorithms on the same operands: they differ by float rounding (Winograd's
          // transforms add a little more).
          EXPECT_LT(resnet::testing::relative_l2(one[i], rule[i]), 1e-5) << name << ", output " << i;
          ASSERT_EQ(one[i].numel(), three[i].numel());
          EXPECT_EQ(std::memcmp(one[i].cdata(), three[i].cdata(), one[i].numel() * sizeof(float)), 0)
              << name << ", output " << i << ": 1 and 3 threads differ";
        }
      }
    }
}

}  // namespace
