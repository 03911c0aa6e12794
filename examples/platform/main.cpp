// SPDX-License-Identifier: Apache-2.0
// Drives a whole platform through sim::Platform, as the iommusim CLI does:
// load a platform file (with overrides), elaborate, run, read stats.
//   platform_example PLATFORM.json [PATH=VALUE ...]
#include <cstdio>
#include <iommusim/sim/platform.hpp>
#include <iommusim/sim/stat_select.hpp>
#include <iommusim/sim/stats_writer.hpp>

int sc_main(int argc, char* argv[]) {
    namespace sim = iommusim::sim;
    if (argc < 2) {
        std::fprintf(stderr, "usage: platform_example PLATFORM.json [PATH=VALUE ...]\n");
        return 2;
    }
    try {
        sim::Platform platform(sim::load_platform(argv[1], std::vector<std::string>(argv + 2, argv + argc)));
        platform.run();
        for (const char* s : {"nic0.rx_throughput", "os.invalidation.latency.p99", "os.oracle.violations"}) {
            const sim::StatSelector sel = sim::select_stat(platform.stats(), s, "example");
            std::printf("%-32s %s %s\n", s, sim::format_number(sim::selected_value(sel)).c_str(), sel.entry->unit.c_str());
        }
        return 0;
    } catch (const sim::ConfigError& e) {
        std::fprintf(stderr, "%s: %s\n", argv[1], e.what());
        return 2;
    }
}
