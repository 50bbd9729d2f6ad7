#pragma once
// Learning-rate schedules as closed-form functions of the optimizer step (0-based: the value to use for the
// step-th update), matching torch.optim.lr_scheduler stepped once per update:
//   constant    lr
//   step        StepLR(step_size, gamma):              lr * gamma^floor(t / step_size)
//   cosine      SequentialLR(LinearLR(start_factor, total_iters=warmup),
//   CosineAnnealingLR(T_max=total-warmup,
//               eta_min), milestones=[warmup]):        linear warm-up, then half a cosine down to eta_min
//   one_cycle   OneCycleLR(max_lr, total_steps, pct_start, anneal_strategy="cos", div_factor,
//               final_div_factor, three_phase=False), including its inverse momentum cycle
// A schedule is a value: cheap to copy, and its position is just the step number the caller stores.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "resnet/core/error.hpp"

namespace resnet::optim {

class Schedule {
 public:
  enum class Kind { Constant, Step, Cosine, OneCycle };

  static Schedule constant(double lr) {
    Schedule s(Kind::Constant, lr);
    return s;
  }

  static Schedule step(double lr, std::int64_t step_size, double gamma = 0.1) {
    check(step_size >= 1, "Schedule::step: step_size must be >= 1, got ", step_size);
    check(gamma >= 0, "Schedule::step: gamma must be >= 0, got ", gamma);
    Schedule s(Kind::Step, lr);
    s.step_size_ = step_size;
    s.gamma_ = gamma;
    return s;
  }

  static Schedule cosine(double lr, std::int64_t total_steps, std::int64_t warmup_steps = 0,
                         double warmup_start_factor = 1.0 / 3.0, double eta_min = 0.0) {
    check(total_steps >= 1 && warmup_steps >= 0 && warmup_steps < total_steps,
          "Schedule::cosine: need 0 <= warmup_steps < total_steps, got warmup_steps ", warmup_steps,
          ", total_steps ", total_steps);
    check(warmup_start_factor > 0 && warmup_start_factor <= 1,
          "Schedule::cosine: warmup_start_factor must be in (0, 1], got ", warmup_start_factor);
    check(eta_min >= 0, "Schedule::cosine: eta_min must be >= 0, got ", eta_min);
    Schedule s(Kind::Cosine, lr);
    s.total_steps_ = total_steps;
    s.warmup_steps_ = warmup_steps;
    s.start_factor_ = warmup_start_factor;
    s.eta_min_ = eta_min;
    return s;
  }

  static Schedule one_cycle(double max_lr, std::int64_t total_steps, double pct_start = 0.3,
                            double div_factor = 25.0, double final_div_factor = 1e4,
                            bool cycle_momentum = true, double base_momentum = 0.85,
                            double max_momentum = 0.95) {
    check(total_steps >= 2, "Schedule::one_cycle: total_steps must be >= 2, got ", total_steps);
    check(pct_start > 0 && pct_start < 1, "Schedule::one_cycle: pct_start must be in (0, 1), got ",
          pct_start);
    // PyTorch's phase boundary: float(pct_start * total_steps) - 1; both phases need a positive length.
    const double warm_end = pct_start * static_cast<double>(total_steps) - 1;
    check(warm_end > 0 && warm_end < static_cast<double>(total_steps - 1), "Schedule::one_cycle: pct_start ",
          pct_start, " leaves an empty phase with total_steps ", total_steps);
    check(div_factor > 0 && final_div_factor > 0,
          "Schedule::one_cycle: div_factor and final_div_factor must be > 0, got ", div_factor, " and ",
          final_div_factor);
    check(base_momentum >= 0 && max_momentum >= 0,
          "Schedule::one_cycle: base_momentum and max_momentum must be >= 0, got ", base_momentum, " and ",
          max_momentum);
    Schedule s(Kind::OneCycle, max_lr);
    s.total_steps_ = total_steps;
    s.warm_end_ = warm_end;
    s.initial_lr_ = max_lr / div_factor;
    s.min_lr_ = s.initial_lr_ / final_div_factor;
    s.cycle_momentum_ = cycle_momentum;
    s.base_momentum_ = base_momentum;
    s.max_momentum_ = max_momentum;
    return s;
  }

  // Parses the training example's --schedule names.
  static Kind kind_from_name(const std::string& name) {
    if (name == "constant") return Kind::Constant;
    if (name == "step") return Kind::Step;
    if (name == "cosine") return Kind::Cosine;
    if (name == "onecycle" || name == "one-cycle") return Kind::OneCycle;
    fail("unknown schedule '", name, "' (expected constant, step, cosine or onecycle)");
  }

  Kind kind() const { return kind_; }

  // The learning rate for update number t (0-based).
  double lr(std::int64_t t) const {
    expect_step(t, "Schedule::lr");
    switch (kind_) {
      case Kind::Constant:
        return lr_;
      case Kind::Step:
        return lr_ * std::pow(gamma_, static_cast<double>(t / step_size_));
      case Kind::Cosine: {
        if (t < warmup_steps_) {
          const double fraction = static_cast<double>(t) / static_cast<double>(warmup_steps_);
          return lr_ * (start_factor_ + (1 - start_factor_) * fraction);
        }
        const double period = static_cast<double>(total_steps_ - warmup_steps_);
        const double progress = std::min(static_cast<double>(t - warmup_steps_), period) / period;
        return eta_min_ + (lr_ - eta_min_) * (1 + std::cos(kPi * progress)) / 2;
      }
      case Kind::OneCycle:
        return one_cycle_value(t, initial_lr_, lr_, min_lr_);
    }
    return lr_;
  }

  // The momentum for update number t when the schedule drives it (one-cycle), else nothing.
  std::optional<double> momentum(std::int64_t t) const {
    expect_step(t, "Schedule::momentum");
    if (kind_ != Kind::OneCycle || !cycle_momentum_) return std::nullopt;
    return one_cycle_value(t, max_momentum_, base_momentum_, max_momentum_);
  }

 private:
  static constexpr double kPi = 3.14159265358979323846;

  Schedule(Kind kind, double lr) : kind_(kind), lr_(lr) {
    check(lr >= 0, "Schedule: lr must be >= 0, got ", lr);
  }

  static void expect_step(std::int64_t t, const char* where) { check(t >= 0, where, ": negative step ", t); }

  // OneCycleLR._anneal_func "cos": end + (start - end) / 2 * (1 + cos(pi * pct)).
  static double cosine_anneal(double start, double end, double pct) {
    return end + (start - end) / 2 * (1 + std::cos(kPi * pct));
  }

  // Phase 1 goes from `start` to `peak` over steps [0, warm_end], phase 2 from `peak` to `end` over
  // [warm_end, total_steps - 1]; steps past the end extrapolate the last phase, as PyTorch's formula would.
  double one_cycle_value(std::int64_t t, double start, double peak, double end) const {
    const double step = static_cast<double>(t);
    if (step <= warm_end_) return cosine_anneal(start, peak, step / warm_end_);
    const double last = static_cast<double>(total_steps_ - 1);
    return cosine_anneal(peak, end, (step - warm_end_) / (last - warm_end_));
  }

  Kind kind_;
  double lr_;
  std::int64_t step_size_ = 1;
  double gamma_ = 0.1;
  std::int64_t total_steps_ = 1, warmup_steps_ = 0;
  double start_factor_ = 1.0, eta_min_ = 0.0;
  double warm_end_ = 0, initial_lr_ = 0, min_lr_ = 0;
  bool cycle_momentum_ = false;
  double base_momentum_ = 0.85, max_momentum_ = 0.95;
};

}  // namespace resnet::optim
