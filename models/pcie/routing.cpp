// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/routing.hpp"

#include <algorithm>
#include <stdexcept>

namespace iommusim::pcie {

std::string AcsFlags::str() const {
    std::string s;
    auto add = [&](bool on, const char* n) {
        if (!on) return;
        if (!s.empty()) s += ',';
        s += n;
    };
    add(source_validation, "SV");
    add(translation_blocking, "TB");
    add(request_redirect, "RR");
    add(completion_redirect, "CR");
    add(upstream_forwarding, "UF");
    add(direct_translated, "DT");
    return s.empty() ? "-" : s;
}

Router::Router(std::vector<PortMap> ports) : ports_(std::move(ports)) {
    for (size_t i = 0; i < ports_.size(); ++i)
        for (const AddrRange& w : ports_[i].windows)
            if (w.size) by_base_.push_back(Window{w.base, w.size, static_cast<int>(i)});
    std::sort(by_base_.begin(), by_base_.end(), [](const Window& a, const Window& b) { return a.base < b.base; });
    for (size_t k = 1; k < by_base_.size(); ++k) {
        const Window &a = by_base_[k - 1], &b = by_base_[k];
        if (b.base - a.base < a.size)
            throw std::invalid_argument("router: windows of ports " + ports_[static_cast<size_t>(a.port)].name +
                                        " and " + ports_[static_cast<size_t>(b.port)].name + " overlap");
    }
}

int Router::port_for_addr(uint64_t addr) const {
    // Windows are disjoint: only the last one starting at or below addr can hold it.
    auto it = std::upper_bound(by_base_.begin(), by_base_.end(), addr,
                               [](uint64_t a, const Window& w) { return a < w.base; });
    if (it == by_base_.begin()) return -1;
    --it;
    return addr - it->base < it->size ? it->port : -1;
}

int Router::port_for_bus(uint8_t bus) const {
    for (size_t i = 0; i < ports_.size(); ++i)
        if (ports_[i].bus_in_range(bus)) return static_cast<int>(i);
    return -1;
}

Route Router::peer_decision(int ingress, int egress, AddressType at) const {
    const AcsFlags& acs = ports_[static_cast<size_t>(ingress)].acs;
    if (egress == ingress) {
        // §6.12.1.1: a TLP whose target lies behind its own ingress port is
        // forwarded upstream only with Upstream Forwarding; otherwise UR.
        if (acs.upstream_forwarding) return Route{RouteTarget::upstream, -1, false, true};
        return Route{RouteTarget::unsupported, -1, false, false};
    }
    bool direct_ok = acs.direct_translated && at == AddressType::translated;
    if (acs.request_redirect && !direct_ok) return Route{RouteTarget::upstream, -1, false, true};
    return Route{RouteTarget::port, egress, true, false};
}

Route Router::up_memory(int ingress, Bdf requester, uint64_t addr, AddressType at) const {
    const PortMap& in = ports_.at(static_cast<size_t>(ingress));
    if (in.acs.source_validation && !in.bus_in_range(requester.bus()))
        return Route{RouteTarget::acs_violation, -1, false, false};
    if (in.acs.translation_blocking && at != AddressType::untranslated)
        return Route{RouteTarget::acs_violation, -1, false, false};
    int j = port_for_addr(addr);
    if (j < 0) return Route{};
    return peer_decision(ingress, j, at);
}

Route Router::up_id(int ingress, Bdf requester, Bdf target, bool to_root) const {
    const PortMap& in = ports_.at(static_cast<size_t>(ingress));
    if (in.acs.source_validation && !in.bus_in_range(requester.bus()))
        return Route{RouteTarget::acs_violation, -1, false, false};
    if (to_root) return Route{};
    int j = port_for_bus(target.bus());
    if (j < 0) return Route{};
    return peer_decision(ingress, j, AddressType::untranslated);
}

Route Router::down_memory(uint64_t addr) const {
    int j = port_for_addr(addr);
    if (j < 0) return Route{RouteTarget::unsupported, -1, false, false};
    return Route{RouteTarget::port, j, false, false};
}

Route Router::down_id(Bdf target) const {
    int j = port_for_bus(target.bus());
    if (j < 0) return Route{RouteTarget::unsupported, -1, false, false};
    return Route{RouteTarget::port, j, false, false};
}

} // namespace iommusim::pcie
