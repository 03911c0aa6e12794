// SPDX-License-Identifier: Apache-2.0
// Host-side simulation speed of DMA through the AMD-Vi model, in the shape of
// bench_vtd (test/bench/bench_rig.hpp): a plain SystemC b_transport loop (the
// baseline), then requests without PASID through v1 (Mode 4) host tables with (a)
// IOTLB hits, (b) ATC hits through an AtsEndpoint (DTE.I = 1), (c) IOTLB misses with
// cold 4-level v1 walks (PDE caches off, a random working set far beyond the IOTLB),
// and (d) commands processed per host second (63 INVALIDATE_IOMMU_PAGES + 1
// COMPLETION_WAIT per batch, as Linux flushes page by page). Instruction counts:
//   valgrind --tool=callgrind build/test/bench/bench_amd --smoke
//   callgrind_annotate --inclusive=yes callgrind.out.* | grep phase_
#include "test/bench/rig_amd.hpp"

using namespace benchrig;

int sc_main(int argc, char* argv[]) {
    return run_bench<amd_bench::Rig>(argc, argv, {"bench_amd", "(c) IOTLB miss, cold 4-level v1 walk", "(d) commands", "commands",
                                 "amd0.translation.walker.walks"});
}
