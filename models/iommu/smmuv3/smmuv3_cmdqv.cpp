// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/smmuv3/smmuv3_cmdqv.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "models/common/sc_time.hpp"
#include "models/iommu/smmuv3/smmuv3_commands.hpp"

namespace iommusim::iommu::smmuv3 {

namespace {
constexpr uint32_t kCmdqErr = 1;          // GERROR / GERRORN bit 0 (as SMMU_GERROR.CMDQ_ERR)
constexpr uint32_t kConsErrShift = 24;    // VCMDQ_CONS_ERR [30:24]
constexpr uint32_t kConsErrMask = 0x7Fu << kConsErrShift;
unsigned log2_of(uint32_t n) { return n <= 1 ? 0 : static_cast<unsigned>(std::bit_width(n - 1)); }

/// Linux tegra241_guest_vcmdq_supports_cmd, plus the CMD_SYNC every batch ends with.
bool guest_supported(uint8_t opcode) {
    return opcode == op::kTlbiNhAsid || opcode == op::kTlbiNhVa || opcode == op::kAtcInv || opcode == op::kSync;
}
} // namespace

Smmuv3CmdqvCore::Smmuv3CmdqvCore(const Smmuv3Params& p) : p_(p) {
    const uint16_t vintfs = std::max<uint16_t>(p.cmdqv_vintfs, 1);
    vintf_.resize(vintfs);
    for (Vintf& v : vintf_) {
        v.match.resize(p.cmdqv_sids_per_vintf);
        v.replace.resize(p.cmdqv_sids_per_vintf);
    }
    q_.resize(static_cast<size_t>(vintfs) * p.cmdqv_lvcmdqs_per_vintf);
}

std::optional<uint16_t> Smmuv3CmdqvCore::global_of(uint16_t vintf, uint16_t lidx) const {
    for (uint16_t q = 0; q < q_.size(); ++q) {
        const uint32_t a = q_[q].alloc;
        if ((a & cmdqv::kAllocated) && ((a >> 15) & 0x3F) == vintf && ((a >> 1) & 0x7F) == lidx) return q;
    }
    return std::nullopt;
}

std::optional<uint16_t> Smmuv3CmdqvCore::vintf_of(uint16_t q) const {
    const uint32_t a = q_.at(q).alloc;
    if (!(a & cmdqv::kAllocated) || ((a >> 15) & 0x3F) >= vintf_.size()) return std::nullopt;
    return static_cast<uint16_t>((a >> 15) & 0x3F);
}

std::optional<Smmuv3CmdqvCore::QueueReg> Smmuv3CmdqvCore::queue_reg(uint32_t off) const {
    const auto page_reg = [&](uint32_t page_off, bool page1) -> std::optional<QueueReg> {
        const uint32_t q = page_off / cmdqv::kQueueStride;
        if (q >= q_.size()) return std::nullopt;
        return QueueReg{static_cast<uint16_t>(q), page1, page_off % cmdqv::kQueueStride};
    };
    if (off >= cmdqv::kPage0 && off < cmdqv::kPage1) return page_reg(off - cmdqv::kPage0, false);
    if (off >= cmdqv::kPage1 && off < cmdqv::kVintfPages) return page_reg(off - cmdqv::kPage1, true);
    if (off < cmdqv::kVintfPages) return std::nullopt;
    // A VINTF's logical pages: LVCMDQ l of VINTF i is the global queue CMDQ_ALLOC maps to (i, l).
    const uint32_t rel = off - cmdqv::kVintfPages;
    const uint32_t i = rel / 0x20000, in = rel % 0x20000;
    if (i >= vintf_.size()) return std::nullopt;
    const bool page1 = in >= 0x10000;
    const uint32_t lidx = (in % 0x10000) / cmdqv::kQueueStride;
    const std::optional<uint16_t> q = global_of(static_cast<uint16_t>(i), static_cast<uint16_t>(lidx));
    if (!q) return std::nullopt; // an unmapped LVCMDQ: reads 0, writes ignored [estimate]
    return QueueReg{*q, page1, (in % 0x10000) % cmdqv::kQueueStride};
}

bool Smmuv3CmdqvCore::enabled(uint16_t q) const {
    const Vcmdq& s = q_[q];
    const std::optional<uint16_t> v = vintf_of(q);
    return (config_ & cmdqv::kEn) && v && vintf_[*v].enabled() && (s.config & cmdqv::kEn);
}

uint64_t Smmuv3CmdqvCore::read(uint32_t off, unsigned len) const {
    if (const std::optional<QueueReg> r = queue_reg(off)) {
        const Vcmdq& s = q_[r->q];
        if (r->page1) return r->reg == cmdqv::kBase ? s.base : r->reg == cmdqv::kConsIndxBase ? s.cons_indx_base : 0;
        switch (r->reg) {
        case cmdqv::kCons: return s.cons;
        case cmdqv::kProd: return s.prod;
        case cmdqv::kQConfig: return s.config;
        case cmdqv::kQStatus: return enabled(r->q) ? 1 : 0;
        case cmdqv::kGerror: return s.gerror;
        case cmdqv::kGerrorN: return s.gerrorn;
        default: return 0;
        }
    }
    if (off >= cmdqv::kPage0) return 0;
    switch (off) {
    case cmdqv::kConfig: return config_;
    case cmdqv::kParam:
        return (uint32_t{log2_of(p_.cmdqv_sids_per_vintf)} << 12) | (uint32_t{log2_of(static_cast<uint32_t>(vintf_.size()))} << 8) |
               (uint32_t{log2_of(static_cast<uint32_t>(q_.size()))} << 4) | 1; // VER 1 [estimate]
    case cmdqv::kStatus: return config_ & cmdqv::kEn;
    case cmdqv::kVintfErrMap: return len == 8 ? vintf_err_map_ : vintf_err_map_ & 0xFFFFFFFF;
    case cmdqv::kVintfErrMap + 4: return vintf_err_map_ >> 32;
    default: break;
    }
    if (off >= cmdqv::cmdq_err_map(0) && off < cmdqv::cmdq_err_map(4)) return cmdq_err_map_[(off - cmdqv::cmdq_err_map(0)) / 4];
    if (off >= cmdqv::cmdq_alloc(0) && off < cmdqv::cmdq_alloc(static_cast<uint32_t>(q_.size())))
        return q_[(off - cmdqv::cmdq_alloc(0)) / 4].alloc;
    if (off < cmdqv::vintf(0) || off >= cmdqv::vintf(static_cast<uint32_t>(vintf_.size()))) return 0;
    const Vintf& v = vintf_[(off - cmdqv::vintf(0)) / 0x100];
    const uint32_t reg = (off - cmdqv::vintf(0)) % 0x100;
    if (reg == cmdqv::kVintfConfig) return v.config;
    if (reg == cmdqv::kVintfStatus) {
        const bool err = v.lvcmdq_err[0] || v.lvcmdq_err[1];
        return (v.enabled() ? 1u : 0u) | (err ? 2u : 0u) | (uint32_t{static_cast<uint8_t>(p_.cmdqv_lvcmdqs_per_vintf)} << 16);
    }
    const auto slot = [&](uint32_t first) { return (reg - first) / 4; };
    if (reg >= cmdqv::sid_match(0) && slot(cmdqv::sid_match(0)) < v.match.size()) return v.match[slot(cmdqv::sid_match(0))];
    if (reg >= cmdqv::sid_replace(0) && slot(cmdqv::sid_replace(0)) < v.replace.size())
        return v.replace[slot(cmdqv::sid_replace(0))];
    if (reg == cmdqv::lvcmdq_err_map(0) || reg == cmdqv::lvcmdq_err_map(1)) return v.lvcmdq_err[(reg - 0xC0) / 8];
    return 0;
}

bool Smmuv3CmdqvCore::write(uint32_t off, uint64_t v, unsigned len) {
    const auto w32 = static_cast<uint32_t>(v);
    if (const std::optional<QueueReg> r = queue_reg(off)) {
        Vcmdq& s = q_[r->q];
        if (r->page1) {
            // BASE is the host's (hw_queue_init_phys), written while the queue is off.
            if (r->reg == cmdqv::kBase && !(s.config & cmdqv::kEn)) s.base = len == 8 ? v : (s.base & ~0xFFFFFFFFull) | w32;
            if (r->reg == cmdqv::kConsIndxBase) s.cons_indx_base = v;
            return false;
        }
        switch (r->reg) {
        case cmdqv::kProd: s.prod = w32; return s.prod != (s.cons & ~kConsErrMask);
        case cmdqv::kCons:
            if (!(s.config & cmdqv::kEn)) s.cons = w32 & ~kConsErrMask; // reset by software while off
            return false;
        case cmdqv::kQConfig:
            s.config = w32 & cmdqv::kEn;
            if (!(s.config & cmdqv::kEn)) s.held = false; // a waiting command is abandoned with its queue
            return true;
        case cmdqv::kGerrorN: {
            s.gerrorn = w32;
            if ((s.gerror ^ s.gerrorn) & kCmdqErr) return false;
            // Acknowledged: the queue resumes at CONS; its error bits clear.
            s.cons &= ~kConsErrMask;
            if (const std::optional<uint16_t> vi = vintf_of(r->q)) {
                Vintf& vf = vintf_[*vi];
                const uint16_t l = static_cast<uint16_t>((s.alloc >> 1) & 0x7F);
                vf.lvcmdq_err[l / 64] &= ~(uint64_t{1} << (l % 64));
                if (!vf.lvcmdq_err[0] && !vf.lvcmdq_err[1]) vintf_err_map_ &= ~(uint64_t{1} << *vi);
            }
            cmdq_err_map_[r->q / 32] &= ~(1u << (r->q % 32));
            return true;
        }
        default: return false;
        }
    }
    if (off >= cmdqv::kPage0) return false;
    if (off == cmdqv::kConfig) {
        config_ = w32 & cmdqv::kEn;
        return true;
    }
    if (off == cmdqv::kVintfIntMask) return false;
    if (off >= cmdqv::cmdq_alloc(0) && off < cmdqv::cmdq_alloc(static_cast<uint32_t>(q_.size()))) {
        q_[(off - cmdqv::cmdq_alloc(0)) / 4].alloc = w32 & ((0x3Fu << 15) | (0x7Fu << 1) | cmdqv::kAllocated);
        return true;
    }
    if (off < cmdqv::vintf(0) || off >= cmdqv::vintf(static_cast<uint32_t>(vintf_.size()))) return false;
    Vintf& vf = vintf_[(off - cmdqv::vintf(0)) / 0x100];
    const uint32_t reg = (off - cmdqv::vintf(0)) % 0x100;
    const auto slot = [&](uint32_t first) { return (reg - first) / 4; };
    if (reg == cmdqv::kVintfConfig) {
        vf.config = w32 & (cmdqv::kHypOwn | (0xFFFFu << 1) | cmdqv::kEn);
        return true;
    }
    if (reg >= cmdqv::sid_match(0) && slot(cmdqv::sid_match(0)) < vf.match.size()) vf.match[slot(cmdqv::sid_match(0))] = w32;
    else if (reg >= cmdqv::sid_replace(0) && slot(cmdqv::sid_replace(0)) < vf.replace.size())
        vf.replace[slot(cmdqv::sid_replace(0))] = w32;
    return false;
}

std::optional<uint16_t> Smmuv3CmdqvCore::next_with_work(uint16_t from) const {
    for (uint16_t k = 0; k < q_.size(); ++k) {
        const auto q = static_cast<uint16_t>((from + k) % q_.size());
        const Vcmdq& s = q_[q];
        if (enabled(q) && s.log2() && !(s.cons & kConsErrMask) && !((s.gerror ^ s.gerrorn) & kCmdqErr) &&
            (s.prod & ((2u << s.log2()) - 1)) != (s.cons & ((2u << s.log2()) - 1)))
            return q;
    }
    return std::nullopt;
}

void Smmuv3CmdqvCore::fail(uint16_t q, CmdError e) {
    Vcmdq& s = q_[q];
    s.held = false;
    s.cons = (s.cons & ~kConsErrMask) | (uint32_t{static_cast<uint8_t>(e)} << kConsErrShift);
    s.gerror ^= kCmdqErr;
    if (const std::optional<uint16_t> vi = vintf_of(q)) {
        const uint16_t l = static_cast<uint16_t>((s.alloc >> 1) & 0x7F);
        vintf_[*vi].lvcmdq_err[l / 64] |= uint64_t{1} << (l % 64);
        vintf_err_map_ |= uint64_t{1} << *vi;
    }
    cmdq_err_map_[q / 32] |= 1u << (q % 32);
    ++n_.errors;
}

Smmuv3CmdqvCore::Wait Smmuv3CmdqvCore::hold(Vcmdq& s, const std::array<uint64_t, 2>& raw,
                                             std::optional<uint32_t> device) {
    s.held = true;
    s.held_cmd = raw;
    return {true, device};
}

void Smmuv3CmdqvCore::atc_timeout(uint16_t q) {
    ++n_.atc_timeouts;
    fail(q, CmdError::atc_inv_sync);
}

Smmuv3CmdqvCore::Wait Smmuv3CmdqvCore::step(uint16_t q, UnitMemPort& mem, const Hooks& h, Duration& local) {
    Vcmdq& s = q_.at(q);
    const unsigned log2 = s.log2();
    const uint32_t index = s.cons & ((1u << log2) - 1);
    std::array<uint64_t, 2> raw = s.held_cmd;
    if (!s.held) { // (a command that waited was fetched and paid for already)
        local += p_.command_fetch;
        if (!mem.read(s.addr() + uint64_t{index} * 16, raw.data(), 16, local)) {
            s.cons = (s.cons & ~kConsErrMask) | (uint32_t{static_cast<uint8_t>(CmdError::abt)} << kConsErrShift);
            s.gerror ^= kCmdqErr;
            ++n_.errors;
            return {};
        }
        local += p_.cmdqv_per_command;
        ++n_.commands;
    }
    s.held = false;
    std::optional<Command> c = decode_command(raw, p_);
    const Vintf& vf = vintf_[vintf_of(q).value_or(0)];
    const bool guest = !vf.hyp_own();
    if (!c || (guest && !guest_supported(c->opcode))) {
        if (c) ++n_.refused;
        fail(q, CmdError::ill);
        return {};
    }
    if (c->opcode == op::kSync) {
        if (c->cs != SyncSignal::none) { // VCMDQs support CS_NONE only (Linux CMDQ_QUIRK_SYNC_CS_NONE_ONLY)
            ++n_.refused;
            fail(q, CmdError::ill);
            return {};
        }
        // Complete once every ATC_INV before it has (IHI 0070 CMD_SYNC) and its completion arrived.
        if (h.atc_outstanding() > 0) return hold(s, raw, std::nullopt);
        local = std::max(local, h.atc_settled_in());
    } else if (c->opcode == op::kAtcInv) {
        if (guest) {
            // SID_MATCH / SID_REPLACE: the guest's StreamID -> the physical one.
            std::optional<uint32_t> psid;
            for (size_t k = 0; k < vf.match.size() && !psid; ++k)
                if ((vf.match[k] & 1) && (vf.match[k] >> 1) == c->sid) psid = vf.replace[k];
            if (!psid) {
                ++n_.unmatched_sids;
                fail(q, CmdError::ill);
                return {};
            }
            c->sid = *psid;
        }
        // The ATS Invalidate Request, through the SMMU (queue depth 32: the SMMU's CMDQ does the same).
        if (!h.invalidate_atc(InvalidateDeviceAtc{*atc_invalidation(*c), 32}, local)) return hold(s, raw, c->sid);
        if (guest) ++n_.sid_replaced;
        ++n_.atc_invalidations;
    } else if (const std::optional<InvalidationScope> scope = [&] {
                   if (guest) { // the VINTF's VMID, whatever the guest wrote
                       c->vmid = vf.vmid();
                       ++n_.vmid_forced;
                   }
                   return tlb_scope(*c);
               }()) {
        local += p_.per_entry_invalidate * h.execute(InvalidateTranslations{*scope});
    }
    ++n_.executed;
    // CONS moves past the command (a CMD_SYNC: every earlier command of this queue is done).
    const uint32_t pos = (s.cons & ((2u << log2) - 1)) + 1;
    s.cons = pos & ((2u << log2) - 1);
    return {};
}

// ---- SystemC shell --------------------------------------------------------------------------------

Smmuv3Cmdqv::Smmuv3Cmdqv(sc_core::sc_module_name name, const Smmuv3Params& p, UnitMemPort& mem,
                         Smmuv3CmdqvCore::Hooks hooks, AtcWait atc, stats::Group* parent)
    : sc_module(name), core_(p), mem_(mem), hooks_(std::move(hooks)), atc_(std::move(atc)), mmio_access_(p.mmio_access),
      stats_(basename(), parent),
      st_commands_(stats_.counter("guest_commands", "commands", "VCMDQ commands the block fetched")),
      st_vmid_forced_(stats_.counter("vmid_forced", "commands", "guest TLBIs run with their VINTF's VMID")),
      st_sid_replaced_(stats_.counter("sid_replaced", "commands", "guest ATC_INV StreamIDs translated by SID_MATCH / SID_REPLACE")),
      st_atc_invalidations_(stats_.counter("atc_invalidations", "commands", "ATC_INVs sent as ATS Invalidate Requests through the SMMU")),
      st_errors_(stats_.counter("queue_errors", "commands",
                                "VCMDQ commands refused (CONS.ERR: unsupported for a guest, unmatched StreamID, fetch abort, ATC_INV time-out)")),
      st_latency_(stats_.histogram("guest_queue_latency", "ns", "PROD write reaching the block to the queue drained")) {
    mmio.register_b_transport(this, &Smmuv3Cmdqv::b_transport);
    guest_pages.register_b_transport(this, &Smmuv3Cmdqv::b_guest);
    SC_HAS_PROCESS(Smmuv3Cmdqv);
    SC_THREAD(engine);
}

void Smmuv3Cmdqv::b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time& delay) {
    const auto off = static_cast<uint32_t>(t.get_address());
    const unsigned len = t.get_data_length();
    if (off >= cmdqv::mmio_bytes(core_.vintfs()) || (len != 4 && len != 8)) {
        t.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return;
    }
    delay += to_sc(mmio_access_);
    uint64_t v = 0;
    if (t.is_read()) {
        v = core_.read(off, len);
        std::memcpy(t.get_data_ptr(), &v, len);
    } else {
        std::memcpy(&v, t.get_data_ptr(), len);
        if (core_.write(off, v, len)) {
            doorbell_at_ = kernel_now() + from_sc(delay);
            doorbell_.notify(delay);
        }
    }
    t.set_response_status(tlm::TLM_OK_RESPONSE);
}

