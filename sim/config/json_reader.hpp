// SPDX-License-Identifier: Apache-2.0
#pragma once
// Strict JSON text reading for platform files and --set values. On top of
// RFC 8259 syntax it rejects what nlohmann's DOM would accept silently or
// fail on badly: duplicate object keys (RFC 8259 §4 leaves them undefined; we
// keep no "last one wins"), numbers that overflow a double (1e400), and
// nesting deeper than kMaxJsonDepth (bounds the recursion of every later
// consumer: copies, dumps, the schema walk). Every problem carries the JSON
// path (RFC 6901) of the value where it was found.
#include <cstddef>
#include <optional>
#include <string>

#include "sim/config/schema.hpp"

namespace iommusim::sim {

/// Deepest nesting of objects/arrays a platform document may have. The
/// shipped platforms need 6; 64 leaves room for any hand-written file while
/// keeping recursive consumers far from the stack limit (even under ASan).
inline constexpr std::size_t kMaxJsonDepth = 64;

struct JsonProblem {
    std::string path;    ///< RFC 6901 pointer of the offending value ("" = the document)
    std::string message; ///< what is wrong, with line and column for syntax errors
    bool syntax = false; ///< the text is not JSON at all (as opposed to a rejected value)
};

/// Deepest nesting of objects/arrays in `doc` (a scalar is 0), without recursion.
std::size_t nesting_depth(const json& doc);

/// Parses `text`; on failure returns nullopt and fills `problem`.
std::optional<json> parse_json_text(const std::string& text, JsonProblem& problem);

/// Parses `text` or throws ConfigError with the problem's path; `prefix` is
/// prepended to that path (the location the text is spliced into).
json parse_json_or_throw(const std::string& text, const std::string& prefix = "");

} // namespace iommusim::sim
