// SPDX-License-Identifier: Apache-2.0
#include "sim/config/schema.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace iommusim::sim {

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
    auto distance = [](const std::string& a, const std::string& b) {
        std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
        for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
        for (size_t i = 1; i <= a.size(); ++i) {
            cur[0] = i;
            for (size_t j = 1; j <= b.size(); ++j)
                cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
            std::swap(prev, cur);
        }
        return prev[b.size()];
    };
    std::string best;
    size_t best_d = std::max<size_t>(3, word.size() / 2) + 1;
    for (const auto& c : candidates) {
        size_t d = distance(word, c);
        if (d < best_d) best_d = d, best = c;
    }
    return best;
}

std::string component_name(const json& obj, const std::string& path, std::set<std::string>& names) {
    if (!obj.contains("name")) throw ConfigError(path, "missing key \"name\"");
    std::string n = read::string(obj["name"], path + "/name");
    if (n.empty()) throw ConfigError(path + "/name", "expected a non-empty name");
    for (char c : n)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
            throw ConfigError(path + "/name", "expected letters, digits, '_', '-' or '.', got \"" + n + "\"");
    if (!names.insert(n).second) throw ConfigError(path + "/name", "duplicate component name \"" + n + "\"");
    return n;
}

void check_keys(const json& j, const std::string& path, const std::vector<std::string>& allowed) {
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end()) continue;
        std::string hint = closest_match(it.key(), allowed);
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        throw ConfigError(path + "/" + it.key(),
                          "unknown key \"" + it.key() + "\"" +
                              (hint.empty() ? " (valid keys: " + list + ")" : " (did you mean \"" + hint + "\"?)"));
    }
}

namespace read {

std::string type_name(const json& j) {
    switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string \"" + j.get<std::string>() + "\"";
    case json::value_t::boolean: return j.get<bool>() ? "true" : "false";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return j.dump();
    default: return "an unsupported value";
    }
}

uint64_t u64(const json& j, const std::string& path, uint64_t min, uint64_t max) {
    if (j.is_string()) { // addresses read better in hex: "0x100000000"
        const std::string s = j.get<std::string>();
        size_t used = 0;
        uint64_t v = 0;
        bool ok = s.size() > 2 && s.size() <= 18 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
        if (ok) {
            try {
                v = std::stoull(s.substr(2), &used, 16);
            } catch (const std::exception&) {
                ok = false;
            }
            ok = ok && used == s.size() - 2;
        }
        if (!ok) throw ConfigError(path, "expected an integer (or a hex string like \"0x1000\"), got " + type_name(j));
        if (v < min || v > max)
            throw ConfigError(path, "expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + s);
        return v;
    }
    if (j.is_number_unsigned()) {
        auto v = j.get<uint64_t>();
        if (v < min || v > max)
            throw ConfigError(path, "expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                                        "], got " + std::to_string(v));
        return v;
    }
    if (j.is_number_integer() || (j.is_number_float() && std::floor(j.get<double>()) == j.get<double>()))
        throw ConfigError(path, "expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                                    "], got " + j.dump());
    throw ConfigError(path, "expected an integer, got " + type_name(j));
}

double number(const json& j, const std::string& path, double min, double max) {
    if (!j.is_number()) throw ConfigError(path, "expected a number, got " + type_name(j));
    double v = j.get<double>();
    if (!(v >= min && v <= max)) {
        std::ostringstream os;
        os << "expected a number in [" << min << ", " << max << "], got " << j.dump();
        throw ConfigError(path, os.str());
    }
    return v;
}

bool boolean(const json& j, const std::string& path) {
    if (!j.is_boolean()) throw ConfigError(path, "expected true or false, got " + type_name(j));
    return j.get<bool>();
}

std::string string(const json& j, const std::string& path) {
    if (!j.is_string()) throw ConfigError(path, "expected a string, got " + type_name(j));
    return j.get<std::string>();
}

const json& object(const json& j, const std::string& path) {
    if (!j.is_object()) throw ConfigError(path, "expected an object, got " + type_name(j));
    return j;
}

const json& array(const json& j, const std::string& path) {
    if (!j.is_array()) throw ConfigError(path, "expected an array, got " + type_name(j));
    return j;
}

uint64_t size(const json& j, const std::string& path, uint64_t min, uint64_t max) {
    uint64_t v = 0;
    if (j.is_string()) {
        const std::string s = j.get<std::string>();
        static const std::pair<const char*, unsigned> suffixes[] = {
            {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}, {"PiB", 50}, {"B", 0}, {"", 0}};
        size_t digits = 0;
        while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
        const std::string suffix = s.substr(digits);
        bool ok = digits > 0 && digits <= 15;
        unsigned shift = 0;
        if (ok) {
            ok = false;
            for (auto [name, sh] : suffixes)
                if (suffix == name) ok = true, shift = sh;
        }
        if (!ok)
            throw ConfigError(path, "expected a size in bytes: an integer or a string like \"4KiB\", \"64GiB\" "
                                    "(suffixes B, KiB, MiB, GiB, TiB, PiB), got \"" + s + "\"");
        uint64_t n = std::stoull(s.substr(0, digits));
        if (shift && n > (std::numeric_limits<uint64_t>::max() >> shift))
            throw ConfigError(path, "size \"" + s + "\" does not fit in 64 bits");
        v = n << shift;
    } else if (j.is_number_unsigned()) {
        v = j.get<uint64_t>();
    } else {
        throw ConfigError(path, "expected a size in bytes (an integer or a string like \"64GiB\"), got " + type_name(j));
    }
    if (v < min || v > max)
        throw ConfigError(path, "expected a size in [" + format_size(min) + ", " + format_size(max) + "], got " +
                                    format_size(v));
    return v;
}

std::string format_size(uint64_t b) {
    static const char* names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int i = 0;
    while (i < 5 && b != 0 && (b & 1023) == 0) b >>= 10, ++i;
    return std::to_string(b) + names[i];
}

} // namespace read
} // namespace iommusim::sim
