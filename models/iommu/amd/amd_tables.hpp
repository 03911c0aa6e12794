// SPDX-License-Identifier: Apache-2.0
#pragma once
// AMD-Vi context resolution from the real in-memory tables (kernel-free), and
// a bit-exact writer for those tables (host driver model and tests).
//
// Fidelity: the 256-bit device table entry of shared/reference/spec-layouts.md B.1
// (Linux amd_iommu_types.h DTE_* / DEV_ENTRY_*), the 64-bit GCR3 table entry of B.2
// and the 1-3 level GCR3 table indexed by PASID[8:0], [17:9], [19:18] (GLX + 1
// levels, Linux __get_gcr3_pte), resolved into the core's TranslationContext:
//  - host (v1) tables are the core's stage 2 (format amd_v1, levels = DTE.Mode,
//    input 12 + 9 * Mode bits, 64 for Mode 6), tagged by DomainID;
//  - guest (v2) tables are stage 1 (x86-64, 4 or 5 levels from DTE GPM), tagged by
//    DomainID + PASID; a request without PASID uses GCR3[0] when GV and GIoV are set;
//  - GV with Mode 1-6 is v2-over-v1 (nested): the guest CR3 and guest table
//    pointers are GPAs the walker translates through the host table. So is the
//    GCR3 table root (and its lower levels) when the unit is given the stage-2
//    translation (Stage2Fn): Linux's nested DTE copies the guest's GCR3 root
//    pointer unchanged (drivers/iommu/amd/nested.c set_dte_nested), so the unit
//    must read the guest's GCR3 table through the host table. A GCR3 address the
//    host table does not map is an IO_PAGE_FAULT (the event the spec names for
//    it is UNCONFIRMED). Without a Stage2Fn the table is read at its address as is;
//  - DTE.IR/IW are ANDed with the page-table rights (QEMU fetch_pte "including
//    the DTE"); Mode 0 without GV is "no translation, access controlled by IR/IW".
// V=0 and (V=1, TV=0) pass requests untranslated, as QEMU amdvi_as_to_dte does.
// ILLEGAL_DEV_TABLE_ENTRY (RZ=1 for reserved bits) for: reserved bits (q0 6:2, 63;
// q2 53:52; q3 14:0, 53:48, QEMU's masks updated for HAD and GPM), Mode 7 or above
// EFR.HATS, a table root wider than the physical address width, GV without
// EFR.GTSup or with Control.GTEn clear (model's choice), GLX 3 or above GLXSup, GPM
// 2-3 or 5-level without GATS, GIoV without GIoSup, PPR without PPRSup, HAD without
// HASup. A DeviceID beyond the device table size is treated the same (model's choice).
// GCR3 faults (V=0, pointer too wide, PASID beyond the table or EFR.PASmax) give
// IO_PAGE_FAULT with GN; read errors give DEV_TAB_ / PAGE_TAB_HARDWARE_ERROR.
// A PASID-tagged request to a DTE with GV=0 is blocked with IO_PAGE_FAULT
// (UNCONFIRMED: the spec's rule was not found in any source).
// Not modelled: interrupt remapping (IV/IntTabLen/IRT root and the pass bits are
// decoded and written only), the exclusion range (EX decoded only), SysMgt and
// IoCtl (decoded only), SE (decoded; only SA suppresses IO_PAGE_FAULT records),
// q3 (vIOMMU/SNP fields, kept raw). The v1 PTE U bit is reported by the core's
// walker (Translation::untranslated_only) and the shell puts it in ATS completions.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>

#include "models/iommu/amd/amd_events.hpp"
#include "models/iommu/amd/amd_params.hpp"
#include "models/iommu/common/table_builder.hpp"
#include "models/iommu/common/translation.hpp"
#include "models/mem/phys_mem.hpp"

namespace iommusim::iommu::amd {

/// Device table entry, decoded (256-bit; spec-layouts.md B.1).
struct Dte {
    // q0
    bool v = false, tv = false;
    uint8_t had = 0;            ///< host access/dirty control (8:7)
    uint8_t mode = 0;           ///< host paging mode 0-7 (11:9)
    uint64_t host_root = 0;     ///< 51:12
    bool ppr = false, gprp = false, giov = false, gv = false;
    uint8_t glx = 0;            ///< GCR3 levels - 1 (57:56)
    bool ir = false, iw = false;
    // q1
    uint16_t domain_id = 0;
    uint64_t gcr3_root = 0;     ///< split 60:58 / 95:80 / 127:107, 4 KiB aligned
    bool i = false, se = false, sa = false;
    uint8_t ioctl = 0;          ///< 100:99
    bool cache = false, sd = false, ex = false;
    uint8_t sysmgt = 0;         ///< 105:104
    // q2
    bool iv = false;
    uint8_t int_tab_len = 0;    ///< 132:129
    bool ig = false;            ///< 133
    uint64_t irt_root = 0;      ///< 179:134, 64-byte aligned
    uint8_t gpm = 0;            ///< guest paging mode 183:182: 0 = 4-level, 1 = 5-level
    bool init_pass = false, eint_pass = false, nmi_pass = false;
    uint8_t intctl = 0;         ///< 189:188
    bool lint0_pass = false, lint1_pass = false;
    uint64_t q3 = 0;            ///< not interpreted (vIOMMU / SNP fields)

