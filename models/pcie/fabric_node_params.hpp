// SPDX-License-Identifier: Apache-2.0
#pragma once
// Parameters of a PCIe fabric node (switch or root complex): its downstream
// ports with their links, the routing table, and the traversal latency.
#include <vector>

#include "models/common/time.hpp"
#include "models/pcie/link_params.hpp"
#include "models/pcie/routing.hpp"

namespace iommusim::pcie {

struct FabricNodeParams {
    Duration latency;                  ///< ingress-to-egress traversal, each way
    Router router;                     ///< one PortMap per downstream port
    std::vector<LinkParams> links;     ///< link below each downstream port (same order)
    bool coherent_no_snoop = false;    ///< requests going up keep coherency despite No-Snoop (root complex CANWBS)
};

struct SwitchParams {
    /// ns; port-to-port latency of a PCIe switch, cut-through: calibration.md "switch port to
    /// port, cut-through" 105 ns (Broadcom PEX88000, Gen4 x16; <= 150 ns Gen3).
    static constexpr double kDefaultLatencyNs = 105.0;
    Duration latency = Duration::ns(kDefaultLatencyNs);
};

struct PcieRootComplexParams {
    /// ns; root-port-to-host-bridge traversal each way: calibration.md "root complex
    /// traversal, one way" ~100 ns [estimate, weak: what remains of a 407-424 ns MMIO read
    /// of a NIC BAR after the link hops and the device].
    static constexpr double kDefaultLatencyNs = 100.0;
    Duration latency = Duration::ns(kDefaultLatencyNs);
    /// IORT root complex memory access flag CANWBS (IORT E.f): accesses of devices below it
    /// to conventional memory stay coherent whatever their attributes, No-Snoop included, so
    /// their No-Snoop requests reach memory as snooped ones (Linux: IOMMU_FWSPEC_PCI_RC_CANWBS,
    /// what arm_smmu_enforce_cache_coherency asks of every master). Firmware's word; default false.
    bool canwbs = false;
};

} // namespace iommusim::pcie
