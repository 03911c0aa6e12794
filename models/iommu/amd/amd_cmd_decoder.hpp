// SPDX-License-Identifier: Apache-2.0
#pragma once
// The AMD-Vi command buffer's decode hook for the shared command-queue engine
// (models/iommu/common/cmd_queue.hpp): each decoded command (amd_commands.hpp)
// becomes the generic actions it architecturally performs.
//
//   COMPLETION_WAIT            SyncAction: 8-byte store of StoreData (S), Status.ComWaitInt (I), fence (F)
//   INVALIDATE_DEVTAB_ENTRY    DTE cache and GCR3 cache entries of the DeviceID
//   INVALIDATE_IOMMU_PAGES     translations by scope (to_scope); with GN also the GCR3-cache
//                              entries of (DomainID, PASID): Linux changes a GCR3 entry and
//                              then flushes the PASID with GN = 1 (amd_iommu_dev_flush_pasid_all)
//   INVALIDATE_IOTLB_PAGES     one ATS Invalidate Request (PASID prefix with GN), MaxPend as the
//                              device's queue depth (0 = 32)
//   INVALIDATE_INTERRUPT_TABLE accepted, costs its processing (interrupt remapping not modelled)
//   PREFETCH_IOMMU_PAGES       accepted as a hint (no prefetch modelled) when EFR.PreFSup
//   COMPLETE_PPR_REQUEST       PRG Response to DeviceID (PASID with GN, PRG index = tag)
//   INVALIDATE_IOMMU_ALL       every translation, every DTE and GCR3 cache entry
// An illegal command (amd_commands.hpp decode) fails with ILLEGAL_COMMAND_ERROR's code.
#include "models/iommu/amd/amd_commands.hpp"
#include "models/iommu/amd/amd_events.hpp"
#include "models/iommu/common/cmd_queue.hpp"

namespace iommusim::iommu::amd {

/// Indices of the unit's configuration caches in InvalidateConfig::cache.
enum ConfigCacheIndex : uint8_t { kDteCache = 0, kGcr3Cache = 1 };

/// Error codes the engine records (the event codes the unit logs).
inline constexpr uint32_t kIllegalCommand = static_cast<uint32_t>(EventCode::illegal_command_error);
inline constexpr uint32_t kCommandHwError = static_cast<uint32_t>(EventCode::command_hardware_error);

/// The generic actions of one decoded command.
DecodedCommand to_actions(const Command& c);

/// The decode hook: one 128-bit command (two qwords) into actions, in one pass (decode_with):
/// the same actions as to_actions(decode(words).command), ILLEGAL_COMMAND_ERROR's code where
/// decode() reports an error.
DecodedCommand decode_actions(std::span<const uint64_t> words, const AmdParams& caps);

} // namespace iommusim::iommu::amd
