// SPDX-License-Identifier: Apache-2.0
#pragma once
// Registry tables from "type" strings to parsers, documentation and
// builders. Adding a device, workload or IOMMU kind means adding one row.
#include <any>
#include <functional>
#include <memory>
#include <string>
#include <systemc>
#include <vector>

#include "models/common/stats.hpp"
#include "models/iommu/common/cache_params.hpp"
#include "sim/platform_config.hpp"

namespace iommusim::mem { class Memory; }
namespace iommusim::pcie { class PcieFabric; class Topology; }
namespace iommusim::host { class Host; }

namespace iommusim::sim {

/// What a builder may wire to.
struct BuildContext {
    const PlatformConfig& platform;
    stats::Group& stats;
    mem::Memory& memory;
    pcie::PcieFabric& fabric;
    const pcie::Topology& topology;
    host::Host* host; ///< null when the platform has no IOMMU/host driver
    std::vector<std::shared_ptr<void>>& keep_alive; ///< non-module objects a builder creates (host-side drivers)
};

struct DeviceType {
    std::string type;
    std::string description;
    /// Parses the device object (its common keys name/type/port/requester_id are
    /// already consumed and listed in `common_keys`).
    std::function<std::any(const json& dev, const std::string& path, const std::vector<std::string>& common_keys)> parse;
    std::function<json(const std::any& params)> dump;
    std::function<void(std::vector<ParamSection>&)> document;
    /// Every PASID the device's own configuration tags DMA with, with the JSON
    /// path (relative to the device) that names it: checked against the IOMMU.
    std::function<std::vector<std::pair<std::string, uint32_t>>(const std::any& params)> pasids;
    /// Instantiates the device, attaches it to the fabric (ctx.fabric.attach_endpoint) and returns it.
    std::function<std::unique_ptr<sc_core::sc_module>(const DeviceConfig&, BuildContext&)> build;
};

struct IommuType {
    std::string type;
    std::string description;
    std::function<std::any(const json& obj, const std::string& path)> parse; ///< keys other than name/type
    std::function<json(const std::any& params)> dump;
    std::function<void(std::vector<ParamSection>&)> document;
    /// PASID width the unit translates (0 = no PASID support): devices and
    /// scenario steps using a PASID beyond it are rejected at parse time.
    std::function<unsigned(const std::any& params)> pasid_bits;
    /// Cache lines the unit allocates when built (every cache, every walk-cache
    /// level): checked against the machine's memory before anything is allocated.
    std::function<uint64_t(const std::any& params)> cache_entries;
    /// Instantiates the IOMMU and binds it: root complex upstream_out -> IOMMU,
    /// IOMMU -> memory, IOMMU messages -> root complex upstream_in.
    std::function<std::unique_ptr<sc_core::sc_module>(const ComponentConfig&, BuildContext&)> build;
};

/// A seed for one random stream of a component: the platform seed, the
/// component's name and a per-stream index, hashed (FNV-1a).
uint64_t derive_seed(uint64_t platform_seed, const std::string& name, size_t index);
/// A cache's replacement seed follows the platform seed (--seed): the
/// configured "seed" becomes the per-cache index mixed with it.
void reseed_cache(iommu::CacheGeometry& g, uint64_t platform_seed, const std::string& name);

const std::vector<DeviceType>& device_types();
const std::vector<IommuType>& iommu_types();

} // namespace iommusim::sim
