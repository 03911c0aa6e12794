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
enum class Errno : int { ok = 0, enoent = 2, eio = 5, eexist = 17, einval = 22, eopnotsupp = 95 };
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

} // namespace iommusim::host::uapi