    std::array<uint64_t, 4> encode() const;
    static Dte decode(const std::array<uint64_t, 4>& q);
    /// Whether any reserved bit of the raw entry is set.
    static bool reserved_set(const std::array<uint64_t, 4>& q);
    friend bool operator==(const Dte&, const Dte&) = default;
};

/// GCR3 table entry bits (spec-layouts.md B.2).
namespace gcr3 {
inline constexpr uint64_t V = 1;
inline constexpr unsigned kIndexBits = 9;
/// Number of PASID bits a GCR3 table of glx + 1 levels covers.
constexpr unsigned pasid_bits(uint8_t glx) { return kIndexBits * (glx + 1u) > 20 ? 20 : kIndexBits * (glx + 1u); }
} // namespace gcr3

/// Device Table Base register contents (MMIO 0x0000): base 51:12, Size 8:0 = (pages - 1).
struct DevTable {
    uint64_t base = 0;
    uint32_t entries = 0;   ///< (Size + 1) * 4096 / 32
    static DevTable from_register(uint64_t reg) {
        return {reg & ((uint64_t{1} << 52) - 1) & ~uint64_t{0xFFF}, static_cast<uint32_t>(((reg & 0x1FF) + 1) * 128)};
    }
};

/// What a request is, for the resolution and for the flags of its event record.
struct RequestInfo {
    enum class Type : uint8_t { untranslated, translation_request, translated, page_request };
    uint16_t device_id = 0;
    bool has_pasid = false;
    uint32_t pasid = 0;
    uint64_t addr = 0;
    bool write = false, execute = false, privileged = false;
    Type type = Type::untranslated;
};
/// Event flags describing the request: GN, NX, US, RW, TR.
uint16_t request_flags(const RequestInfo& r);

/// Result of checking a DTE against the capabilities.
struct DteCheck {
    bool illegal = false;
    bool reserved = false;   ///< the RZ flag of the event
    const char* why = nullptr;
};
DteCheck check_dte(const Dte& d, const std::array<uint64_t, 4>& raw, const AmdParams& caps, bool gt_enabled);

/// The outcome of resolving a request's context.
struct Resolved {
    enum class Kind : uint8_t { translate, pass_through, event };
    Kind kind = Kind::event;
    Dte dte;
    TranslationContext ctx;      ///< translate: stages and tags; pass_through: ctx.pass_through
    bool check_ir_iw = false;    ///< apply dte.ir / dte.iw (not for V=0 / TV=0 pass-through)
    std::optional<Event> event;  ///< kind == event
    bool suppressed = false;     ///< the event is an IO_PAGE_FAULT that DTE.SA suppresses
    unsigned reads = 0;          ///< DTE (1) + GCR3 entries read
};

/// Stateless reader of the device table and GCR3 tables through PhysMem.
class AmdTableReader {
public:
    explicit AmdTableReader(const AmdParams& p) : p_(p) {}

    struct DteRead {
        enum class Status : uint8_t { ok, out_of_range, bus_error } status = Status::ok;
        uint64_t addr = 0;
        std::array<uint64_t, 4> raw{};
        Dte dte;
    };
    DteRead read_dte(mem::PhysMem& m, const DevTable& dt, uint16_t device_id) const;

    /// Stage 2 for nested GCR3 reads: translates a GPA with the DTE's host (v1) context.
    using Stage2Fn = std::function<Translation(const TranslationContext& s2ctx, uint64_t gpa)>;

    struct Gcr3Read {
        enum class Status : uint8_t { ok, pasid_too_large, not_valid, reserved, bus_error, s2_fault } status = Status::ok;
        uint64_t cr3 = 0;        ///< guest CR3 (root of the v2 table) for ok
        uint64_t fail_addr = 0;  ///< entry address for not_valid / reserved / bus_error
        unsigned reads = 0;
    };
    /// `s2`: under nesting (DTE.Mode != 0) each GCR3 table address is a GPA translated by it.
    Gcr3Read read_gcr3(mem::PhysMem& m, const Dte& d, uint32_t pasid, const Stage2Fn* s2 = nullptr) const;

    /// The translation context of a checked DTE and (for guest translation) the
    /// guest CR3 of the PASID used (`as_tag`).
    TranslationContext make_context(const Dte& d, bool guest, uint32_t as_tag, uint64_t cr3) const;

