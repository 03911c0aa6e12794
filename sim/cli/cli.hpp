// SPDX-License-Identifier: Apache-2.0
#pragma once
// The CLI's parts beyond main.cpp: self-describing results folders, sweeps,
// diffs. Each subcommand's body lives in its own file.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "sim/platform_config.hpp"
#include "sim/stats_writer.hpp"

namespace iommusim::cli {

namespace fs = std::filesystem;

/// "0.1.0 (git <describe>)" — configured at CMake time.
std::string version();

using sim::kSchemaVersion;

/// Makes `out` ready for a run: creates it and removes every file a run
/// writes (so nothing stale from an earlier run is left behind), leaving
/// other files alone. Returns an error message, empty when ready;
/// `bad_input` says the error is the user's (`out` names a file: exit 2),
/// otherwise it is a write failure (exit 1).
std::string prepare_out_dir(const fs::path& out, bool& bad_input);

/// Writes config.json (the resolved platform, runnable as is) and run.json
/// (command line, tool version, schema version, platform file).
void write_run_record(const fs::path& out, const sim::PlatformConfig& cfg, const std::string& platform_file,
                      const std::vector<std::string>& command_line);

/// The process's command line, as given.
const std::vector<std::string>& command_line();
void set_command_line(int argc, char* argv[]);

/// Point `index` of a sweep manifest: the platform file, its --set list and
/// its results folder. False with `err` on a bad manifest or index.
bool manifest_point(const std::string& manifest, size_t index, std::string& file, std::vector<std::string>& sets,
                    std::string& out, std::string& err);

/// Records a finished run's exit code in its run.json.
void finish_run_record(const fs::path& out, int exit_code);

/// `iommusim list-stats [PLATFORM]`.
void add_list_stats_command(CLI::App& app, int& rc);

/// `iommusim diff A B`.
void add_diff_command(CLI::App& app, int& rc);
/// `iommusim sweep ...` (and `sweep collect`).
void add_sweep_command(CLI::App& app, int& rc);

} // namespace iommusim::cli
