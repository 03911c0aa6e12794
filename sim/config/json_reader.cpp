// SPDX-License-Identifier: Apache-2.0
#include "sim/config/json_reader.hpp"

#include <algorithm>
#include <set>
#include <vector>

namespace iommusim::sim {

namespace {

/// Where the parser is: one frame per open object/array. Maintained from
/// nlohmann's parser callback events so that every problem has a path.
class PathTracker {
public:
    /// Path of the value being read now (the next element of the innermost container).
    std::string current() const {
        std::string p;
        for (const auto& f : frames_) {
            if (f.object && !f.has_key) continue;
            p += '/';
            if (f.object) append_escaped(p, f.key);
            else p += std::to_string(f.index);
        }
        return p;
    }
    /// Returns false (and fills `problem`) when the event makes the document invalid.
    bool on_event(int depth, json::parse_event_t event, const json& parsed, JsonProblem& problem) {
        (void)depth;
        switch (event) {
        case json::parse_event_t::object_start:
        case json::parse_event_t::array_start:
            if (frames_.size() >= kMaxJsonDepth) {
                problem = {current(), "nested deeper than " + std::to_string(kMaxJsonDepth) +
                                          " objects/arrays (the limit of a platform document)", false};
                return false;
            }
            frames_.push_back(Frame{event == json::parse_event_t::object_start, false, {}, 0, {}});
            return true;
        case json::parse_event_t::key: {
            Frame& f = frames_.back();
            f.key = parsed.get<std::string>();
            f.has_key = true;
            if (!f.keys.insert(f.key).second) {
                problem = {current(), "duplicate key \"" + f.key + "\" (each key may appear once in an object)", false};
                return false;
            }
            return true;
        }
        case json::parse_event_t::object_end:
        case json::parse_event_t::array_end:
            frames_.pop_back();
            advance();
            return true;
        case json::parse_event_t::value:
            advance();
            return true;
        }
        return true;
    }

private:
    struct Frame {
        bool object;
        bool has_key;
        std::string key;
        std::size_t index;
        std::set<std::string> keys;
    };
    void advance() {
        if (frames_.empty()) return;
        if (frames_.back().object) frames_.back().has_key = false;
        else ++frames_.back().index;
    }
    /// RFC 6901: '~' is written "~0" and '/' is written "~1".
    static void append_escaped(std::string& out, const std::string& key) {
        for (char c : key) {
            if (c == '~') out.append("~0");
            else if (c == '/') out.append("~1");
            else out.push_back(c);
        }
    }
    std::vector<Frame> frames_;
};

std::string line_column(const std::string& text, std::size_t byte) {
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i + 1 < byte && i < text.size(); ++i) {
        if (text[i] == '\n') ++line, col = 1;
        else ++col;
    }
    return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

} // namespace

std::size_t nesting_depth(const json& doc) {
    std::size_t deepest = 0;
    std::vector<std::pair<const json*, std::size_t>> todo{{&doc, 0}};
    while (!todo.empty()) {
        auto [j, d] = todo.back();
        todo.pop_back();
        if (!j->is_structured()) continue;
        deepest = std::max(deepest, d + 1);
        for (const auto& child : *j) todo.emplace_back(&child, d + 1);
    }
    return deepest;
}

std::optional<json> parse_json_text(const std::string& text, JsonProblem& problem) {
    PathTracker where;
    bool rejected = false;
    json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
        if (rejected) return false;
        if (!where.on_event(depth, event, parsed, problem)) {
            rejected = true;
            // Stop here: nlohmann has no "abort" from a callback, so throw and
            // catch below; the problem is already recorded.
            throw std::range_error("rejected");
        }
        return true;
    };
    try {
        return json::parse(text, cb, true, false);
    } catch (const std::range_error&) {
        if (!rejected) throw;
        return std::nullopt;
    } catch (const json::out_of_range& e) {
        // 406: a number literal beyond the range of a double (strtod gives inf).
        std::string msg = e.what();
        if (auto p = msg.find("number overflow"); p != std::string::npos) msg = msg.substr(p);
        problem = {where.current(), msg + ": a number must fit in a double (at most about 1.8e308)", false};
        return std::nullopt;
    } catch (const json::parse_error& e) {
        std::string msg = e.what();
        if (auto p = msg.find("syntax error"); p != std::string::npos) msg = msg.substr(p);
        problem = {where.current(), "JSON syntax error at " + line_column(text, e.byte) + ": " + msg, true};
        return std::nullopt;
    } catch (const json::exception& e) {
        problem = {where.current(), std::string("invalid JSON: ") + e.what(), true};
        return std::nullopt;
    }
}

json parse_json_or_throw(const std::string& text, const std::string& prefix) {
    JsonProblem problem;
    if (auto doc = parse_json_text(text, problem)) return std::move(*doc);
    throw ConfigError(prefix + problem.path, problem.message);
}

} // namespace iommusim::sim
