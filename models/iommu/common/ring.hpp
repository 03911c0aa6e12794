// SPDX-License-Identifier: Apache-2.0
#pragma once
// Ring: geometry and positions of an in-memory circular queue shared by a
// producer and a consumer — the command queue (software produces, the unit
// consumes) and the record rings (the unit produces, software consumes).
// Plain C++; what the registers look like is the family's.
//
// Two position styles exist in the three families:
//  * one_slot_free: plain indices (VT-d IQH/IQT, PQH/PQT; AMD-Vi head/tail
//    byte offsets); the ring is full when prod + 1 == cons, so one slot is
//    never used.
//  * wrap_bit: an index plus a wrap bit toggled at every wrap-around
//    (SMMUv3 PROD/CONS, §3.5.1 of IHI 0070); all slots are usable and the
//    ring is full when the indices match and the wrap bits differ.
#include <cstdint>

namespace iommusim::iommu {

class Ring {
public:
    enum class Index : uint8_t { one_slot_free, wrap_bit };

    explicit Ring(Index style = Index::one_slot_free) : style_(style) {}

    /// (Re)programs base address, size in entries and bytes per entry. Positions are
    /// kept (software programs them separately), reduced modulo the new size.
    void configure(uint64_t base, uint32_t entries, uint32_t entry_bytes) {
        base_ = base;
        entries_ = entries;
        entry_bytes_ = entry_bytes;
        if (entries_) prod_ %= entries_, cons_ %= entries_;
    }
    bool configured() const { return entries_ != 0 && entry_bytes_ != 0; }
    Index style() const { return style_; }
    uint64_t base() const { return base_; }
    uint32_t entries() const { return entries_; }
    uint32_t entry_bytes() const { return entry_bytes_; }
    uint64_t size_bytes() const { return uint64_t{entries_} * entry_bytes_; }

    uint32_t prod() const { return prod_; }
    uint32_t cons() const { return cons_; }
    bool prod_wrap() const { return prod_wrap_; }
    bool cons_wrap() const { return cons_wrap_; }
    uint64_t prod_offset() const { return uint64_t{prod_} * entry_bytes_; }
    uint64_t cons_offset() const { return uint64_t{cons_} * entry_bytes_; }
    uint64_t prod_address() const { return base_ + prod_offset(); }
    uint64_t cons_address() const { return base_ + cons_offset(); }

    /// A position as the family's registers show it: index, wrap bit, byte offset.
    struct Position {
        uint32_t index = 0;
        bool wrap = false;
        uint64_t offset = 0; ///< index * entry bytes
    };
    Position cons_position() const { return {cons_, cons_wrap_, cons_offset()}; }

    /// Positions as a register writes them: index modulo the size; the wrap bit only
    /// with Index::wrap_bit.
    void set_prod(uint32_t index, bool wrap = false) {
        prod_ = reduce(index);
        prod_wrap_ = style_ == Index::wrap_bit && wrap;
    }
    void set_cons(uint32_t index, bool wrap = false) {
        cons_ = reduce(index);
        cons_wrap_ = style_ == Index::wrap_bit && wrap;
    }
    /// Positions as byte offsets from the base (registers without wrap bits).
    void set_prod_offset(uint64_t bytes) { set_prod(entry_bytes_ ? static_cast<uint32_t>(bytes / entry_bytes_) : 0); }
    void set_cons_offset(uint64_t bytes) { set_cons(entry_bytes_ ? static_cast<uint32_t>(bytes / entry_bytes_) : 0); }
    /// Whether a byte offset names a slot of this ring (entry aligned, inside it).
    bool valid_offset(uint64_t bytes) const {
        return entry_bytes_ && bytes % entry_bytes_ == 0 && bytes < size_bytes();
    }

    bool empty() const { return prod_ == cons_ && prod_wrap_ == cons_wrap_; }
    bool full() const {
        if (!entries_) return true;
        if (style_ == Index::wrap_bit) return prod_ == cons_ && prod_wrap_ != cons_wrap_;
        return (prod_ + 1) % entries_ == cons_;
    }
    /// Entries produced and not consumed yet.
    uint32_t used() const {
        if (!entries_) return 0;
        if (style_ == Index::wrap_bit && prod_wrap_ != cons_wrap_) return entries_ - cons_ + prod_;
        return (prod_ + entries_ - cons_) % entries_;
    }

    void advance_prod() { advance(prod_, prod_wrap_); }
    void advance_cons() { advance(cons_, cons_wrap_); }

private:
    uint32_t reduce(uint32_t index) const { return index < entries_ ? index : entries_ ? index % entries_ : 0; }
    void advance(uint32_t& i, bool& wrap) {
        if (++i >= entries_) {
            i = 0;
            if (style_ == Index::wrap_bit) wrap = !wrap;
        }
    }

    Index style_;
    uint64_t base_ = 0;
    uint32_t entries_ = 0, entry_bytes_ = 0;
    uint32_t prod_ = 0, cons_ = 0;
    bool prod_wrap_ = false, cons_wrap_ = false;
};

} // namespace iommusim::iommu
