// SPDX-License-Identifier: Apache-2.0
#pragma once
// Self-describing parameter tables. One Schema<P> per params struct binds
// JSON keys to the struct's fields; the same table parses strictly (unknown
// keys, wrong types and out-of-range values are ConfigErrors with the JSON
// path), dumps the resolved values, and documents every parameter for
// `iommusim list-params`. Only sim/ knows JSON: models see the typed struct.
#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "models/common/time.hpp"
#include "sim/config/error.hpp"

namespace iommusim::sim {

using json = nlohmann::ordered_json;

struct ParamDoc {
    std::string key;          ///< dotted path relative to the section
    std::string type;         ///< integer, number, boolean, string, size, enum(a|b)
    std::string unit;
    std::string default_value;
    std::string description;  ///< includes the source of the default
};

/// Value readers shared by every schema (they throw ConfigError with the path).
namespace read {
uint64_t u64(const json& j, const std::string& path, uint64_t min, uint64_t max);
double number(const json& j, const std::string& path, double min, double max);
bool boolean(const json& j, const std::string& path);
std::string string(const json& j, const std::string& path);
/// A byte size: a non-negative integer, or a string with a binary suffix ("64GiB", "4KiB", "512").
uint64_t size(const json& j, const std::string& path, uint64_t min, uint64_t max);
const json& object(const json& j, const std::string& path);
const json& array(const json& j, const std::string& path);
std::string type_name(const json& j);
std::string format_size(uint64_t bytes);
} // namespace read

/// Copies every member of `from` into the object `into` (keeps `from` alive while iterating).
inline void merge_into(json& into, const json& from) {
    for (auto it = from.begin(); it != from.end(); ++it) into[it.key()] = it.value();
}

/// The "name" of a component object: required, non-empty, [A-Za-z0-9_.-],
/// unique across the platform (recorded in `names`).
std::string component_name(const json& obj, const std::string& path, std::set<std::string>& names);

/// Checks that every key of `j` is in `allowed`; the error suggests the closest key.
void check_keys(const json& j, const std::string& path, const std::vector<std::string>& allowed);

template <class P>
class Schema {
public:
    struct Field {
        ParamDoc doc;
        std::function<void(P&, const json&, const std::string&)> parse;
        std::function<json(const P&)> dump;
        std::function<void(const P&, const std::string&, std::vector<ParamDoc>&)> document; // for nested objects
    };

