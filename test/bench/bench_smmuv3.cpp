// SPDX-License-Identifier: Apache-2.0
// Host-side simulation speed of DMA through the Arm SMMUv3 model, in the shape
// of bench_vtd / bench_amd: a plain SystemC b_transport loop (the baseline),
// then requests without SubstreamID through a stage-1 stream (STE Config S1,
// one linear CD, Arm VMSAv8-64 4 KiB 4-level tables) with (a) IOTLB hits, (b)
// ATC hits through an AtsEndpoint (STE.EATS = 1), (c) IOTLB misses with cold
// 4-level stage-1 walks (walk caches off, a random working set far beyond the
// IOTLB), (c') IOTLB misses through a nested stream (Config S1+S2, 4-level
// stage 1 over a 4-level stage 2 in 4 KiB pages, walk and stage-2 caches off:
// 24 reads per miss), and (d) commands processed per host second (63
// TLBI_NH_VA + 1 CMD_SYNC whose MSI writes the semaphore, as Linux flushes
// page by page). The phases and sc_main are test/bench/bench_rig.hpp's. Instruction counts:
//   valgrind --tool=callgrind build/test/bench/bench_smmuv3 --smoke
//   callgrind_annotate --inclusive=yes callgrind.out.* | grep phase_
#include "test/bench/rig_smmuv3.hpp"

using namespace benchrig;

int sc_main(int argc, char* argv[]) {
    return run_bench<smmuv3_bench::Rig>(argc, argv, {"bench_smmuv3", "(c) IOTLB miss, cold 4-level S1 walk", "(d) commands", "commands",
                                 "smmu0.translation.walker.walks"});
}
