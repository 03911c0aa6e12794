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
    /// ns; port-to-port latency of a PCIe switch. Vendor briefs quote roughly
    /// 100-150 ns cut-through for Gen4/Gen5 parts (UNCONFIRMED; not in calibration.md).
    static constexpr double kDefaultLatencyNs = 110.0;
    Duration latency = Duration::ns(kDefaultLatencyNs);
};

struct PcieRootComplexParams {
    /// ns; root-port-to-host-bridge traversal each way, same estimate as the
    /// foundation RootComplexParams (calibration.md's 65 ns per 4 KB DMA bounds it).
    static constexpr double kDefaultLatencyNs = 20.0;
    Duration latency = Duration::ns(kDefaultLatencyNs);
    /// IORT root complex memory access flag CANWBS (IORT E.f): accesses of devices below it
    /// to conventional memory stay coherent whatever their attributes, No-Snoop included, so
    /// their No-Snoop requests reach memory as snooped ones (Linux: IOMMU_FWSPEC_PCI_RC_CANWBS,
    /// what arm_smmu_enforce_cache_coherency asks of every master). Firmware's word; default false.
    bool canwbs = false;
};

} // namespace iommusim::pcie