    Schema& integer(std::string key, uint64_t P::*m, std::string unit, std::string desc,
                    uint64_t min = 0, uint64_t max = std::numeric_limits<uint64_t>::max()) {
        return add(key, "integer", unit, desc,
                   [=](P& p, const json& j, const std::string& path) { p.*m = read::u64(j, path, min, max); },
                   [=](const P& p) { return json(p.*m); }, range_note(min, max));
    }
    template <class T>
        requires(std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, uint64_t>)
    Schema& integer(std::string key, T P::*m, std::string unit, std::string desc,
                    uint64_t min = 0, uint64_t max = std::numeric_limits<T>::max()) {
        return add(key, "integer", unit, desc,
                   [=](P& p, const json& j, const std::string& path) { p.*m = static_cast<T>(read::u64(j, path, min, max)); },
                   [=](const P& p) { return json(static_cast<uint64_t>(p.*m)); }, range_note(min, max));
    }
    Schema& size(std::string key, uint64_t P::*m, std::string desc, uint64_t min = 1,
                 uint64_t max = std::numeric_limits<uint64_t>::max()) {
        return add(key, "size", "bytes", desc,
                   [=](P& p, const json& j, const std::string& path) { p.*m = read::size(j, path, min, max); },
                   [=](const P& p) { return json(read::format_size(p.*m)); }, "");
    }
    Schema& number(std::string key, double P::*m, std::string unit, std::string desc, double min = 0.0,
                   double max = std::numeric_limits<double>::max()) {
        return add(key, "number", unit, desc,
                   [=](P& p, const json& j, const std::string& path) { p.*m = read::number(j, path, min, max); },
                   [=](const P& p) { return json(p.*m); }, "");
    }
    /// A Duration given in nanoseconds (key must end in _ns).
    Schema& time_ns(std::string key, Duration P::*m, std::string desc, double min = 0.0,
                    double max = 1e15) {
        return add(key, "number", "ns", desc,
                   [=](P& p, const json& j, const std::string& path) { p.*m = Duration::ns(read::number(j, path, min, max)); },
                   [=](const P& p) { return json((p.*m).as_ns()); }, "");
    }
    Schema& boolean(std::string key, bool P::*m, std::string desc) {
        return add(key, "boolean", "", desc,
                   [=](P& p, const json& j, const std::string& path) { p.*m = read::boolean(j, path); },
                   [=](const P& p) { return json(p.*m); }, "");
    }
    Schema& string(std::string key, std::string P::*m, std::string desc) {
        return add(key, "string", "", desc,
                   [=](P& p, const json& j, const std::string& path) { p.*m = read::string(j, path); },
                   [=](const P& p) { return json(p.*m); }, "");
    }
    template <class E>
    Schema& enumeration(std::string key, E P::*m, std::string desc, std::vector<std::pair<std::string, E>> values) {
        std::string names;
        std::vector<std::string> list;
        for (auto& [n, v] : values) names += (names.empty() ? "" : "|") + n, list.push_back(n);
        return add(key, "enum(" + names + ")", "", desc,
                   [=](P& p, const json& j, const std::string& path) {
                       const std::string s = read::string(j, path);
                       for (auto& [n, v] : values)
                           if (n == s) { p.*m = v; return; }
                       std::string hint = closest_match(s, list);
                       throw ConfigError(path, "expected one of " + names + ", got \"" + s + "\"" +
                                                   (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)"));
                   },
                   [=](const P& p) {
                       for (auto& [n, v] : values)
                           if (v == p.*m) return json(n);
                       return json(nullptr);
                   },
                   "");
    }
    /// A field with custom accessors (nested structs, derived encodings).
    Schema& custom(std::string key, std::string type, std::string unit, std::string desc,
                   std::function<void(P&, const json&, const std::string&)> parse, std::function<json(const P&)> dump) {
        return add(std::move(key), std::move(type), std::move(unit), std::move(desc), std::move(parse), std::move(dump), "");
    }
    /// A nested object described by its own schema.
    template <class S>
    Schema& object(std::string key, S P::*m, const Schema<S>& sub, std::string desc) {
        Field f;
        f.doc = ParamDoc{key, "object", "", "", std::move(desc)};
        f.parse = [=](P& p, const json& j, const std::string& path) { sub.parse(j, path, p.*m); };
        f.dump = [=](const P& p) { return sub.dump(p.*m); };
        f.document = [=](const P& p, const std::string& prefix, std::vector<ParamDoc>& out) {
            sub.document(p.*m, prefix, out);
        };
        fields_.push_back(std::move(f));
        return *this;
    }

    /// Strict parse of an object: every key must be known; missing keys keep
    /// the value already in `out` (the documented default).
    void parse(const json& j, const std::string& path, P& out) const {
        read::object(j, path);
        check_keys(j, path, keys());
        for (const auto& f : fields_)
            if (auto it = j.find(f.doc.key); it != j.end()) f.parse(out, *it, path + "/" + f.doc.key);
    }
    json dump(const P& p) const {
        json j = json::object();
        for (const auto& f : fields_) j[f.doc.key] = f.dump(p);
        return j;
    }
    void document(const P& defaults, const std::string& prefix, std::vector<ParamDoc>& out) const {
        for (const auto& f : fields_) {
            const std::string key = prefix.empty() ? f.doc.key : prefix + "." + f.doc.key;
            if (f.document) {
                f.document(defaults, key, out);
                continue;
            }
            ParamDoc d = f.doc;
            d.key = key;
            json v = f.dump(defaults);
            d.default_value = v.is_string() ? v.get<std::string>() : v.dump();
            out.push_back(std::move(d));
        }
    }
    std::vector<std::string> keys() const {
        std::vector<std::string> k;
        for (const auto& f : fields_) k.push_back(f.doc.key);
        return k;
    }

private:
    static std::string range_note(uint64_t min, uint64_t max) {
        if (min == 0 && max == std::numeric_limits<uint64_t>::max()) return "";
        return " [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    }
    Schema& add(std::string key, std::string type, std::string unit, std::string desc,
                std::function<void(P&, const json&, const std::string&)> parse,
                std::function<json(const P&)> dump, std::string note) {
        Field f;
        f.doc = ParamDoc{std::move(key), std::move(type) + note, std::move(unit), "", std::move(desc)};
        f.parse = std::move(parse);
        f.dump = std::move(dump);
        fields_.push_back(std::move(f));
        return *this;
    }
    std::vector<Field> fields_;
};

} // namespace iommusim::sim
