// SPDX-License-Identifier: Apache-2.0
#pragma once
// Bit-exact wire encodings of ATS payloads carried in a tlm_generic_payload's
// data: the 8-byte Translation Completion entry (PCIe Base §10.2.3,
// spec-layouts.md D.5) and the 8-byte Invalidate Request payload (§10.3.1,
// D.6). A translation request is a TLM read whose data buffer (8 bytes per
// entry) receives the completion entries; an Invalidate Request message
// carries its payload in 8 data bytes next to the MessageExtension.
#include <cstdint>

#include "models/pcie/tlp.hpp"

namespace iommusim::pcie {

/// Translation Completion entry: R 0, W 1, U 2, Exe 3, Priv 4, Global 5, N 10, S 11, address 63:12.
uint64_t encode_translation_entry(const AtsTranslation& t);
AtsTranslation decode_translation_entry(uint64_t e);

/// Invalidate Request payload: Global 0, S 11, untranslated address 63:12.
uint64_t encode_invalidate_payload(const AtsInvalidateRequest& r);

} // namespace iommusim::pcie
