#pragma once
// Optional convolution algorithm search, as torch.backends.cudnn.benchmark. Off by default, because the
// default plan must stay a pure function of the shape (conv_rule). When on (set_conv_search, or the
// environment variable RESNET_CONV_SEARCH=1, read at first use), the first plan asked for each new key times
// the valid choices (conv_candidates) on scratch data of that shape, keeps the fastest by median time and
// caches it for the process; searched choices apply while search is on. Choices can also be loaded
// (set_conv_choice; io/conv_choices.hpp saves the cache to a file and loads one): a loaded choice is used as
// it is, without timing, search on or off, so that a run can repeat another's choices. Results are a
// function of the choice, never of the thread count.
//
// select_conv_plan is the one entry point (nn::Conv2d asks it for every plan): a loaded choice, else with
// search on a searched one (searching it now if there is none), else the rules' plan (conv_plan). The cache
// is keyed by ConvChoiceKey (shape, element type, precision, instruction set, packed weight), process-wide
// and behind a mutex; a search holds it while it times, so that searches never run side by side.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "resnet/core/bfloat16.hpp"
#include "resnet/core/cpu_features.hpp"
#include "resnet/core/error.hpp"
#include "resnet/core/precision.hpp"
#include "resnet/core/rng.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/kernels/conv2d.hpp"

namespace resnet {

namespace detail {
inline std::atomic<bool>& conv_search_flag() {
  static std::atomic<bool> on{[] {
    const char* env = std::getenv("RESNET_CONV_SEARCH");
    const std::string value = env ? env : "";
    check(value.empty() || value == "0" || value == "1", "RESNET_CONV_SEARCH: expected 0 or 1, got '", value,
          "'");
    return value == "1";
  }()};
  return on;
}
}  // namespace detail

// Whether convs time their candidate plans for each new shape (kernels/conv_search.hpp): RESNET_CONV_SEARCH,
// else off.
inline bool conv_search() {
  return detail::conv_search_flag().load(std::memory_order_relaxed);
}
inline void set_conv_search(bool on) {
  detail::conv_search_flag().store(on, std::memory_order_relaxed);
}

}  // namespace resnet

namespace resnet::kernels {

// "float" or "double": a conv's element type, as the cache and the choices file name it.
template <typename T>
const char* element_type_name() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "convs run on float or double");
  return std::is_same_v<T, float> ? "float" : "double";
}

// What a choice is cached for: pack_weight is an eval-mode conv's (its weight kept packed).
struct ConvChoiceKey {
  ConvShape shape;
  std::string type;  // element_type_name
  Precision precision;
  Isa isa;
  bool pack_weight;
  bool operator<(const ConvChoiceKey& o) const {
    return std::tuple_cat(shape.tied(), std::tie(type, precision, isa, pack_weight)) <
           std::tuple_cat(o.shape.tied(), std::tie(o.type, o.precision, o.isa, o.pack_weight));
  }
};

// "[128, 64, 32, 32] -> 64, k 3, s 1, p 1, float, fp32, avx512_bf16, training": how messages name a key.
inline std::string key_string(const ConvChoiceKey& key) {
  const ConvShape& g = key.shape;
  return shape_string({g.N, g.C, g.H, g.W}) + " -> " + std::to_string(g.O) + ", k " + std::to_string(g.k) +
         ", s " + std::to_string(g.s) + ", p " + std::to_string(g.p) +
         (g.G == 1 ? "" : ", groups " + std::to_string(g.G)) + ", " + key.type + ", " +
         precision_name(key.precision) + ", " + isa_name(key.isa) +
         (key.pack_weight ? ", eval" : ", training");
}

// Why `choice` cannot be cached for `key`, or "" where it can: a shape with an output, a known element type,
// bf16 on float only, and a choice conv_choice_error accepts.
inline std::string conv_choice_error(const ConvChoiceKey& key, const ConvChoice& choice) {
  const ConvShape& g = key.shape;
  if (std::min({g.N, g.C, g.H, g.W, g.O, g.k, g.s}) < 1 || g.p < 0 || g.OH() < 1 || g.OW() < 1)
    return "the shape gives no output";
  if (key.type != "float" && key.type != "double") return "type '" + key.type + "' is not float or double";
  if (key.precision == Precision::BF16 && key.type != "float") return "bf16 needs float tensors";
  return conv_choice_error(g, key.precision, choice);
}

enum class ConvChoiceSource { Searched, Loaded };

struct ConvChoiceEntry {
  ConvChoiceKey key;
  ConvChoice choice;
  ConvChoiceSource source;
};

