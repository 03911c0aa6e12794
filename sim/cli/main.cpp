// SPDX-License-Identifier: Apache-2.0
// iommusim: run, validate and inspect JSON platforms.
// Exit codes: 0 ok, 2 bad input (one line: file, JSON path, expected/found), 1 simulation error.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unistd.h>
#include <sstream>

#include "models/pcie/topology.hpp"
#include "sim/cli/cli.hpp"
#include "sim/platform.hpp"
#include "sim/stats_writer.hpp"

namespace fs = std::filesystem;
using namespace iommusim::sim;

namespace {

/// SIGINT/SIGTERM received during a run (0 = none). The handler only stores
/// it; the run loop polls it between slices and writes everything it has.
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

/// Catches SIGINT and SIGTERM once: a second one has the default effect
/// (kills the process), for a run stuck inside one slice.
void catch_stop_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    // A sweep starts its points with both blocked (sweep.cpp spawn_self): one
    // that arrived meanwhile is delivered now, to the handler.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &stop, nullptr);
}

/// Shell convention for a process ended by signal N: 128 + N (130 SIGINT, 143 SIGTERM).
int signal_exit_code() { return 128 + static_cast<int>(g_stop_signal); }

int bad_input(const std::string& file, const std::exception& e) {
    std::cerr << "iommusim: " << file << ": " << e.what() << "\n";
    return 2;
}

void print_params(const std::string& filter) {
    bool any = false;
    for (const auto& sec : list_params()) {
        if (!filter.empty() && sec.name != filter && sec.name.find(":" + filter) == std::string::npos) continue;
        any = true;
        std::printf("[%s] %s\n", sec.name.c_str(), sec.description.c_str());
        for (const auto& p : sec.params)
            std::printf("  %-24s %-28s %-8s default %-12s %s\n", p.key.c_str(), p.type.c_str(),
                        p.unit.empty() ? "-" : p.unit.c_str(), p.default_value.c_str(), p.description.c_str());
        std::printf("\n");
    }
    if (!any) throw std::invalid_argument("no parameter section or type named \"" + filter + "\"");
}

