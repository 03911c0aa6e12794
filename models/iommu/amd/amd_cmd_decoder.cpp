// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/amd/amd_cmd_decoder.hpp"

namespace iommusim::iommu::amd {

namespace {
struct ToActions {
    DecodedCommand operator()(const CompletionWait& c) const {
        SyncAction s;
        s.status_write = c.store;
        s.status_addr = c.store_addr;
        s.status_data = c.store_data;
        s.status_bytes = 8;
        s.interrupt = c.interrupt;
        s.fence = c.fence;
        return DecodedCommand{}.add(s);
    }
    DecodedCommand operator()(const InvalidateDevtabEntry& c) const {
        return DecodedCommand{}
            .add(InvalidateConfig{kDteCache, ConfigScope::of_requester(c.device_id)})
            .add(InvalidateConfig{kGcr3Cache, ConfigScope::of_requester(c.device_id)});
    }
    DecodedCommand operator()(const InvalidateIommuPages& c) const {
        DecodedCommand d;
        d.add(InvalidateTranslations{to_scope(c)});
        if (c.gn) d.add(InvalidateConfig{kGcr3Cache, ConfigScope::of_domain_pasid(c.domain_id, c.pasid)});
        return d;
    }
    DecodedCommand operator()(const InvalidateIotlbPages& c) const {
        InvalidateDeviceAtc a;
        a.request.target = pcie::Bdf{c.device_id};
        a.request.pasid_present = c.gn;
        a.request.pasid = c.gn ? c.pasid : 0;
        a.request.address = c.address;
        a.request.s = c.s;
        a.queue_depth = c.max_pend == 0 ? 32u : c.max_pend;
        return DecodedCommand{}.add(a);
    }
    DecodedCommand operator()(const InvalidateInterruptTable&) const { return DecodedCommand{}.add(NoOpAction{}); }
    DecodedCommand operator()(const PrefetchIommuPages&) const { return DecodedCommand{}.add(NoOpAction{}); }
    DecodedCommand operator()(const CompletePprRequest& c) const {
        PageResponseAction p;
        p.response.destination = pcie::Bdf{c.device_id};
        p.response.pasid_present = c.gn;
        p.response.pasid = c.gn ? c.pasid : 0;
        p.response.prg_index = c.tag;
        p.response.code = static_cast<pcie::PrgResponseCode>(c.status);
        return DecodedCommand{}.add(p);
    }
    DecodedCommand operator()(const InvalidateIommuAll& c) const {
        return DecodedCommand{}
            .add(InvalidateTranslations{to_scope(c)})
            .add(InvalidateConfig{kDteCache, ConfigScope::all()})
            .add(InvalidateConfig{kGcr3Cache, ConfigScope::all()});
    }
};
} // namespace

DecodedCommand to_actions(const Command& c) { return std::visit(ToActions{}, c); }

DecodedCommand decode_actions(std::span<const uint64_t> words, const AmdParams& caps, Decoded& decoded) {
    if (words.size() < 2) return DecodedCommand::fail(kIllegalCommand);
    decoded = decode({words[0], words[1]}, caps);
    if (!decoded.ok()) return DecodedCommand::fail(kIllegalCommand);
    return to_actions(decoded.command);
}

} // namespace iommusim::iommu::amd
