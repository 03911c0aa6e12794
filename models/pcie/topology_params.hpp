// SPDX-License-Identifier: Apache-2.0
#pragma once
// Typed description of a PCIe hierarchy, flat like the platform JSON
// ("topology": { "root_complex": {...}, "switches": [...] }, devices name the
// port they sit on). sim/ fills it; build_topology() validates and enumerates.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/pcie/link_params.hpp"
#include "models/pcie/routing.hpp"

namespace iommusim::pcie {

/// A 64-bit memory BAR. Auto-placed (naturally aligned, depth-first from the
/// root complex's MMIO base) unless `base` is given.
struct BarDesc {
    uint64_t size_bytes = 0;             ///< power of two >= 4 KiB
    std::optional<uint64_t> base;
};

/// SR-IOV capability of a PF (PCIe Base §9.3.3): VF n (0-based) has RID
/// PF RID + First VF Offset + n * VF Stride (§9.3.3.9/10).
struct SriovDesc {
    static constexpr uint16_t kDefaultFirstVfOffset = 1;
    static constexpr uint16_t kDefaultVfStride = 1;
    uint16_t num_vfs = 0;
    uint16_t first_vf_offset = kDefaultFirstVfOffset;
    uint16_t vf_stride = kDefaultVfStride;
    uint64_t vf_bar_bytes = 0;           ///< per-VF BAR0 size (0 = no VF BAR); power of two
};

struct FunctionDesc {
    uint8_t function = 0;                ///< 0..7
    std::vector<BarDesc> bars;
    std::optional<SriovDesc> sriov;
};

struct EndpointDesc {
    std::string name;
    std::string port;                    ///< name of the root port / switch downstream port above it
    uint8_t device = 0;                  ///< device number on the port's secondary bus (0 for PCIe links)
    std::vector<FunctionDesc> functions{FunctionDesc{}};
    AcsFlags acs;                        ///< ACS of a multi-function device (internal P2P between its PFs)
};

/// A root port or a switch downstream port, and the link below it.
struct DownstreamPortDesc {
    std::string name;                    ///< unique across the topology
    LinkParams link;
    AcsFlags acs;
    std::optional<uint8_t> secondary_bus;  ///< fixed bus number; otherwise depth-first
    std::optional<uint8_t> device;         ///< device number on the parent bus; default: index (+1 for root ports)
};

struct SwitchDesc {
    std::string name;
    std::string port;                    ///< port the switch's upstream port links to
    std::vector<DownstreamPortDesc> downstream_ports;
};

struct RootComplexDesc {
    static constexpr uint64_t kDefaultMmioBase = uint64_t{0x40} << 32;   // 256 GiB: above any DRAM we model
    std::string name = "rc0";
    uint8_t bus = 0;
    uint64_t mmio_base = kDefaultMmioBase;   ///< where auto-placed BARs start
    std::vector<DownstreamPortDesc> root_ports;
};

struct TopologyDesc {
    RootComplexDesc root_complex;
    std::vector<SwitchDesc> switches;
    std::vector<EndpointDesc> endpoints;
};

} // namespace iommusim::pcie
