// SPDX-License-Identifier: Apache-2.0
#pragma once
// Routing decisions of one PCIe fabric node (a switch, or the root complex
// acting as the top-level virtual switch over its root ports). Kernel-free;
// the SystemC switch / root complex and the topology's IOMMU-group derivation
// use the same rules.
//
// Fidelity
//  Modelled (PCIe Base §2.2.4 address/ID routing, §6.12 ACS):
//   - memory requests by address against each downstream port's windows
//     (the BARs below it), messages and completions by ID (bus ranges);
//   - peer-to-peer: a request from downstream port i hitting port j != i goes
//     straight to j (the IOMMU never sees it) unless port i has ACS P2P Request
//     Redirect, which sends it upstream; Direct Translated P2P lets AT=10
//     requests take the direct path even with RR;
//   - ACS Source Validation (requester bus outside the port's bus range),
//     Translation Blocking (AT != 00), Upstream Forwarding (target behind the
//     ingress port itself: forwarded upstream with UF, else Unsupported Request).
//  Not modelled: P2P Egress Control vectors, ACS on multi-function device
//   internals beyond the grouping rule, bridge windows as base/limit registers
//   (we match exact BAR ranges), I/O and prefetchable windows, Completion
//   Redirect as a separate path (completions return on the request's path in
//   TLM, which is what CR enforces for redirected requests).
#include <cstdint>
#include <string>
#include <vector>

#include "models/pcie/tlp.hpp"

namespace iommusim::pcie {

/// ACS control bits (PCIe Base §7.7.8; shared/reference spec-layouts D.9).
struct AcsFlags {
    bool source_validation = false;       ///< SV, bit 0
    bool translation_blocking = false;    ///< TB, bit 1
    bool request_redirect = false;        ///< RR, bit 2
    bool completion_redirect = false;     ///< CR, bit 3
    bool upstream_forwarding = false;     ///< UF, bit 4
    bool direct_translated = false;       ///< DT, bit 6

    /// The set Linux requires on every port of a path before it trusts the
    /// path to isolate (drivers/pci REQ_ACS_FLAGS: SV | RR | CR | UF).
    bool isolating() const {
        return source_validation && request_redirect && completion_redirect && upstream_forwarding;
    }
    static AcsFlags all_isolating() { return AcsFlags{true, false, true, true, true, false}; }
    /// "SV,RR,CR,UF" or "-".
    std::string str() const;
};

struct AddrRange {
    uint64_t base = 0;
    uint64_t size = 0;
    bool contains(uint64_t a) const { return a >= base && a - base < size; }
    bool overlaps(const AddrRange& o) const { return base < o.base + o.size && o.base < base + size; }
};

/// What a fabric node knows about one of its downstream ports.
struct PortMap {
    std::string name;
    uint8_t secondary = 0;
    uint8_t subordinate = 0;
    std::vector<AddrRange> windows;   ///< every BAR below the port
    AcsFlags acs;
    bool bus_in_range(uint8_t bus) const { return bus >= secondary && bus <= subordinate; }
};

enum class RouteTarget : uint8_t { upstream, port, unsupported, acs_violation };

struct Route {
    RouteTarget target = RouteTarget::upstream;
    int port = -1;            ///< for RouteTarget::port
    bool peer = false;        ///< routed peer-to-peer without going upstream
    bool redirected = false;  ///< would have been P2P, sent upstream by ACS
};

class Router {
public:
    Router() = default;
    /// Windows must not overlap (the topology builder rejects overlapping
    /// BARs); std::invalid_argument otherwise.
    explicit Router(std::vector<PortMap> ports);
    const std::vector<PortMap>& ports() const { return ports_; }

    /// O(log windows): a binary search of the windows sorted by base.
    int port_for_addr(uint64_t addr) const;
    int port_for_bus(uint8_t bus) const;

    /// A memory request that arrived on downstream port `ingress`.
    Route up_memory(int ingress, Bdf requester, uint64_t addr, AddressType at) const;
    /// An ID-routed message/completion that arrived on downstream port
    /// `ingress`; `to_root` for messages routed to the root complex.
    Route up_id(int ingress, Bdf requester, Bdf target, bool to_root) const;
    /// Requests from above: by address / by ID.
    Route down_memory(uint64_t addr) const;
    Route down_id(Bdf target) const;

private:
    Route peer_decision(int ingress, int egress, AddressType at) const;
    struct Window {
        uint64_t base, size;
        int port;
    };
    std::vector<PortMap> ports_;
    std::vector<Window> by_base_; ///< every non-empty window, sorted by base
};

} // namespace iommusim::pcie
