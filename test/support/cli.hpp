// SPDX-License-Identifier: Apache-2.0
#pragma once
// Runs the iommusim CLI as a subprocess, as a user would.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>

namespace iommusim::test {

struct CliResult {
    int exit_code;
    std::string out;
    std::string err;
};

inline std::filesystem::path scratch_dir(const std::string& name) {
    auto p = std::filesystem::temp_directory_path() / ("iommusim-test-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(p);
    return p;
}

inline std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline void write_file(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }

inline CliResult run_cli(const std::string& args, const std::string& tag = "cli") {
    auto dir = scratch_dir(tag);
    auto out = dir / "stdout.txt", err = dir / "stderr.txt";
    std::string cmd = std::string("SYSC_DISABLE_COPYRIGHT_MESSAGE=1 '") + IOMMUSIM_CLI_PATH + "' " + args + " >'" +
                      out.string() + "' 2>'" + err.string() + "'";
    int st = std::system(cmd.c_str());
    return CliResult{WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(out), slurp(err)};
}

inline std::string source_path(const std::string& rel) { return std::string(IOMMUSIM_SOURCE_DIR) + "/" + rel; }

} // namespace iommusim::test