namespace detail {
struct ConvChoiceCache {
  std::mutex mutex;
  std::map<ConvChoiceKey, ConvChoiceEntry> entries;
  std::int64_t searches = 0;
};
inline ConvChoiceCache& conv_choice_cache() {
  static ConvChoiceCache cache;
  return cache;
}
}  // namespace detail

// The key of a T conv of shape g, run now (on the instruction set active now).
template <typename T>
ConvChoiceKey conv_choice_key(const ConvShape& g, Precision precision, bool pack_weight) {
  return {g, element_type_name<T>(), precision, active_isa(), pack_weight};
}

// The valid choices for a T conv of shape g, the rules' first. An eval-mode conv (pack_weight) runs only its
// forward, so its candidates differ in the forward algorithm alone and keep the rules' backward.
template <typename T>
std::vector<ConvChoice> conv_candidates(const ConvShape& g, Precision precision, bool pack_weight) {
  const ConvChoice rule = conv_rule<T>(g, precision, pack_weight);
  std::vector<ConvChoice> candidates{rule};
  for (const ConvAlgorithm forward : {ConvAlgorithm::Im2col, ConvAlgorithm::Winograd}) {
    for (const ConvAlgorithm weight_grad : {ConvAlgorithm::Im2col, ConvAlgorithm::Winograd}) {
      for (const bool as_conv : {false, true}) {
        const ConvChoice c = pack_weight ? ConvChoice{forward, rule.weight_grad, rule.input_grad_as_conv}
                                         : ConvChoice{forward, weight_grad, as_conv};
        if (conv_choice_error(g, precision, c).empty() &&
            std::find(candidates.begin(), candidates.end(), c) == candidates.end())
          candidates.push_back(c);
      }
    }
  }
  return candidates;
}

