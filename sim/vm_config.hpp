// SPDX-License-Identifier: Apache-2.0
#pragma once
// The "vms" section of a platform: virtual machines with a virtual IOMMU of
// their physical unit's family and passed-through devices (models/host/vm).
//
//   "vms": [ { "name": "vm0", "iommu": "dmar0", "mode": "nested",
//              "ram_bytes": "64MiB", "vmm": { "exit_ns": 2000, ... },
//              "devices": [ { "device": "acc0", "virtual_rid": "00:03.0" } ] } ]
//
// At boot the guest attaches every passed-through device to one DMA domain
// of its own (first stage when nested, second stage under caching mode);
// scenario steps guest_map / guest_unmap ("vm": name) map and unmap in it.
#include <set>
#include <string>
#include <vector>

#include "models/host/vm/vm_params.hpp"
#include "models/pcie/tlp.hpp"
#include "sim/config/schema.hpp"

namespace iommusim::sim {

struct ParamSection;

struct VmDeviceConfig {
    std::string device;      ///< a device of /devices (function 0)
    uint8_t function = 0;
    pcie::Bdf virtual_rid;   ///< the RID the guest sees (vDEVICE virt_id)
};

struct VmConfig {
    std::string name;
    std::string iommu;       ///< the physical unit its devices sit behind
    host::vm::VmParams params;
    std::vector<VmDeviceConfig> devices;
};

/// Parses /vms: names unique among components, IOMMUs and devices known.
std::vector<VmConfig> parse_vms(const json& arr, std::set<std::string>& names, const std::vector<std::string>& iommus,
                                const std::set<std::string>& devices);
json dump_vms(const std::vector<VmConfig>& vms);
void document_vms(std::vector<ParamSection>& out);

} // namespace iommusim::sim
