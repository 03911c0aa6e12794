// SPDX-License-Identifier: Apache-2.0
// Golden regressions: every platforms/*.json runs at its fixed seed and its
// key stats are compared with test/golden/platforms.json, where each value
// carries the reason it is what it is.
#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "test/support/cli.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {
const ordered_json* find_stat(const ordered_json& s, const std::string& dotted) {
    const ordered_json* j = &s;
    size_t start = 0;
    while (start <= dotted.size()) {
        const size_t dot = dotted.find('.', start);
        const std::string k = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (!j->is_object() || !j->contains(k)) return nullptr;
        j = &(*j)[k];
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return j;
}
} // namespace

TEST_CASE("every platform runs and matches its golden key stats", "[regression][golden]") {
    const auto golden = ordered_json::parse(slurp(source_path("test/golden/platforms.json")));
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(source_path("platforms")))
        if (e.path().extension() == ".json") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    REQUIRE(files.size() >= 8);
    for (const auto& f : files) {
        const std::string name = f.stem().string();
        INFO("platform " << name);
        REQUIRE(golden.contains(name)); // a new platform needs its expectations
        auto dir = scratch_dir("golden-" + name);
        auto r = run_cli("run '" + f.string() + "' --quiet --out '" + dir.string() + "'", "golden-" + name);
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        const auto stats = ordered_json::parse(slurp(dir / "stats.json"));
        for (const auto& [stat, exp] : golden[name].items()) {
            INFO(stat << ": " << exp["why"].get<std::string>());
            const ordered_json* s = find_stat(stats, stat);
            REQUIRE(s);
            const ordered_json& v = s->contains("value") ? (*s)["value"] : (*s)["count"];
            CHECK(v.get<double>() == exp["eq"].get<double>());
        }
    }
}