    /// Full resolution: DTE, checks, GCR3 walk, context (no caches).
    Resolved resolve(mem::PhysMem& m, const DevTable& dt, const RequestInfo& r, bool gt_enabled,
                     const Stage2Fn* s2 = nullptr) const;
    /// The same from a DTE already read (a DTE-cache hit): checks, GCR3 walk, context.
    Resolved resolve(mem::PhysMem& m, const DteRead& dte, const RequestInfo& r, bool gt_enabled,
                     const Stage2Fn* s2 = nullptr) const;

    /// ANDs DTE.IR/IW into a translation's rights (QEMU fetch_pte: "permission bits are
    /// ANDed at every level, including the DTE") and turns a request they deny into a
    /// permission fault. For a pass-through result pass t with output = iova and all rights.
    static Translation apply_dte_rights(const Resolved& res, Translation t, const AccessRequest& req);

    /// ATS admission by DTE.I: a translation request or a translated request from a device
    /// whose (valid, translating) DTE has I = 0 is an INVALID_DEVICE_REQUEST (the unit
    /// aborts it); nullopt when the request may proceed. V = 0 / TV = 0 impose no check.
    static std::optional<Event> check_ats(const Resolved& res, const RequestInfo& r);

    /// A PCIe Page Request as the PPR log records it, or the event it raises instead:
    /// INVALID_PPR_REQUEST when the DTE has PPR = 0 or the unit's PPREn is clear.
    struct PprOutcome {
        std::optional<PprEntry> entry;
        std::optional<Event> event;
    };
    static PprOutcome page_request(const Resolved& res, const RequestInfo& r, bool read, bool write, bool last,
                                   uint16_t prg_index, bool ppr_enabled);

    /// What a failed walk raises: PAGE_TAB_HARDWARE_ERROR for a table read that failed, else
    /// IO_PAGE_FAULT with PR|PE for a permission fault, PR|RZ for reserved bits or a level
    /// the configuration does not allow, PR = 0 for a not-present entry or an address beyond
    /// the table's width. One mapping for the unit (AmdIommu::fault_reason) and the records.
    struct WalkFault {
        EventCode code;
        uint16_t flags; ///< event flags the fault adds to the request's own
    };
    static WalkFault walk_fault(FaultKind f);
    /// The event record for a walk that failed for request `r` under `res`.
    static Event walk_fault_event(const RequestInfo& r, const Resolved& res, const Translation& t);

private:
    const AmdParams& p_;
};

/// Writes the device table and GCR3 tables bit-exactly into simulated memory,
/// the way Linux drivers/iommu/amd does: one contiguous device table (Linux sizes
/// it for 64 Ki DeviceIDs, 2 MiB), DTEs written upper 128 bits first and the
/// half holding V/TV last (Linux update_dte256), GCR3 tables allocated on demand
/// with intermediate entries = next table | V.
class AmdTableWriter {
public:
    /// `alloc` must return zeroed memory (fresh pages of a bump allocator over sparse memory).
    AmdTableWriter(mem::PhysMem& m, TableAllocator alloc, uint32_t devtab_pages = 512);

    uint64_t devtab_base() const { return devtab_; }
    /// The Device Table Base register value Linux writes (base | pages - 1).
    uint64_t devtab_register() const { return devtab_ | (devtab_pages_ - 1u); }
    uint64_t dte_addr(uint16_t device_id) const { return devtab_ + 32u * device_id; }

    void set_dte(uint16_t device_id, const Dte& d);
    /// Every DTE V = 1, TV = 1, the rest 0 (blocked): one 8-byte store each into the zeroed table.
    void block_all();
    Dte get_dte(uint16_t device_id) const;

    /// A zeroed 4 KiB GCR3 table (the top level of a new GCR3 table).
    uint64_t new_gcr3_table();
    /// Writes GCR3[pasid] = cr3 | V under `root` with glx + 1 levels, creating levels on the way.
    void set_gcr3(uint64_t root, uint8_t glx, uint32_t pasid, uint64_t cr3);
    void clear_gcr3(uint64_t root, uint8_t glx, uint32_t pasid);
    /// Address of GCR3[pasid]'s leaf entry, if the intermediate levels exist.
    std::optional<uint64_t> gcr3_entry_addr(uint64_t root, uint8_t glx, uint32_t pasid) const;

    /// Linux get_gcr3_levels(): GLX for a PASID space of 2^pasid_bits entries.
    static uint8_t glx_for(unsigned pasid_bits) {
        return pasid_bits == 0 ? 0 : static_cast<uint8_t>((pasid_bits + 8) / 9 - 1);
    }

private:
    uint64_t alloc_page();
    mem::PhysMem& m_;
    TableAllocator alloc_;
    uint64_t devtab_ = 0;
    uint32_t devtab_pages_;
};

} // namespace iommusim::iommu::amd
