#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"

using resnet::optim::Schedule;

namespace {

struct Row {
  double lr, momentum;
};

// tests/fixtures/lr_schedules.csv, written by tools/make_schedule_fixtures.py from torch.optim.lr_scheduler.
std::map<std::string, std::vector<Row>> torch_schedules() {
  std::ifstream file(std::string(RESNET_FIXTURE_DIR) + "/lr_schedules.csv");
  EXPECT_TRUE(file.good()) << "missing fixture lr_schedules.csv";
  std::map<std::string, std::vector<Row>> cases;
  std::string line;
  std::getline(file, line);  // header
  while (std::getline(file, line)) {
    std::stringstream fields(line);
    std::string name, step, lr, momentum;
    std::getline(fields, name, ',');
    std::getline(fields, step, ',');
    std::getline(fields, lr, ',');
    std::getline(fields, momentum, ',');
    EXPECT_EQ(std::stoul(step), cases[name].size()) << line;
    cases[name].push_back({std::stod(lr), std::stod(momentum)});
  }
  return cases;
}

void expect_schedule_matches(const Schedule& schedule, const std::vector<Row>& expected, double momentum) {
  ASSERT_FALSE(expected.empty());
  for (std::size_t t = 0; t < expected.size(); ++t) {
    const auto step = static_cast<std::int64_t>(t);
    EXPECT_NEAR(schedule.lr(step), expected[t].lr, 1e-12 + 1e-9 * expected[t].lr) << "step " << t;
    EXPECT_NEAR(schedule.momentum(step).value_or(momentum), expected[t].momentum, 1e-12) << "step " << t;
  }
}

}  // namespace

TEST(Schedule, MatchesTorchLrSchedulers) {
  const auto torch = torch_schedules();
  ASSERT_EQ(torch.size(), 5u);
  expect_schedule_matches(Schedule::step(0.1, 7, 0.5), torch.at("step"), 0.9);
  expect_schedule_matches(Schedule::cosine(0.1, 50, 5, 1.0 / 3.0, 0.001), torch.at("cosine_warmup"), 0.9);
  expect_schedule_matches(Schedule::cosine(0.05, 40, 0, 1.0, 0.0), torch.at("cosine"), 0.9);
  expect_schedule_matches(Schedule::one_cycle(0.2, 100), torch.at("onecycle"), 0.9);
  expect_schedule_matches(Schedule::one_cycle(0.1, 37, 0.25, 10, 100, false), torch.at("onecycle_custom"),
                          0.9);
}

TEST(Schedule, ConstantAndNames) {
  EXPECT_EQ(Schedule::constant(0.3).lr(1000), 0.3);
  EXPECT_FALSE(Schedule::constant(0.3).momentum(5).has_value());
  EXPECT_EQ(Schedule::kind_from_name("onecycle"), Schedule::Kind::OneCycle);
  EXPECT_EQ(Schedule::kind_from_name("cosine"), Schedule::Kind::Cosine);
  EXPECT_THROW(Schedule::kind_from_name("linear"), resnet::Error);
}

TEST(Schedule, BadArgumentsThrow) {
  EXPECT_THROW(Schedule::step(0.1, 0), resnet::Error);
  EXPECT_THROW(Schedule::cosine(0.1, 10, 10), resnet::Error);
  EXPECT_THROW(Schedule::one_cycle(0.1, 1), resnet::Error);
  EXPECT_THROW(Schedule::one_cycle(0.1, 3, 0.1), resnet::Error);  // warm-up phase would be empty
  EXPECT_THROW(Schedule::constant(-1), resnet::Error);
  EXPECT_THROW(Schedule::constant(0.1).lr(-1), resnet::Error);
}
