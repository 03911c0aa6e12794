// SPDX-License-Identifier: Apache-2.0
// Host-side simulation speed of DMA through the VT-d model.
//
// Measures, in one run: a plain SystemC b_transport loop to a trivial memory
// target (the baseline), translated requests with (a) IOTLB hits, (b) ATC hits
// through an AtsEndpoint, (c) IOTLB misses with cold 4-level walks (walk caches
// off, a random working set far beyond the IOTLB), and (d) invalidation
// descriptors processed per host second (63 page-selective PASID-IOTLB
// invalidations + 1 wait per batch). Prints wall time per request and the
// ratio to the baseline. Each phase is its own function (test/bench/bench_rig.hpp, the rig in rig_vtd.hpp),
// so instruction counts per phase come from
//   valgrind --tool=callgrind build/test/bench/bench_vtd --smoke
//   callgrind_annotate --inclusive=yes callgrind.out.* | grep phase_
// `--smoke` runs a few thousand requests per phase (ctest).
#include "test/bench/rig_vtd.hpp"

using namespace benchrig;

int sc_main(int argc, char* argv[]) {
    return run_bench<vtd_bench::Rig>(argc, argv, {"bench_vtd", "(c) IOTLB miss, cold 4-level walk", "(d) invalidation descriptors", "descriptors",
                                 "dmar0.translation.walker.walks"});
}