void Smmuv3Cmdqv::engine() {
    uint16_t from = 0;
    for (;;) {
        std::optional<uint16_t> q = core_.next_with_work(from);
        if (!q) {
            wait(doorbell_);
            continue;
        }
        const Duration start = doorbell_at_ > kernel_now() ? doorbell_at_ : kernel_now();
        // One queue until it is empty (or stops), each command's cost waited out before the
        // next: CONS moves at its time, as software polls it.
        while (core_.next_with_work(*q) == q) {
            Duration local;
            const Smmuv3CmdqvCore::Counts before = core_.counts();
            const Smmuv3CmdqvCore::Wait w = core_.step(*q, mem_, hooks_, local);
            const Smmuv3CmdqvCore::Counts& after = core_.counts();
            st_commands_.inc(after.commands - before.commands);
            st_vmid_forced_.inc(after.vmid_forced - before.vmid_forced);
            st_sid_replaced_.inc(after.sid_replaced - before.sid_replaced);
            st_atc_invalidations_.inc(after.atc_invalidations - before.atc_invalidations);
            st_errors_.inc(after.errors - before.errors);
            wait(to_sc(local));
            if (w.waiting) wait_atc(*q, w.device);
        }
        st_latency_.record((kernel_now() - start).as_ns());
        from = static_cast<uint16_t>((*q + 1) % core_.queues());
    }
}

void Smmuv3Cmdqv::wait_atc(uint16_t q, std::optional<uint32_t> device) {
    const std::optional<Duration> deadline = atc_.deadline(device);
    if (!deadline) return; // completed meanwhile: the held command runs again
    const Duration now = kernel_now();
    if (now >= *deadline) {
        atc_.abandon(device);
        core_.atc_timeout(q);
        st_errors_.inc();
        return;
    }
    wait(to_sc(*deadline - now), *atc_.completion);
}

} // namespace iommusim::iommu::smmuv3