int run(const std::string& file, const std::vector<std::string>& sets, const std::string& out_opt,
        std::optional<uint64_t> seed, bool quiet, bool all_stats, fs::path& out_used) {
    catch_stop_signals(); // from the start: a signal during elaboration stops the run at time 0, results written
    PlatformConfig cfg;
    try {
        std::vector<std::string> all = sets;
        if (seed) all.push_back("seed=" + std::to_string(*seed));
        cfg = load_platform(file, all);
    } catch (const ConfigError& e) {
        return bad_input(file, e);
    }
    const fs::path out = out_opt.empty() ? fs::path("results") / output_name(cfg.name) : fs::path(out_opt);
    out_used = out;
    bool bad_out = false;
    if (const std::string err = iommusim::cli::prepare_out_dir(out, bad_out); !err.empty()) {
        std::cerr << "iommusim: " << (bad_out ? "" : "cannot write results: ") << err << "\n";
        return bad_out ? 2 : 1;
    }
    try {
        Platform platform(std::move(cfg));
        try {
            iommusim::cli::write_run_record(out, platform.config(), file, iommusim::cli::command_line());
            platform.open_streams(out);
        } catch (const OutputError& e) {
            std::cerr << "iommusim: cannot write results: " << e.what() << "\n";
            return 1;
        }
        const bool tty = isatty(STDERR_FILENO) && !quiet;
        HostFigures host;
        std::string error;
        try {
            host = platform.run(
                [&](double sim_us, double wall_s) {
                    if (tty)
                        std::fprintf(stderr, "\r  simulated %.1f / %.1f us  (%.2f s wall, %.0f deltas/s)   ", sim_us,
                                     platform.config().duration_us, wall_s,
                                     wall_s > 0 ? static_cast<double>(sc_core::sc_delta_count()) / wall_s : 0.0);
                },
                [] { return g_stop_signal != 0; });
            if (tty) std::fprintf(stderr, "\n");
        } catch (const std::exception& e) {
            error = e.what();
        }
        // Nothing is lost: partial results are written even when the run failed.
        json doc = platform.stats_document(host);
        doc["host"]["iommusim_version"] = iommusim::cli::version();
        if (!error.empty()) doc["error"] = error;
        if (const auto f = platform.scenario_failures(); !f.empty()) doc["scenario_failures"] = f;
        try {
            platform.write_outputs(out, doc);
        } catch (const OutputError& e) {
            std::cerr << "iommusim: cannot write results: " << e.what() << "\n";
            return 1;
        }
        if (!quiet && platform.config().outputs.summary) {
            std::printf("iommusim: %s (seed %llu), %.1f us simulated in %.2f s\n", platform.config().name.c_str(),
                        static_cast<unsigned long long>(platform.config().seed), sc_core::sc_time_stamp().to_seconds() * 1e6,
                        host.wall_seconds);
            std::fputs(stats_summary(platform.stats(), all_stats).c_str(), stdout);
            if (platform.config().outputs.stats_json) std::printf("stats: %s\n", (out / "stats.json").c_str());
        }
        if (!error.empty()) {
            std::cerr << "iommusim: simulation error: " << error << "\n";
            return 1;
        }
        if (host.interrupted) {
            std::cerr << "iommusim: interrupted by signal " << g_stop_signal << " at "
                      << sc_core::sc_time_stamp().to_seconds() * 1e6 << " us simulated; results written to " << out.string()
                      << "\n";
            return signal_exit_code();
        }
        const auto failures = platform.scenario_failures();
        for (const auto& f : failures) std::cerr << "iommusim: scenario: " << f << "\n";
        if (!failures.empty()) return 1;
    } catch (const ConfigError& e) {
        return bad_input(file, e);
    } catch (const std::exception& e) {
        std::cerr << "iommusim: simulation error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

} // namespace

int cli_main(int argc, char* argv[]) {
    CLI::App app{"iommusim: a full-system IOMMU/PCIe simulator (SystemC/TLM-2.0)"};
    app.require_subcommand(1);
    app.set_version_flag("--version", iommusim::cli::version());
    iommusim::cli::set_command_line(argc, argv);

    std::string file, out;
    std::vector<std::string> sets;
    uint64_t seed = 0;
    bool quiet = false;
    auto* run_cmd = app.add_subcommand("run", "run a platform and write DIR/stats.json");
    std::string manifest;
    size_t point_index = 0;
    auto* platform_opt = run_cmd->add_option("platform", file, "platform JSON file");
    auto* manifest_opt = run_cmd->add_option("--manifest", manifest, "run one point of a sweep manifest (sweep --emit)");
    run_cmd->add_option("--index", point_index, "the point of --manifest to run (e.g. $SLURM_ARRAY_TASK_ID)")->needs(manifest_opt);
    platform_opt->excludes(manifest_opt);

    run_cmd->add_option("--out", out, "output directory (default results/<platform name>/)");
    run_cmd->add_option("--set", sets, "override a parameter: PATH=VALUE (e.g. memory.read_latency_ns=120)")->take_all();
    auto* seed_opt = run_cmd->add_option("--seed", seed, "override the platform seed");
    run_cmd->add_flag("--quiet", quiet, "print nothing but errors");
    bool all = false;
    run_cmd->add_flag("--all", all, "summary of every non-zero stat, not only the headline ones");

    std::string vfile;
    std::vector<std::string> vsets;
    auto* validate_cmd = app.add_subcommand("validate", "parse and elaborate a platform (every check `run` makes before simulating)");
    validate_cmd->add_option("platform", vfile, "platform JSON file")->required();
    validate_cmd->add_option("--set", vsets, "override a parameter: PATH=VALUE")->take_all();

    std::string dfile;
    std::vector<std::string> dsets;
    auto* dump_cmd = app.add_subcommand("dump-config", "print the fully resolved platform (defaults filled in)");
    dump_cmd->add_option("platform", dfile, "platform JSON file")->required();
    dump_cmd->add_option("--set", dsets, "override a parameter: PATH=VALUE")->take_all();

    int sweep_rc = 0;
    iommusim::cli::add_sweep_command(app, sweep_rc);
    int diff_rc = 0;
    iommusim::cli::add_diff_command(app, diff_rc);
    int stats_rc = 0;
    iommusim::cli::add_list_stats_command(app, stats_rc);

    std::string tfile;
    auto* topo_cmd = app.add_subcommand("topology", "print the PCIe tree with BDFs, links, ACS and IOMMU groups");
    topo_cmd->add_option("platform", tfile, "platform JSON file")->required();

    std::string type;
    auto* list_cmd = app.add_subcommand("list-params", "every parameter: key, type, unit, default, description");
    list_cmd->add_option("type", type, "only this section or type (e.g. memory, dma_engine, stream)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }

    if (*run_cmd) {
        if (*manifest_opt) {
            std::string err;
            if (!iommusim::cli::manifest_point(manifest, point_index, file, sets, out, err)) {
                std::cerr << "iommusim: " << manifest << ": " << err << "\n";
                return 2;
            }
            quiet = true;
        } else if (file.empty()) {
            std::cerr << "iommusim: run needs a platform file (or --manifest FILE --index N)\n";
            return 2;
        }
        fs::path used;
        const int rc = run(file, sets, out, *seed_opt ? std::optional<uint64_t>(seed) : std::nullopt, quiet, all, used);
        // The outcome goes into run.json too, so a collected sweep knows each point's exit code.
        if (!used.empty()) iommusim::cli::finish_run_record(used, rc);
        return rc;
    }
    if (*validate_cmd) {
        try {
            // The same path as run up to the first simulated instant: parse, then elaborate.
            Platform platform(load_platform(vfile, vsets));
            const auto& cfg = platform.config();
            std::printf("%s: ok (platform \"%s\", %zu devices, %zu IOMMUs)\n", vfile.c_str(), cfg.name.c_str(),
                        cfg.devices.size(), cfg.iommus.size());
            return 0;
        } catch (const ConfigError& e) {
            return bad_input(vfile, e);
        }
    }
    if (*dump_cmd) {
        try {
            std::printf("%s\n", dump_platform(load_platform(dfile, dsets)).dump(2).c_str());
            return 0;
        } catch (const ConfigError& e) {
            return bad_input(dfile, e);
        }
    }
    if (app.got_subcommand("sweep")) return sweep_rc;
    if (app.got_subcommand("diff")) return diff_rc;
    if (app.got_subcommand("list-stats")) return stats_rc;
    if (*topo_cmd) {
        try {
            PlatformConfig cfg = load_platform(tfile);
            const auto topologies = build_topologies(cfg.topology);
            for (size_t i = 0; i < topologies.size(); ++i) {
                const auto& rc = cfg.topology.root_complexes[i];
                if (topologies.size() > 1) // one tree per root complex, each in its segment's bus space
                    std::printf("%ssegment %04x, root complex %s, IOMMU %s\n", i ? "\n" : "", rc.segment,
                                rc.desc.name.c_str(), rc.iommu.empty() ? "(none)" : rc.iommu.c_str());
                std::fputs(topologies[i].render().c_str(), stdout);
                if (!rc.iommu.empty()) std::fputs(render_group_owners(cfg.scenario, topologies[i]).c_str(), stdout);
            }
            return 0;
        } catch (const ConfigError& e) {
            return bad_input(tfile, e);
        }
    }
    if (*list_cmd) {
        try {
            print_params(type);
            return 0;
        } catch (const std::exception& e) {
            std::cerr << "iommusim: " << e.what() << "\n";
            return 2;
        }
    }
    return 2;
}

// Our own main(): Debian's SystemC 2.3.4 prints its banner from
// sc_elab_and_sim() regardless of SYSC_DISABLE_COPYRIGHT_MESSAGE, and our
// stdout is the summary. The kernel itself needs no sc_elab_and_sim.
int main(int argc, char* argv[]) {
    try {
        const int rc = cli_main(argc, argv);
        if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
            std::cerr << "iommusim: cannot write to standard output\n";
            return 1;
        }
        return rc;
    } catch (const std::exception& e) { // never abort: a failure is a message and an exit code
        std::cerr << "iommusim: error: " << e.what() << "\n";
        return 1;
    }
}
// libsystemc.so references sc_main; keep it meaningful for embedders.
int sc_main(int argc, char* argv[]) { return cli_main(argc, argv); }
