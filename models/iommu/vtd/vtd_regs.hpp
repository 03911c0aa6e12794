// SPDX-License-Identifier: Apache-2.0
#pragma once
// VT-d remapping-unit register file as a plain class (kernel-free).
//
// Fidelity: models the architected register semantics software relies on —
// read-only capability registers composed from params (VER/CAP/ECAP, §11.4.1-3),
// GCMD one-shot and level commands reflected in GSTS (TE, SRTP, QIE; §11.4.4),
// RTADDR with the scalable-mode TTM (bit 10 SMT), FSTS with RW1C error bits and
// RO PPF/FRI (§11.4.7.1), fault/invalidation/page-request event control with
// IM/IP (§11.4.7.2, §11.4.9.5, §11.4.11.5) and their data/address registers, the
// fault recording registers (§11.4.7.4-6) with the primary-fault-logging rules
// (§7.2.1), the invalidation queue registers IQH/IQT/IQA/ICS/IQER (§11.4.9),
// and the page request queue registers PQH/PQT/PQA/PRS (§11.4.11).
// Not modelled: legacy register-based context/IOTLB invalidation (CCMD and
// the IOTLB register are stored but do nothing: scalable mode requires QI),
// interrupt remapping (IRTA stored only), PMRs, MTRRs, perfmon, ECMD.
// Accesses must be 4- or 8-byte and naturally aligned (§10.2); others are ignored.
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>

#include "models/iommu/vtd/vtd_params.hpp"

namespace iommusim::iommu::vtd {

/// Register offsets (§11.4; Linux drivers/iommu/intel/iommu.h DMAR_*_REG).
namespace reg {
inline constexpr uint32_t VER = 0x00, CAP = 0x08, ECAP = 0x10, GCMD = 0x18, GSTS = 0x1C, RTADDR = 0x20,
                          CCMD = 0x28, FSTS = 0x34, FECTL = 0x38, FEDATA = 0x3C, FEADDR = 0x40, FEUADDR = 0x44,
                          IQH = 0x80, IQT = 0x88, IQA = 0x90, ICS = 0x9C, IECTL = 0xA0, IEDATA = 0xA4,
                          IEADDR = 0xA8, IEUADDR = 0xAC, IQER = 0xB0, IRTA = 0xB8, PQH = 0xC0, PQT = 0xC8,
                          PQA = 0xD0, PRS = 0xDC, PECTL = 0xE0, PEDATA = 0xE4, PEADDR = 0xE8, PEUADDR = 0xEC;
}

/// Bits of GCMD/GSTS (§11.4.4), FSTS (§11.4.7.1), event control, ICS, PRS.
namespace bits {
inline constexpr uint32_t GCMD_TE = 1u << 31, GCMD_SRTP = 1u << 30, GCMD_SFL = 1u << 29, GCMD_EAFL = 1u << 28,
                          GCMD_WBF = 1u << 27, GCMD_QIE = 1u << 26, GCMD_IRE = 1u << 25, GCMD_SIRTP = 1u << 24,
                          GCMD_CFI = 1u << 23;
inline constexpr uint32_t FSTS_PFO = 1u << 0, FSTS_PPF = 1u << 1, FSTS_IQE = 1u << 4, FSTS_ICE = 1u << 5,
                          FSTS_ITE = 1u << 6, FSTS_PRO = 1u << 7;
inline constexpr uint32_t ECTL_IM = 1u << 31, ECTL_IP = 1u << 30;
inline constexpr uint32_t ICS_IWC = 1u << 0;
inline constexpr uint32_t PRS_PPR = 1u << 0, PRS_PRO = 1u << 1;
inline constexpr uint64_t RTADDR_SMT = uint64_t{1} << 10;
inline constexpr uint64_t IQA_DW = uint64_t{1} << 11;
} // namespace bits

/// IQER.IQEI reasons (§11.4.9.9; values recalled from the spec, UNCONFIRMED in Linux/QEMU sources).
enum class IqeReason : uint8_t {
    none = 0,
    invalid_tail = 1,        ///< IQT not aligned to the descriptor width (bit 4 set with DW=1)
    fetch_error = 2,         ///< descriptor fetch hit a memory error
    invalid_type = 3,        ///< unknown / unsupported descriptor type
    reserved_field = 4,      ///< reserved field set in a descriptor
    invalid_width = 5,       ///< descriptor needs 256-bit mode (or a 256-bit type in 128-bit mode)
};

/// The interrupt an event-control register pair asks the shell to send as an MSI write.
struct Msi {
    uint64_t address = 0;
    uint32_t data = 0;
};

/// A primary fault record (§11.4.7.6; spec-layouts.md A.9).
struct FaultRecord {
    uint64_t page_addr = 0;  ///< FI: faulting address (bits 63:12 kept)
    uint16_t sid = 0;
    bool pasid_present = false;
    uint32_t pasid = 0;
    uint8_t reason = 0;      ///< FR
    bool is_read = false;    ///< T: Linux decodes 1 as "DMA Read"
    bool privileged = false; ///< PRIV (bit 94) — recorded for requests with PMR=1
    bool execute = false;    ///< EXE (bit 93)
};

class VtdRegs {
public:
    /// What a software write asks the shell to do (a bit set).
    enum Effect : uint32_t {
        none = 0,
        root_table_latched = 1u << 0, ///< SRTP: RTADDR latched; context/PASID caches must be dropped
        te_changed = 1u << 1,
        qi_enabled = 1u << 2,
        qi_disabled = 1u << 3,
        iqt_written = 1u << 4,        ///< the queue engine should look for work
        iqe_cleared = 1u << 5,        ///< software cleared FSTS.IQE: fetching may resume
        fault_msi = 1u << 6,          ///< send the fault event MSI (unmasked with IP pending)
        inv_msi = 1u << 7,            ///< send the invalidation completion MSI
        pr_msi = 1u << 8,             ///< send the page request MSI
        pqh_written = 1u << 9,
        ite_cleared = 1u << 10,
    };

