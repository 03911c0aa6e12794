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
        DecodedCommand d;
        d.add(s);
        return d;
    }
    DecodedCommand operator()(const InvalidateDevtabEntry& c) const {
        DecodedCommand d;
        d.add(InvalidateConfig{kDteCache, ConfigScope::of_requester(c.device_id)});
        d.add(InvalidateConfig{kGcr3Cache, ConfigScope::of_requester(c.device_id)});
        return d;
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
        DecodedCommand d;
        d.add(a);
        return d;
    }
    DecodedCommand operator()(const InvalidateInterruptTable&) const { return noop(); }
    DecodedCommand operator()(const PrefetchIommuPages&) const { return noop(); }
    DecodedCommand operator()(const CompletePprRequest& c) const {
        PageResponseAction p;
        p.response.destination = pcie::Bdf{c.device_id};
        p.response.pasid_present = c.gn;
        p.response.pasid = c.gn ? c.pasid : 0;
        p.response.prg_index = c.tag;
        p.response.code = static_cast<pcie::PrgResponseCode>(c.status);
        DecodedCommand d;
        d.add(p);
        return d;
    }
    DecodedCommand operator()(const InvalidateIommuAll& c) const {
        DecodedCommand d;
        d.add(InvalidateTranslations{to_scope(c)});
        d.add(InvalidateConfig{kDteCache, ConfigScope::all()});
        d.add(InvalidateConfig{kGcr3Cache, ConfigScope::all()});
        return d;
    }
    /// An illegal command: ILLEGAL_COMMAND_ERROR.
    DecodedCommand operator()(CommandError) const { return DecodedCommand::fail(kIllegalCommand); }
    // Accepted, costed by its processing only (each returns one named object: NRVO).
    static DecodedCommand noop() {
        DecodedCommand d;
        d.add(NoOpAction{});
        return d;
    }
};
} // namespace

DecodedCommand to_actions(const Command& c) { return std::visit(ToActions{}, c); }

DecodedCommand decode_actions(std::span<const uint64_t> words, const AmdParams& caps) {
    if (words.size() < 2) return DecodedCommand::fail(kIllegalCommand);
    return decode_with({words[0], words[1]}, caps, ToActions{});
}

} // namespace iommusim::iommu::amd
