// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/ats_codec.hpp"

namespace iommusim::pcie {

namespace {
constexpr uint64_t b(bool v, unsigned pos) { return static_cast<uint64_t>(v) << pos; }
constexpr bool bitv(uint64_t q, unsigned p) { return (q >> p) & 1; }
} // namespace

uint64_t encode_translation_entry(const AtsTranslation& t) {
    return (t.translated & ~uint64_t{0xFFF}) | b(t.read, 0) | b(t.write, 1) | b(t.user, 2) | b(t.execute, 3) |
           b(t.privileged, 4) | b(t.global, 5) | b(t.no_snoop, 10) | b(t.s, 11);
}

AtsTranslation decode_translation_entry(uint64_t e) {
    AtsTranslation t;
    t.translated = e & ~uint64_t{0xFFF};
    t.read = bitv(e, 0);
    t.write = bitv(e, 1);
    t.user = bitv(e, 2);
    t.execute = bitv(e, 3);
    t.privileged = bitv(e, 4);
    t.global = bitv(e, 5);
    t.no_snoop = bitv(e, 10);
    t.s = bitv(e, 11);
    return t;
}

uint64_t encode_invalidate_payload(const AtsInvalidateRequest& r) {
    return (r.address & ~uint64_t{0xFFF}) | b(r.s, 11) | b(r.global, 0);
}

} // namespace iommusim::pcie
