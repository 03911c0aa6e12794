// SPDX-License-Identifier: Apache-2.0
#pragma once
// Registry tables from "type" strings to parsers, documentation and
// builders. Adding a device, workload or IOMMU kind means adding one row.
#include <any>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <systemc>
#include <tlm>
#include <vector>

#include "models/common/stats.hpp"
#include "models/common/cache_params.hpp"
#include "models/common/trace.hpp"
#include "sim/platform_config.hpp"

namespace iommusim::mem { class Memory; }
namespace iommusim::pcie { class PcieFabric; class Topology; }
namespace iommusim::host { class Host; class IommuDriver; struct DriverEnv; }
namespace iommusim::iommu { class InvalidationObserver; class IommuShell; }

namespace iommusim::sim {

/// One root complex as built: its enumerated hierarchy, its fabric, the
/// IOMMU translating its requests and its PCIe segment.
struct RootComplexUnit {
    std::string name;
    std::string iommu;     ///< "" = none (or only some root ports translated)
    std::map<std::string, std::string> port_iommu; ///< root ports with their own IOMMU
    /// The IOMMU translating device `device`'s requests (its root port's, else the root complex's).
    const std::string& iommu_for(const std::string& device) const;
    /// Some IOMMU translates requests of this root complex.
    bool translated() const { return !iommu.empty() || !port_iommu.empty(); }
    uint16_t segment = 0;
    bool canwbs = false;   ///< firmware's CANWBS for the root complex (host::DeviceInfo::canwbs of its devices)
    std::unique_ptr<pcie::Topology> topology;
    std::unique_ptr<pcie::PcieFabric> fabric;
    RootComplexUnit();
    RootComplexUnit(RootComplexUnit&&) noexcept;
    ~RootComplexUnit();
};

/// What a builder may wire to.
struct BuildContext {
    const PlatformConfig& platform;
    stats::Group& stats;
    mem::Memory& memory;
    std::vector<RootComplexUnit>& root_complexes;
    host::Host* host; ///< null when the platform has no IOMMU/host driver
    std::vector<std::shared_ptr<void>>& keep_alive; ///< non-module objects a builder creates (host-side drivers)
    /// The root complex whose hierarchy holds device `name` (ConfigError if none).
    RootComplexUnit& rc_of(const std::string& device) const;
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

/// An instantiated IOMMU unit and the ports the platform wires (any family).
struct IommuUnit {
    std::unique_ptr<sc_core::sc_module> module;
    tlm::tlm_target_socket<>* upstream = nullptr;    ///< requests from its root complex
    tlm::tlm_initiator_socket<>* messages = nullptr; ///< ATS invalidations / PRG responses down to the root complex
    tlm::tlm_target_socket<>* mmio = nullptr;        ///< its register file
    tlm::tlm_initiator_socket<>* mem = nullptr;      ///< table walks, queue fetches, status writes, MSIs
    /// Where the unit reports invalidation phases (the host driver's command queue).
    std::function<void(iommu::InvalidationObserver*)> set_observer;
    /// Where the unit reports requests, walks, faults, page requests and counters (trace.json).
    std::function<void(trace::Recorder*)> set_trace;
    /// What the host binds once the unit's driver exists (AMD hardware vIOMMU: its VF_CNTL BAR
    /// on the host CPU, handed to the driver); empty when the unit has nothing more.
    std::function<void(host::Host&, host::IommuDriver&)> wire_host;
};

/// The ports of any family built on the shared shell (iommu::IommuShell).
IommuUnit shell_unit(std::unique_ptr<iommu::IommuShell> unit);

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
    /// Instantiates the unit; the platform binds its ports (root complex,
    /// memory through the host's MSI decoder, the CPU's MMIO).
    std::function<IommuUnit(const ComponentConfig&, BuildContext&)> build;
    /// Builds the family's host driver backend for the unit.
    std::function<std::unique_ptr<host::IommuDriver>(const ComponentConfig&, const host::DriverEnv&)> build_driver;
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
