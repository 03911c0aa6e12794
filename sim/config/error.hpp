// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

namespace iommusim::sim {

/// Bad input: carries the JSON path (RFC 6901 pointer) of the offending value.
/// what() is "<path>: <message>", the one line the CLI prints after the file name.
class ConfigError : public std::runtime_error {
public:
    ConfigError(std::string path, const std::string& message)
        : std::runtime_error((path.empty() ? std::string("/") : path) + ": " + message), path_(std::move(path)) {}
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

/// Closest candidate by edit distance, or "" if none is reasonably close.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

} // namespace iommusim::sim