    explicit VtdRegs(const VtdParams& p);

    /// Software access (MMIO). size is 4 or 8, offset naturally aligned.
    uint64_t read(uint32_t offset, unsigned size) const;
    uint32_t write(uint32_t offset, unsigned size, uint64_t value);

    // ---- hardware-side view ------------------------------------------------
    uint64_t cap() const { return raw64(reg::CAP); }
    uint64_t ecap() const { return raw64(reg::ECAP); }
    uint32_t gsts() const { return raw32(reg::GSTS); }
    bool translation_enabled() const { return gsts() & bits::GCMD_TE; }
    bool queue_enabled() const { return gsts() & bits::GCMD_QIE; }
    /// The root table pointer latched by the last SRTP (not the live RTADDR register).
    uint64_t root_table() const { return active_rtaddr_ & ~uint64_t{0xFFF}; }
    bool scalable_mode() const { return active_rtaddr_ & bits::RTADDR_SMT; }
    bool root_table_set() const { return gsts() & bits::GCMD_SRTP; }

    uint64_t iqa_base() const { return raw64(reg::IQA) & ~uint64_t{0xFFF}; }
    bool iq_256bit() const { return raw64(reg::IQA) & bits::IQA_DW; }
    /// Bytes of the invalidation queue: 2^QS 4 KiB pages (§11.4.9.3).
    uint64_t iq_bytes() const { return uint64_t{4096} << (raw64(reg::IQA) & 7); }
    uint64_t iqh() const { return raw64(reg::IQH); }
    uint64_t iqt() const { return raw64(reg::IQT); }
    void set_iqh(uint64_t byte_offset);
    uint32_t fsts() const { return raw32(reg::FSTS); }

    /// Hardware sets FSTS.IQE and IQER.IQEI (§6.5.2.10); returns a fault MSI to send, if any.
    std::optional<Msi> report_iqe(IqeReason r);
    /// Device-TLB invalidation time-out (§6.5.2.10): FSTS.ITE, IQER.ITESID.
    std::optional<Msi> report_ite(uint16_t sid);
    /// Invalid ITag in an Invalidate Completion: FSTS.ICE, IQER.ICESID.
    std::optional<Msi> report_ice(uint16_t sid);
    /// Wait descriptor with IF=1 completed: ICS.IWC and the invalidation event (§6.5.2.8).
    std::optional<Msi> report_wait_complete();

    /// Primary fault logging (§7.2.1). Returns true if the record was stored
    /// (false: overflow, PFO set). msi receives the fault event if one is due.
    bool record_fault(const FaultRecord& f, std::optional<Msi>& msi);
    uint32_t num_fault_records() const { return nfr_; }

    // ---- page request queue (§11.4.11) ----------------------------------
    uint64_t pqa_base() const { return raw64(reg::PQA) & ~uint64_t{0xFFF}; }
    uint64_t pq_bytes() const { return uint64_t{4096} << (raw64(reg::PQA) & 7); }
    uint64_t pqh() const { return raw64(reg::PQH); }
    uint64_t pqt() const { return raw64(reg::PQT); }
    bool prq_full() const;
    /// Hardware appended one 32-byte descriptor at PQT: advance PQT, set PPR, raise the event.
    std::optional<Msi> advance_pqt();
    /// Queue full: PRS.PRO (§7.5.1).
    std::optional<Msi> report_prq_overflow();

    uint64_t raw64(uint32_t off) const {
        uint64_t v;
        std::memcpy(&v, &regs_[off], 8);
        return v;
    }
    uint32_t raw32(uint32_t off) const {
        uint32_t v;
        std::memcpy(&v, &regs_[off], 4);
        return v;
    }

private:
    void put64(uint32_t off, uint64_t v);
    void put32(uint32_t off, uint32_t v);
    void write32(uint32_t off, uint32_t v, uint32_t& effects);
    std::optional<Msi> fault_event(uint32_t pre_fsts);
    std::optional<Msi> simple_event(uint32_t ctl_off);
    Msi msi_of(uint32_t ctl_off) const;
    void refresh_ppf();

    std::array<uint8_t, VtdParams::kMmioSize> regs_{};
    std::array<uint32_t, VtdParams::kMmioSize / 4> rw_{};   ///< software-writable bits per dword
    std::array<uint32_t, VtdParams::kMmioSize / 4> w1c_{};  ///< write-1-to-clear bits per dword
    uint64_t active_rtaddr_ = 0;
    uint32_t fro_;
    uint32_t nfr_;
    uint32_t next_fault_ = 0;  ///< hardware's internal fault record index
};

} // namespace iommusim::iommu::vtd
