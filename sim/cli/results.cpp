// SPDX-License-Identifier: Apache-2.0
// Self-describing results folders: config.json, run.json, no stale files.
#include <fstream>
#include <set>

#include "cli_version.hpp"
#include "sim/cli/cli.hpp"
#include "sim/platform.hpp"

namespace iommusim::cli {

namespace {
/// Every file a run may write into its folder.
const std::set<std::string> kRunFiles = {"stats.json", "config.json", "run.json", "invalidations.csv",
                                         "violations.csv", "trace.json"};
std::vector<std::string> g_command_line;
} // namespace

std::string version() { return IOMMUSIM_VERSION_STRING; }

const std::vector<std::string>& command_line() { return g_command_line; }
void set_command_line(int argc, char* argv[]) { g_command_line.assign(argv, argv + argc); }

std::string prepare_out_dir(const fs::path& out, bool& bad_input) {
    std::error_code ec;
    bad_input = false;
    if (fs::exists(out, ec) && !fs::is_directory(out, ec)) {
        bad_input = true; // the user named a file: an error, not an overwrite
        return out.string() + " exists and is not a folder";
    }
    fs::create_directories(out, ec);
    if (ec) return out.string() + ": cannot create the output folder: " + ec.message();
    // Whatever an earlier run wrote goes, so no stale file (a trace.json from a
    // run with the trace on) sits beside this run's; other files stay. Only
    // regular files are stale results: a device or fifo standing in for one
    // (stats.json -> /dev/full) is where the user wants it written.
    for (const auto& f : kRunFiles) {
        if (fs::exists(out / f, ec) && !fs::is_regular_file(out / f, ec)) continue;
        fs::remove(out / f, ec);
        if (ec) return "cannot remove " + (out / f).string() + ": " + ec.message();
    }
    return "";
}

void write_run_record(const fs::path& out, const sim::PlatformConfig& cfg, const std::string& platform_file,
                      const std::vector<std::string>& command_line) {
    sim::write_output_file(out / "config.json", [&](std::ostream& os) { os << sim::dump_platform(cfg).dump(2) << "\n"; });
    sim::json r = sim::json::object();
    r["schema_version"] = kSchemaVersion;
    r["iommusim_version"] = version();
    r["command_line"] = command_line;
    std::error_code ec;
    const fs::path abs = fs::absolute(platform_file, ec);
    r["platform_file"] = ec ? platform_file : abs.lexically_normal().string();
    r["platform"] = cfg.name;
    r["seed"] = cfg.seed;
    sim::write_output_file(out / "run.json", [&](std::ostream& os) { os << r.dump(2) << "\n"; });
}

} // namespace iommusim::cli

namespace iommusim::cli {

void finish_run_record(const fs::path& out, int exit_code) {
    std::ifstream in(out / "run.json");
    if (!in) return;
    sim::json r = sim::json::parse(in, nullptr, false);
    if (r.is_discarded()) return;
    r["exit_code"] = exit_code;
    std::ofstream(out / "run.json") << r.dump(2) << "\n";
}

} // namespace iommusim::cli