namespace detail {

// The median wall time of `run` over a few calls, after one untimed call (which grows the scratch).
template <typename F>
double median_seconds(F&& run) {
  constexpr int kRepetitions = 3;
  run();
  double seconds[kRepetitions];
  for (double& s : seconds) {
    const auto start = std::chrono::steady_clock::now();
    run();
    s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  std::sort(seconds, seconds + kRepetitions);
  return seconds[kRepetitions / 2];
}

// The option `seconds` gives the least time, the first on ties; not timed when there is one.
template <typename F>
ConvChoice fastest(const std::vector<ConvChoice>& options, F&& seconds) {
  ConvChoice best = options.front();
  if (options.size() == 1) return best;
  double least = seconds(best);
  for (std::size_t i = 1; i < options.size(); ++i) {
    const double t = seconds(options[i]);
    if (t < least) least = t, best = options[i];
  }
  return best;
}

// The fastest of the candidates (the rules' first) on scratch data of the shape, with operands of type Op.
// The forward is timed for each forward algorithm, then, for a training-mode conv, the backward (with dX)
// for each candidate with the fastest forward: no backward choice changes the forward's work, nor the
// forward algorithm the backward's, so the fastest pair is the fastest candidate.
template <typename T, typename Op>
ConvChoice search_conv_choice(const ConvShape& g, Precision precision, bool pack_weight,
                              const std::vector<ConvChoice>& candidates) {
  Rng rng(0);
  Tensor<T> x({g.N, g.C, g.H, g.W}), dy({g.N, g.O, g.OH(), g.OW()}), w({g.O, g.group_depth()});
  for (Tensor<T>* t : {&x, &dy, &w})
    t->fill_normal(rng);
  Tensor<T> y = Tensor<T>::uninitialized(dy.shape()), dx = Tensor<T>::uninitialized(x.shape()), dw(w.shape());
  Tensor<Op> weight, packed;  // Tensors, as the GEMMs want their packed operands 64-byte aligned
  if constexpr (std::is_same_v<Op, T>) {
    weight = w;
  } else {
    weight = Tensor<Op>::uninitialized(w.shape());
    convert(w.cdata(), w.numel(), weight.data());
  }
  ConvWorkspace<T> ws;

  std::vector<ConvChoice> forwards;  // each forward algorithm, with the first candidate's backward
  for (const ConvChoice& c : candidates) {
    const ConvChoice forward{c.forward, candidates.front().weight_grad,
                             candidates.front().input_grad_as_conv};
    if (std::find(forwards.begin(), forwards.end(), forward) == forwards.end()) forwards.push_back(forward);
  }
  const ConvChoice best = fastest(forwards, [&](const ConvChoice& c) {
    const ConvPlan plan = conv_plan<T>(g, precision, pack_weight, c);
    packed = plan.packed_size > 0 ? Tensor<Op>::uninitialized({plan.packed_size}) : Tensor<Op>();
    if (plan.packed_size > 0) pack_conv_weight(weight.cdata(), plan, packed.data());
    return median_seconds([&] {
      conv2d_forward(plan, x.cdata(), weight.cdata(), ConvEpilogue<T>{}, y.data(), ws,
                     plan.packed_size > 0 ? packed.cdata() : nullptr);
    });
  });
  if (pack_weight) return best;
  std::vector<ConvChoice> backwards;
  std::copy_if(candidates.begin(), candidates.end(), std::back_inserter(backwards),
               [&](const ConvChoice& c) { return c.forward == best.forward; });
  return fastest(backwards, [&](const ConvChoice& c) {
    const ConvPlan plan = conv_plan<T>(g, precision, false, c);
    return median_seconds([&] {
      conv2d_backward(plan, x.cdata(), weight.cdata(), dy.cdata(), dx.data(), dw.data(),
                      static_cast<T*>(nullptr), ws);
    });
  });
}

}  // namespace detail

// The plan a T conv of shape g runs (pack_weight: an eval-mode conv, its weight kept packed): the loaded
// choice for its key, else with search on the searched one (timed now, the first time), else conv_plan's.
template <typename T>
ConvPlan select_conv_plan(const ConvShape& g, Precision precision, bool pack_weight) {
  detail::ConvChoiceCache& cache = detail::conv_choice_cache();
  const ConvChoiceKey key = conv_choice_key<T>(g, precision, pack_weight);
  const bool search = conv_search();
  {
    const std::lock_guard<std::mutex> lock(cache.mutex);
    const auto found = cache.entries.find(key);
    if (found != cache.entries.end() && (search || found->second.source == ConvChoiceSource::Loaded))
      return conv_plan<T>(g, precision, pack_weight, found->second.choice);
    if (search) {
      const std::vector<ConvChoice> candidates = conv_candidates<T>(g, precision, pack_weight);
      const ConvChoice choice = [&] {
        if constexpr (std::is_same_v<T, float>) {
          if (precision == Precision::BF16)
            return detail::search_conv_choice<T, bfloat16>(g, precision, pack_weight, candidates);
        }
        return detail::search_conv_choice<T, T>(g, precision, pack_weight, candidates);
      }();
      cache.entries[key] = {key, choice, ConvChoiceSource::Searched};
      ++cache.searches;
      return conv_plan<T>(g, precision, pack_weight, choice);
    }
  }
  return conv_plan<T>(g, precision, pack_weight);
}

// Caches `choice` for `key` as loaded (used as it is, search on or off), replacing what was there; throws
// resnet::Error where conv_choice_error objects.
inline void set_conv_choice(const ConvChoiceKey& key, const ConvChoice& choice) {
  const std::string error = conv_choice_error(key, choice);
  check(error.empty(), "set_conv_choice: ", key_string(key), ": ", error);
  detail::ConvChoiceCache& cache = detail::conv_choice_cache();
  const std::lock_guard<std::mutex> lock(cache.mutex);
  cache.entries[key] = {key, choice, ConvChoiceSource::Loaded};
}

// Every cached choice, searched or loaded, in key order.
inline std::vector<ConvChoiceEntry> conv_choices() {
  detail::ConvChoiceCache& cache = detail::conv_choice_cache();
  const std::lock_guard<std::mutex> lock(cache.mutex);
  std::vector<ConvChoiceEntry> entries;
  for (const auto& item : cache.entries)
    entries.push_back(item.second);
  return entries;
}

// How many cached choices came from `source`.
inline std::int64_t conv_choice_count(ConvChoiceSource source) {
  const std::vector<ConvChoiceEntry> entries = conv_choices();
  return std::count_if(entries.begin(), entries.end(),
                       [source](const ConvChoiceEntry& e) { return e.source == source; });
}

// How many searches (each timing the candidates of one new key) the process has run.
inline std::int64_t conv_searches() {
  detail::ConvChoiceCache& cache = detail::conv_choice_cache();
  const std::lock_guard<std::mutex> lock(cache.mutex);
  return cache.searches;
}

// Forgets every cached choice, searched and loaded: plans follow the rules again, or new searches.
inline void clear_conv_choices() {
  detail::ConvChoiceCache& cache = detail::conv_choice_cache();
  const std::lock_guard<std::mutex> lock(cache.mutex);
  cache.entries.clear();
}

// "Conv search: off; choices: 0 searched, 2 loaded": a line of runtime_info.
inline std::string conv_search_info() {
  return std::string("Conv search: ") + (conv_search() ? "on" : "off") +
         "; choices: " + std::to_string(conv_choice_count(ConvChoiceSource::Searched)) + " searched, " +
         std::to_string(conv_choice_count(ConvChoiceSource::Loaded)) + " loaded";
}

}  // namespace resnet::kernels
