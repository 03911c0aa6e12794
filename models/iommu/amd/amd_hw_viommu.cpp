// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/amd/amd_hw_viommu.hpp"

#include <cstring>
#include <variant>

#include "models/common/sc_time.hpp"
#include "models/iommu/amd/amd_cmd_decoder.hpp"
#include "models/iommu/amd/amd_commands.hpp"

namespace iommusim::iommu::amd {

namespace {
constexpr uint16_t field16(uint64_t v, unsigned lo) { return static_cast<uint16_t>((v >> lo) & 0xFFFF); }
constexpr uint64_t kEntryValid = 1;        // map entry bit 0 [estimate, see header]
constexpr unsigned kEntryHostIdShift = 16; // map entry [31:16] host ID [estimate]
} // namespace

uint64_t AmdHwViommuCore::vfcntl_read(uint32_t off) const {
    if (off == hwv::kPrivateBaseReg) return private_base_;
    const uint32_t gid = off / hwv::kVfCntlStride;
    if (gid >= guests_) return 0;
    const Guest& g = g_[gid];
    switch (off % hwv::kVfCntlStride) {
    case hwv::kDevMapCtl: return g.devmap_ctl;
    case hwv::kDomMapCtl: return g.dommap_ctl;
    case hwv::kCmdCtl: return g.cmd_ctl;
    default: return 0;
    }
}

void AmdHwViommuCore::vfcntl_write(uint32_t off, uint64_t v, UnitMemPort& mem, Duration& local) {
    if (off == hwv::kPrivateBaseReg) {
        private_base_ = v & ~uint64_t{0xFFF};
        return;
    }
    const uint32_t gid = off / hwv::kVfCntlStride;
    if (gid >= guests_) return; // beyond the implemented GuestIDs: ignored, as reserved space
    Guest& g = g_[gid];
    const uint32_t reg = off % hwv::kVfCntlStride;
    if (reg == hwv::kDevMapCtl || reg == hwv::kDomMapCtl) {
        (reg == hwv::kDevMapCtl ? g.devmap_ctl : g.dommap_ctl) = v;
        if (!(v >> 63) || !(v & 1)) return; // no command
        // The unit writes the entry into the guest's map table (host ID 0 clears it: Linux's
        // clear_*_mapping writes host ID 0).
        const uint16_t guest_id = field16(v, 46), host_id = field16(v, 14);
        const bool dev = reg == hwv::kDevMapCtl;
        const uint64_t at = dev ? devmap(static_cast<uint16_t>(gid)) + uint64_t{guest_id} * 16
                                : dommap(static_cast<uint16_t>(gid)) + uint64_t{guest_id} * 8;
        const uint64_t entry = host_id ? (uint64_t{host_id} << kEntryHostIdShift) | kEntryValid : 0;
        local += p_.status_write;
        (void)mem.write(at, &entry, 8, local);
        return;
    }
    if (reg == hwv::kCmdCtl) {
        const bool was_on = g.cmd_ctl & hwv::kCmdEn;
        g.cmd_ctl = v;
        const bool on = v & hwv::kCmdEn;
        if (on && !was_on) g.stopped = false; // (re)enabling restarts a stopped buffer at its head
    }
}

uint64_t AmdHwViommuCore::vf_read(uint32_t off) const {
    const uint32_t gid = off / hwv::kVfStride;
    if (gid >= guests_) return 0;
    const Guest& g = g_[gid];
    switch (off % hwv::kVfStride) {
    case hwv::kVfHead: return g.head;
    case hwv::kVfTail: return g.tail;
    default: return 0;
    }
}

bool AmdHwViommuCore::vf_write(uint32_t off, uint64_t v) {
    const uint32_t gid = off / hwv::kVfStride;
    if (gid >= guests_) return false;
    Guest& g = g_[gid];
    const auto pos = static_cast<uint32_t>(v & 0x7FFF0); // bits 18:4
    switch (off % hwv::kVfStride) {
    case hwv::kVfHead: g.head = pos; return false;
    case hwv::kVfTail: g.tail = pos; return g.head != g.tail;
    default: return false;
    }
}

std::optional<uint16_t> AmdHwViommuCore::next_with_work(uint16_t from) const {
    for (uint16_t k = 0; k < guests_; ++k) {
        const auto gid = static_cast<uint16_t>((from + k) % guests_);
        const Guest& g = g_[gid];
        if ((g.cmd_ctl & hwv::kCmdEn) && !g.stopped && g.head != g.tail % g.bytes()) return gid;
    }
    return std::nullopt;
}

std::optional<uint16_t> AmdHwViommuCore::lookup(uint64_t table, uint64_t index, unsigned entry_bytes,
                                                 UnitMemPort& mem, Duration& local) {
    uint64_t e = 0;
    local += p_.table_read;
    if (!mem.read(table + index * entry_bytes, &e, 8, local) || !(e & kEntryValid)) return std::nullopt;
    return field16(e, kEntryHostIdShift);
}

std::optional<uint64_t> AmdHwViommuCore::guest_pa(uint16_t gid, uint64_t gpa, unsigned len, UnitMemPort& mem,
                                                  Duration& local) {
    std::array<uint64_t, 3> w{}; // GPA base, host PA, bytes
    if (!mem.read(window(gid), w.data(), sizeof w, local)) return std::nullopt;
    if (gpa < w[0] || gpa - w[0] > w[2] || len > w[2] - (gpa - w[0])) return std::nullopt;
    return w[1] + (gpa - w[0]);
}

void AmdHwViommuCore::step(uint16_t gid, UnitMemPort& mem, const Hooks& h, Duration& local) {
    Guest& g = g_.at(gid);
    std::array<uint64_t, 2> q{};
    local += p_.command_fetch;
    if (!mem.read(g.base() + g.head, q.data(), 16, local)) {
        g.stopped = true; // COMMAND_HARDWARE_ERROR on the host buffer; the guest's log is not modelled
        ++n_.illegal;
        return;
    }
    local += p_.per_command;
    Decoded d = decode(q, p_);
    if (!d.ok()) {
        g.stopped = true; // ILLEGAL_COMMAND_ERROR: the head stays on the command
        ++n_.illegal;
        return;
    }
    ++n_.commands;
    if (auto* p = std::get_if<InvalidateIommuPages>(&d.command)) {
        // The guest's DomainID -> the host's, from the DomainID map.
        if (const std::optional<uint16_t> hdom = lookup(dommap(gid), p->domain_id, 8, mem, local)) {
            p->domain_id = *hdom;
            const DecodedCommand a = to_actions(d.command);
            for (const CommandAction& act : a.list()) local += p_.per_entry_invalidate * h.execute(act);
            ++n_.executed;
        } else {
            ++n_.unmapped_domains; // no host domain carries it for this guest: nothing to drop
        }
    } else if (auto* w = std::get_if<CompletionWait>(&d.command)) {
        // In order: every earlier command of this buffer has completed.
        if (w->store) {
            if (const std::optional<uint64_t> pa = guest_pa(gid, w->store_addr, 8, mem, local)) {
                local += p_.status_write;
                (void)mem.write(*pa, &w->store_data, 8, local);
                ++n_.stores;
            }
        }
        ++n_.executed;
    } else {
        // Guest buffer trap mode; a DeviceID the command names must be mapped first.
        std::optional<uint16_t> vdev;
        if (auto* t = std::get_if<InvalidateIotlbPages>(&d.command)) vdev = t->device_id;
        if (auto* t = std::get_if<InvalidateDevtabEntry>(&d.command)) vdev = t->device_id;
        if (auto* t = std::get_if<CompletePprRequest>(&d.command)) vdev = t->device_id;
        if (vdev && !lookup(devmap(gid), *vdev, 16, mem, local)) {
            ++n_.unmapped_devices;
        } else {
            ++n_.trapped;
            if (h.trap) h.trap(gid, q);
        }
    }
    g.head = static_cast<uint32_t>((g.head + 16) % g.bytes());
}

// ---- SystemC shell --------------------------------------------------------------------------------

AmdHwViommu::AmdHwViommu(sc_core::sc_module_name name, const AmdParams& p, UnitMemPort& mem,
                         AmdHwViommuCore::Hooks hooks, stats::Group* parent)
    : sc_module(name), core_(p, p.viommu_guests), mem_(mem), hooks_(std::move(hooks)), stats_(basename(), parent),
      st_commands_(stats_.counter("guest_commands", "commands", "guest command-buffer entries the unit executed or trapped")),
      st_trapped_(stats_.counter("trapped", "commands", "guest commands handed to the hypervisor (guest buffer trap mode)")),
      st_unmapped_(stats_.counter("unmapped_ids", "commands", "guest commands naming a DomainID / DeviceID without a mapping")),
      st_latency_(stats_.histogram("guest_buffer_latency", "ns",
                                   "guest tail write reaching the unit to the buffer drained (its COMPLETION_WAIT stored)")) {
    trap_handlers_.resize(core_.guests());
    hooks_.trap = [this](uint16_t gid, const std::array<uint64_t, 2>& cmd) {
        if (trap_handlers_[gid]) trap_handlers_[gid](cmd);
    };
    vfcntl.register_b_transport(this, &AmdHwViommu::b_vfcntl);
    vf.register_b_transport(this, &AmdHwViommu::b_vf);
    SC_HAS_PROCESS(AmdHwViommu);
    SC_THREAD(engine);
}

void AmdHwViommu::set_trap_handler(uint16_t gid, std::function<void(const std::array<uint64_t, 2>&)> f) {
    trap_handlers_.at(gid) = std::move(f);
}

namespace {
uint64_t payload_value(const tlm::tlm_generic_payload& t) {
    uint64_t v = 0;
    std::memcpy(&v, t.get_data_ptr(), std::min<unsigned>(8, t.get_data_length()));
    return v;
}
void set_payload_value(tlm::tlm_generic_payload& t, uint64_t v) {
    std::memcpy(t.get_data_ptr(), &v, std::min<unsigned>(8, t.get_data_length()));
}
} // namespace

void AmdHwViommu::b_vfcntl(tlm::tlm_generic_payload& t, sc_core::sc_time& delay) {
    const auto off = static_cast<uint32_t>(t.get_address());
    if (off >= hwv::kVfCntlBarBytes) {
        t.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return;
    }
    if (t.is_read()) {
        set_payload_value(t, core_.vfcntl_read(off));
    } else {
        Duration local = from_sc(delay);
        core_.vfcntl_write(off, payload_value(t), mem_, local);
        delay = to_sc(local);
        doorbell_.notify(delay); // a re-enabled buffer may have work
    }
    t.set_response_status(tlm::TLM_OK_RESPONSE);
}

void AmdHwViommu::b_vf(int, tlm::tlm_generic_payload& t, sc_core::sc_time& delay) {
    const auto off = static_cast<uint32_t>(t.get_address());
    if (t.is_read()) {
        set_payload_value(t, core_.vf_read(off));
    } else if (core_.vf_write(off, payload_value(t))) {
        doorbell_at_ = kernel_now() + from_sc(delay);
        doorbell_.notify(delay);
    }
    t.set_response_status(tlm::TLM_OK_RESPONSE);
}

void AmdHwViommu::engine() {
    uint16_t from = 0;
    for (;;) {
        std::optional<uint16_t> gid = core_.next_with_work(from);
        if (!gid) {
            wait(doorbell_);
            continue;
        }
        const Duration start = doorbell_at_ > kernel_now() ? doorbell_at_ : kernel_now();
        // One GuestID's buffer until it is empty (or stops), each command's cost waited out
        // before the next: its effects (the store) are visible at their time.
        while (core_.next_with_work(*gid) == gid) {
            Duration local;
            const uint64_t trapped = core_.counts().trapped, unmapped = core_.counts().unmapped_domains +
                                                                         core_.counts().unmapped_devices;
            core_.step(*gid, mem_, hooks_, local);
            st_commands_.inc();
            st_trapped_.inc(core_.counts().trapped - trapped);
            st_unmapped_.inc(core_.counts().unmapped_domains + core_.counts().unmapped_devices - unmapped);
            wait(to_sc(local));
        }
        st_latency_.record((kernel_now() - start).as_ns());
        from = static_cast<uint16_t>((*gid + 1) % core_.guests());
    }
}

} // namespace iommusim::iommu::amd
