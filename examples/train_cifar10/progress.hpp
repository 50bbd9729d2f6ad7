#pragma once
// A one-line progress bar for an epoch: "epoch 3/10 [#########.......] 412/782 loss 0.8123 acc 71.2%
// 58.3 img/s ETA 1:05, run 9:40" (the run's ETA counts the later epochs' steps at the same rate, not their
// test evaluations). On a terminal it redraws in place (at most 10 times a second); when the output is a
// file or a pipe it prints a plain line at every 10% so logs stay readable.

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

namespace train {

class ProgressBar {
 public:
  // already_done: steps of the epoch done before this bar started (a resumed run), which the ETA leaves out.
  // later_steps: the steps of the run's epochs after this one.
  ProgressBar(std::string label, std::int64_t total_steps, std::int64_t already_done = 0,
              std::int64_t later_steps = 0)
      : label_(std::move(label)),
        total_(total_steps),
        already_done_(already_done),
        later_(later_steps),
        interactive_(isatty(fileno(stdout)) != 0) {}

  // After step `done` (1-based) of the epoch, with the running loss and accuracy over the images seen so far.
  void update(std::int64_t done, double loss, double accuracy, double images_per_sec) {
    const auto now = std::chrono::steady_clock::now();
    const bool last = done == total_;
    if (interactive_) {
      if (!last && now - last_draw_ < std::chrono::milliseconds(100)) return;
      std::printf("\r%s\033[K", line(done, loss, accuracy, images_per_sec).c_str());
      if (last) std::printf("\n");
    } else {
      const std::int64_t decile = done * 10 / total_;
      if (!last && decile == last_decile_) return;
      last_decile_ = decile;
      std::printf("%s\n", line(done, loss, accuracy, images_per_sec).c_str());
    }
    std::fflush(stdout);
    last_draw_ = now;
  }

  // Seconds left after step `done` of `total`, `elapsed` seconds after the bar started at step
  // `already_done`: at the rate of the steps this bar has timed, not of the epoch's, since a resumed run did
  // the others earlier.
  static double eta_seconds(double elapsed, std::int64_t done, std::int64_t total,
                            std::int64_t already_done) {
    const std::int64_t timed = done - already_done;
    return timed > 0 ? elapsed * static_cast<double>(total - done) / static_cast<double>(timed) : 0;
  }

 private:
  std::string line(std::int64_t done, double loss, double accuracy, double images_per_sec) const {
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(kWidth * done / total_);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(kWidth, '.');
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double eta = eta_seconds(elapsed, done, total_, already_done_);
    const double run_eta = eta_seconds(elapsed, done, total_ + later_, already_done_);
    char text[256];
    std::snprintf(text, sizeof text, "%s [%s] %lld/%lld loss %.4f acc %5.1f%% %6.1f img/s ETA %s%s%s",
                  label_.c_str(), bar.c_str(), static_cast<long long>(done), static_cast<long long>(total_),
                  loss, 100 * accuracy, images_per_sec, format_duration(eta).c_str(), later_ ? ", run " : "",
                  later_ ? format_duration(run_eta).c_str() : "");
    return text;
  }

 public:
  // "1:05" or "1:02:03".
  static std::string format_duration(double seconds) {
    const auto s = static_cast<long long>(seconds + 0.5);
    char text[32];
    if (s >= 3600) {
      std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    } else {
      std::snprintf(text, sizeof text, "%lld:%02lld", s / 60, s % 60);
    }
    return text;
  }

 private:
  std::string label_;
  std::int64_t total_;
  std::int64_t already_done_;
  std::int64_t later_;
  bool interactive_;
  std::int64_t last_decile_ = -1;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace train
