// SPDX-License-Identifier: Apache-2.0
#pragma once
// Runs a platform document with the CLI, as a user would, and returns its stats.
#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "test/support/cli.hpp"

namespace iommusim::test {

/// Writes `platform` into a scratch directory named for `tag`, runs it (`extra`: more CLI
/// options) and returns its stats.json; `dir_out`, if given, receives the output directory.
inline nlohmann::ordered_json run_platform(const nlohmann::ordered_json& platform, const std::string& tag,
                                           std::filesystem::path* dir_out = nullptr, const std::string& extra = "") {
    auto dir = scratch_dir(tag);
    write_file(dir / "p.json", platform.dump(2));
    auto r = run_cli("run '" + (dir / "p.json").string() + "' --quiet --out '" + (dir / "out").string() + "' " + extra, tag);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    if (dir_out) *dir_out = dir / "out";
    return nlohmann::ordered_json::parse(slurp(dir / "out" / "stats.json"));
}

} // namespace iommusim::test
