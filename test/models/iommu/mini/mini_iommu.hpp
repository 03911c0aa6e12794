// SPDX-License-Identifier: Apache-2.0
#pragma once
// MiniIommu: a test-only IOMMU family that exists to prove a family is one
// folder on the shared shell (models/iommu/common). Its architecture is
// made up and deliberately small:
//  * registers (8-byte): CTRL 0x00 (bit 0 translate, bit 1 queue enable),
//    CTXT 0x08 (context table base), CQB 0x10 (queue base | log2 entries in
//    4:0), CQH 0x18 (RO), CQT 0x20, STS 0x28 (bit 0 queue error, W1C; 15:8
//    its code), EQB 0x30 (event queue base | log2 entries), EQH 0x38, EQT 0x40 (RO);
//  * a linear context table indexed by RID, 16-byte entries: q0 bit 0 valid,
//    bit 1 pass-through, 51:12 root of an x86-64 4-level table; q1 15:0 domain;
//  * 16-byte commands: 0x01 invalidate all, 0x02 invalidate the context of
//    RID q0[31:16], 0x03 sync (q0 bit 8 status write of q0[63:32] to q1);
//  * 16-byte fault records in the event queue: q0 = reason | RID << 16 |
//    write << 32, q1 = address.
// No ATS, no PRI (page requests are answered Invalid Request).
#include <array>
#include <cstdint>

#include "models/iommu/common/config_cache.hpp"
#include "models/iommu/common/iommu_shell.hpp"
#include "models/iommu/common/record_ring.hpp"

namespace minifam {

using namespace iommusim;
using namespace iommusim::iommu;

namespace reg {
inline constexpr uint32_t CTRL = 0x00, CTXT = 0x08, CQB = 0x10, CQH = 0x18, CQT = 0x20, STS = 0x28, EQB = 0x30,
                          EQH = 0x38, EQT = 0x40;
}
enum Fault : uint32_t { kBadContext = 1, kNotMapped = 2, kPermission = 3, kNoAts = 4 };
enum QueueError : uint32_t { kIllegalCommand = 1, kFetchError = 2 };

class MiniIommu final : public IommuShell {
    friend class IommuShell; // the request path calls the hooks directly (see IommuShell::start)

public:
    MiniIommu(const sc_core::sc_module_name& name, const ShellParams& p, stats::Group* parent);

private:
    uint64_t& r(uint32_t off) { return regs_[off / 8]; }
    Resolution resolve(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay) override;
    Resolution check_translated(pcie::Bdf, const RequestAttrs&, sc_core::sc_time&) override { return {kNoAts}; }
    uint32_t fault_reason(const Translation& t, const AccessRequest&, const TranslationContext&) const override {
        return t.fault == FaultKind::permission ? kPermission : kNotMapped;
    }
    void record_fault(pcie::Bdf rid, const RequestAttrs& req, uint64_t addr, bool write, uint32_t reason,
                      Duration& local) override;
    void accept_page_request(const pcie::PageRequest& pr, Duration& local) override {
        respond_page_request(pr, pcie::PrgResponseCode::invalid_request, local);
    }
    uint64_t mmio_read(uint32_t off, unsigned len) override;
    void mmio_write(uint32_t off, unsigned len, uint64_t v, Duration& local) override;
    DecodedCommand decode(std::span<const uint64_t> w) override;
    void sync_queue(CommandQueue& q) override;
    void queue_consumed(const Ring::Position& cons) override { r(reg::CQH) = cons.offset; }
    void report_queue_error(uint32_t code, Duration&) override { r(reg::STS) = 1 | uint64_t{code} << 8; }
    uint64_t invalidate_config(uint8_t, const ConfigScope& s) override { return contexts_.invalidate(s); }
    void sync_interrupt(Duration&) override {}
    void report_ats_timeout(pcie::Bdf, Duration&) override {}
    void report_unknown_itag(pcie::Bdf, Duration&) override {}

    std::array<uint64_t, 9> regs_{};
    ConfigCache<TranslationContext> contexts_;
    RecordRing events_;
};

} // namespace minifam
