// SPDX-License-Identifier: Apache-2.0
#pragma once
// The iommufd uAPI structures a VMM hands the host kernel for nesting, laid
// out as Linux's include/uapi/linux/iommufd.h defines them (shared/reference/
// spec-layouts.md E.1-E.5): the invalidation request with its user array of
// driver-specific entries, the VT-d stage-1 and SMMUv3 invalidation entries,
// and the nested-HWPT allocation data. The entry array is read from the
// caller's bytes exactly as the kernel copies it from user memory
// (entry_len, entry_num, data_type), so malformed arrays fail as they do
// there. Errors are errno values (IommuErrno), as the ioctl returns them.
#include <cstdint>

namespace iommusim::host::uapi {

/// What an iommufd ioctl returns (0 = success), as errno.
enum class Errno : int { ok = 0, enoent = 2, eio = 5, ebusy = 16, eexist = 17, einval = 22, espipe = 29, eopnotsupp = 95 };
const char* to_string(Errno e);

/// IOMMU_HWPT_INVALIDATE data types (E.1).
inline constexpr uint32_t kInvalidateDataVtdS1 = 0, kInvalidateDataArmSmmuv3 = 1;
/// AMD-Vi vIOMMU invalidation: one raw 128-bit guest command per entry, the shape of the SMMUv3
/// one (E.3). Linux has no such type yet (drivers/iommu/amd/nested.c has no cache_invalidate_user);
/// this value is the model's, outside Linux's range, for the software path threads/003 describes.
inline constexpr uint32_t kInvalidateDataAmdModel = 0x80;

/// IOMMU_HWPT_ALLOC data types (Linux enum iommu_hwpt_data_type).
inline constexpr uint32_t kHwptDataNone = 0, kHwptDataVtdS1 = 1, kHwptDataArmSmmuv3 = 2, kHwptDataAmdGuest = 3;

/// struct iommu_hwpt_invalidate (E.1). `data_uptr` is a pointer into the caller's memory.
struct HwptInvalidate {
    uint32_t size = sizeof(HwptInvalidate);
    uint32_t hwpt_id = 0;
    uint64_t data_uptr = 0;
    uint32_t data_type = 0;
    uint32_t entry_len = 0;
    uint32_t entry_num = 0;   ///< in: entries; out: entries handled successfully
    uint32_t reserved = 0;
};
static_assert(sizeof(HwptInvalidate) == 32);

/// struct iommu_hwpt_vtd_s1_invalidate (E.2).
struct VtdS1Invalidate {
    static constexpr uint32_t kFlagLeaf = 1u << 0; ///< IOMMU_VTD_INV_FLAGS_LEAF -> IH
    uint64_t addr = 0;        ///< 4 KiB aligned
    uint64_t npages = 0;      ///< addr 0 + npages UINT64_MAX = everything
    uint32_t flags = 0;
    uint32_t reserved = 0;
};
static_assert(sizeof(VtdS1Invalidate) == 24);

/// struct iommu_viommu_arm_smmuv3_invalidate (E.3): one raw guest command.
struct ArmSmmuv3Invalidate {
    uint64_t cmd[2] = {0, 0};
};
static_assert(sizeof(ArmSmmuv3Invalidate) == 16);

/// struct iommu_hwpt_vtd_s1 (E.2, nested HWPT allocation data).
struct HwptVtdS1 {
    static constexpr uint64_t kSre = 1u << 0, kEafe = 1u << 1, kWpe = 1u << 2;
    uint64_t flags = 0;
    uint64_t pgtbl_addr = 0;  ///< guest stage-1 root (GPA) -> FLPTPTR
    uint32_t addr_width = 48; ///< 48 or 57 -> FLPM 0 / 1
    uint32_t reserved = 0;
};
static_assert(sizeof(HwptVtdS1) == 24);

/// struct iommu_hwpt_amd_guest: the guest's 256-bit DTE (IOMMU_HWPT_DATA_AMD_GUEST).
struct HwptAmdGuest {
    uint64_t dte[4] = {0, 0, 0, 0};
};
static_assert(sizeof(HwptAmdGuest) == 32);

/// struct iommu_hwpt_arm_smmuv3: dwords 0-1 of the guest's STE (IOMMU_HWPT_DATA_ARM_SMMUV3, C.1).
struct HwptArmSmmuv3 {
    uint64_t ste[2] = {0, 0};
};
static_assert(sizeof(HwptArmSmmuv3) == 16);

// ---- guest fault delivery (Linux iommufd eventq.c: IOMMU_FAULT_QUEUE_ALLOC, IOMMU_VEVENTQ_ALLOC) ----

/// IOMMU_HWPT_ALLOC flag: fault_id names a fault queue (IOMMU_HWPT_FAULT_ID_VALID).
inline constexpr uint32_t kHwptFaultIdValid = 1u << 4;

/// struct iommu_fault_alloc (IOMMU_FAULT_QUEUE_ALLOC): a fault queue object and its file.
struct FaultAlloc {
    uint32_t size = sizeof(FaultAlloc);
    uint32_t flags = 0;       ///< must be 0
    uint32_t out_fault_id = 0;
    uint32_t out_fault_fd = 0;
};
static_assert(sizeof(FaultAlloc) == 16);

/// struct iommu_hwpt_pgfault: one page fault as read() from a fault queue's file. A group's
/// requests are read together; the last carries IOMMU_PGFAULT_FLAGS_LAST_PAGE and every one
/// the group's cookie.
struct HwptPgfault {
    static constexpr uint32_t kFlagPasidValid = 1u << 0, kFlagLastPage = 1u << 1;
    static constexpr uint32_t kPermRead = 1u << 0, kPermWrite = 1u << 1, kPermExec = 1u << 2, kPermPriv = 1u << 3;
    uint32_t flags = 0;
    uint32_t dev_id = 0;      ///< the iommufd device object the request came from
    uint32_t pasid = 0;       ///< as the hardware saw it (valid with kFlagPasidValid)
    uint32_t grpid = 0;       ///< Page Request Group Index (SMMUv3 stall: the STAG)
    uint32_t perm = 0;
    uint32_t reserved = 0;
    uint64_t addr = 0;        ///< page address
    uint32_t length = 0;      ///< prefetch hint; 0 = none
    uint32_t cookie = 0;      ///< identifies the group; echoed in its response
};
static_assert(sizeof(HwptPgfault) == 40);

/// enum iommufd_page_response_code (Linux accepts only these two from user space).
inline constexpr uint32_t kPageRespSuccess = 0, kPageRespInvalid = 1;

/// struct iommu_hwpt_page_response: what the VMM write()s back, one per group.
struct HwptPageResponse {
    uint32_t cookie = 0;
    uint32_t code = kPageRespSuccess;
};
static_assert(sizeof(HwptPageResponse) == 8);

/// enum iommu_veventq_type.
inline constexpr uint32_t kVeventqTypeDefault = 0, kVeventqTypeArmSmmuv3 = 1;
/// enum iommu_veventq_flag: a header with no data after it, marking events lost to an overflow.
inline constexpr uint32_t kVeventqFlagLostEvents = 1u << 0;

/// struct iommufd_vevent_header: precedes each vEVENT's data in a read(); sequence numbers
/// are consecutive (modulo 2^31), a gap means events were lost.
struct VeventHeader {
    uint32_t flags = 0;
    uint32_t sequence = 0;
};
static_assert(sizeof(VeventHeader) == 8);

/// struct iommu_vevent_arm_smmuv3: the raw 256-bit event record, StreamID = the virtual SID.
struct VeventArmSmmuv3 {
    uint64_t evt[4] = {0, 0, 0, 0};
};
static_assert(sizeof(VeventArmSmmuv3) == 32);

/// struct iommu_veventq_alloc (IOMMU_VEVENTQ_ALLOC).
struct VeventqAlloc {
    uint32_t size = sizeof(VeventqAlloc);
    uint32_t flags = 0;         ///< must be 0
    uint32_t viommu_id = 0;
    uint32_t type = 0;
    uint32_t veventq_depth = 0; ///< events held before the queue overflows
    uint32_t out_veventq_id = 0;
    uint32_t out_veventq_fd = 0;
    uint32_t reserved = 0;
};
static_assert(sizeof(VeventqAlloc) == 32);

} // namespace iommusim::host::uapi
