#pragma once
// MetricsLog: a CSV file of numbers that a training run appends rows to (loss per N updates, test accuracy
// per evaluation, ...). The rows are kept in memory and the file is rewritten atomically at each row, so a
// reader (a plot, tail -f) never sees half a line. csv() and restore() carry the log inside a checkpoint, so
// that a resumed run continues exactly the log of the run it resumes and not what a killed process wrote
// after it.
//
// clang-format off
//   train::MetricsLog log("runs/a/metrics.csv", {"update", "train_loss", "lr"});
//   log.add({100, 0.73, 0.05});
//   metadata["metrics"] = log.csv();        // into a checkpoint (train::Checkpoints::save's extra)
//   log.restore(resumed.metadata.at("metrics"));
// clang-format on

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/io/atomic_file.hpp"

namespace resnet::train {

class MetricsLog {
 public:
  // path: the file, written at each add() (its directory is created); "" keeps the log in memory only.
  MetricsLog(std::string path, std::vector<std::string> columns)
      : path_(std::move(path)), columns_(std::move(columns)) {
    check(!columns_.empty(), "MetricsLog: no columns");
  }

  // One row, a value per column, then the whole file rewritten.
  void add(std::vector<double> row) {
    check(row.size() == columns_.size(), "MetricsLog.add: ", row.size(), " values for the ", columns_.size(),
          " columns of ", path_.empty() ? std::string("the log") : path_);
    rows_.push_back(std::move(row));
    write();
  }

  // The header and every row, each value in the fewest digits that read back as the same double, so that
  // restore() gives it back exactly.
  std::string csv() const {
    std::string text = header() + "\n";
    for (const auto& row : rows_) {
      for (std::size_t c = 0; c < row.size(); ++c) {
        text += (c ? "," : "") + shortest(row[c]);
      }
      text += "\n";
    }
    return text;
  }

  // The rows of `text`, a csv() of a log with the same columns, replace this log's; the file is rewritten.
  void restore(const std::string& text) {
    std::istringstream lines(text);
    std::string header;
    std::getline(lines, header);
    check(header == this->header(), "MetricsLog.restore: the saved log has columns '", header,
          "', this one '", this->header(), "'");
    std::vector<std::vector<double>> rows;
    std::string line;
    while (std::getline(lines, line)) {
      std::vector<double> row;
      std::istringstream fields(line);
      std::string field;
      while (std::getline(fields, field, ',')) {
        std::size_t used = 0;
        double value = 0;
        try {
          value = std::stod(field, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        check(used == field.size() && used > 0, "MetricsLog.restore: '", field, "' is not a number (row '",
              line, "')");
        row.push_back(value);
      }
      check(row.size() == columns_.size(), "MetricsLog.restore: row '", line, "' has ", row.size(),
            " values for ", columns_.size(), " columns");
      rows.push_back(std::move(row));
    }
    rows_ = std::move(rows);
    write();
  }

  const std::vector<std::string>& columns() const { return columns_; }
  const std::vector<std::vector<double>>& rows() const { return rows_; }
  const std::string& path() const { return path_; }

 private:
  // The column names, comma-separated.
  std::string header() const {
    std::string text;
    for (std::size_t c = 0; c < columns_.size(); ++c)
      text += (c ? "," : "") + columns_[c];
    return text;
  }

  static std::string shortest(double value) {
    char text[32];
    for (int digits = 15; digits <= 17; ++digits) {
      std::snprintf(text, sizeof text, "%.*g", digits, value);
      if (std::strtod(text, nullptr) == value) break;
    }
    return text;
  }

  void write() const {
    if (path_.empty()) return;
    const std::filesystem::path directory = std::filesystem::path(path_).parent_path();
    if (!directory.empty()) std::filesystem::create_directories(directory);
    const std::string text = csv();
    io::AtomicFile file(path_);
    file.write(text.data(), text.size());
    file.commit();
  }

  std::string path_;
  std::vector<std::string> columns_;
  std::vector<std::vector<double>> rows_;
};

}  // namespace resnet::train
