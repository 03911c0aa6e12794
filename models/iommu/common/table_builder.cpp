// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/common/table_builder.hpp"

#include <array>
#include <vector>

namespace iommusim::iommu {

std::string_view to_string(MapError e) {
    switch (e) {
    case MapError::none: return "none";
    case MapError::bad_config: return "bad_config";
    case MapError::misaligned: return "misaligned";
    case MapError::bad_page_size: return "bad_page_size";
    case MapError::out_of_range: return "out_of_range";
    case MapError::overlap: return "overlap";
    case MapError::not_mapped: return "not_mapped";
    case MapError::splits_leaf: return "splits_leaf";
    case MapError::no_memory: return "no_memory";
    }
    return "?";
}

std::unique_ptr<TableBuilder> TableBuilder::create(mem::PhysMem& mem, StageConfig cfg, TableAllocator alloc,
                                                   MapError* err) {
    auto set = [&](MapError e) {
        if (err) *err = e;
        return nullptr;
    };
    cfg.root = 0;
    if (format_of(cfg.format).check_config(cfg)) return set(MapError::bad_config);
    std::unique_ptr<TableBuilder> b(new TableBuilder(mem, cfg, std::move(alloc)));
    auto root = b->new_table(cfg.levels);
    if (!root) return set(MapError::no_memory);
    b->cfg_.root = *root;
    if (err) *err = MapError::none;
    return b;
}

std::optional<uint64_t> TableBuilder::new_table(unsigned level) {
    uint64_t bytes = PageTableFormat::table_bytes(cfg_, level);
    // Arm requires the translation-table base aligned to the table size (at least 64 bytes).
    uint64_t align = bytes < 64 ? 64 : bytes;
    auto a = alloc_(bytes, align);
    if (!a) return std::nullopt;
    std::vector<uint8_t> zero(bytes, 0);
    mem_.write(*a, zero.data(), zero.size());
    ++tables_;
    return a;
}

unsigned TableBuilder::leaf_level(unsigned page_shift) const {
    unsigned best = 0;
    for (unsigned l = 1; l <= cfg_.levels; ++l)
        if (PageTableFormat::level_shift(cfg_, l) <= page_shift) best = l;
    return best;
}

MapError TableBuilder::map_one(uint64_t va, uint64_t pa, unsigned leaf_lvl, unsigned page_shift, const LeafAttrs& a,
                               bool apply, uint64_t* leaf_table) {
    unsigned level = cfg_.levels;
    uint64_t table = cfg_.root;
    if (apply && leaf_table && *leaf_table) { // the dry walk found the whole path (tables are never removed)
        table = *leaf_table;
        level = leaf_lvl;
    }
    while (level > leaf_lvl) {
        uint64_t da = table + PageTableFormat::index(va, cfg_, level) * 8;
        Descriptor d = fmt_.decode(mem_.read_u64(da), level, cfg_);
        if (d.kind == Descriptor::Kind::table && d.next_level == level - 1) {
            table = d.addr;
            --level;
            continue;
        }
        if (d.kind != Descriptor::Kind::invalid) return MapError::overlap;
        if (!apply) return MapError::none; // everything below is new
        auto t = new_table(level - 1);
        if (!t) return MapError::no_memory;
        mem_.write_u64(da, fmt_.make_table(*t, level, level - 1, cfg_));
        table = *t;
        --level;
    }
    if (!apply && leaf_table) *leaf_table = table;
    uint64_t n = uint64_t{1} << (page_shift - PageTableFormat::level_shift(cfg_, leaf_lvl));
    uint64_t first = table + PageTableFormat::index(va, cfg_, leaf_lvl) * 8;
    for (uint64_t i = 0; i < n; ++i) {
        uint64_t da = first + i * 8;
        if (!apply) {
            if (fmt_.decode(mem_.read_u64(da), leaf_lvl, cfg_).kind != Descriptor::Kind::invalid)
                return MapError::overlap;
        } else {
            mem_.write_u64(da, fmt_.make_leaf(pa, leaf_lvl, page_shift, a, cfg_));
        }
    }
    return MapError::none;
}

MapError TableBuilder::map(uint64_t va, uint64_t pa, uint64_t size, unsigned page_shift, const LeafAttrs& a) {
    if (page_shift < 12 || page_shift > 51) return MapError::bad_page_size;
    unsigned lvl = leaf_level(page_shift);
    if (lvl == 0 || !fmt_.leaf_ok(lvl, page_shift, cfg_)) return MapError::bad_page_size;
    const uint64_t psz = uint64_t{1} << page_shift;
    if ((va | pa | size) & (psz - 1) || size == 0) return MapError::misaligned;
    if (fmt_.check_input(va, cfg_) != FaultKind::none || fmt_.check_input(va + size - 1, cfg_) != FaultKind::none ||
        va + size - 1 < va)
        return MapError::out_of_range;
    if (cfg_.output_bits < 64 && ((pa + size - 1) >> cfg_.output_bits)) return MapError::out_of_range;
    // A range inside one table would overlap itself only if pages repeat; check then apply.
    // The check remembers the leaf table of the first kRemembered pages whose path exists,
    // so applying them writes their leaves without walking again (applying earlier pages
    // only fills invalid slots, which lie on no later page's existing path).
    std::array<uint64_t, kRemembered> leaf_tables{};
    uint64_t i = 0;
    for (uint64_t off = 0; off < size; off += psz, ++i)
        if (MapError e = map_one(va + off, pa + off, lvl, page_shift, a, false, i < kRemembered ? &leaf_tables[i] : nullptr);
            e != MapError::none)
            return e;
    i = 0;
    for (uint64_t off = 0; off < size; off += psz, ++i)
        if (MapError e = map_one(va + off, pa + off, lvl, page_shift, a, true, i < kRemembered ? &leaf_tables[i] : nullptr);
            e != MapError::none)
            return e;
    return MapError::none;
}

std::optional<TableBuilder::Found> TableBuilder::find_leaf(uint64_t va) const {
    unsigned level = cfg_.levels;
    uint64_t table = cfg_.root;
    for (;;) {
        uint64_t da = table + PageTableFormat::index(va, cfg_, level) * 8;
        Descriptor d = fmt_.decode(mem_.read_u64(da), level, cfg_);
        if (d.kind == Descriptor::Kind::leaf) return Found{da, level, d};
        if (d.kind != Descriptor::Kind::table) return std::nullopt;
        table = d.addr;
        level = d.next_level;
    }
}

std::optional<uint64_t> TableBuilder::descriptor_address(uint64_t va, unsigned want) const {
    unsigned level = cfg_.levels;
    uint64_t table = cfg_.root;
    for (;;) {
        uint64_t da = table + PageTableFormat::index(va, cfg_, level) * 8;
        if (level == want) return da;
        Descriptor d = fmt_.decode(mem_.read_u64(da), level, cfg_);
        if (d.kind != Descriptor::Kind::table || d.next_level < want) return std::nullopt;
        table = d.addr;
        level = d.next_level;
    }
}

MapError TableBuilder::unmap(uint64_t va, uint64_t size) {
    if (size == 0 || ((va | size) & 0xFFF)) return MapError::misaligned;
    const uint64_t last = va + (size - 1);
    if (last < va) return MapError::out_of_range;
    // Check the whole range first, then clear it. Clearing leaves moves no other leaf, so
    // the check's leaves are the ones to clear: up to kRemembered of them are remembered
    // and cleared without a second walk; a longer range walks again.
    struct Leaf {
        uint64_t first, n; ///< its first descriptor (replicated AMD entries start aligned), entries
    };
    std::array<Leaf, kRemembered> leaves{};
    size_t found = 0;
    for (int apply = 0; apply < 2; ++apply) {
        if (apply && found <= kRemembered) {
            for (size_t l = 0; l < found; ++l)
                for (uint64_t i = 0; i < leaves[l].n; ++i) mem_.write_u64(leaves[l].first + i * 8, 0);
            return MapError::none;
        }
        for (uint64_t cur = va;;) {
            auto f = find_leaf(cur);
            if (!f) return MapError::not_mapped;
            const uint64_t psz_mask = (uint64_t{1} << f->d.page_shift) - 1;
            const uint64_t base = cur & ~psz_mask, leaf_last = base + psz_mask;
            if (base < va || leaf_last > last) return MapError::splits_leaf;
            uint64_t n = uint64_t{1} << (f->d.page_shift - PageTableFormat::level_shift(cfg_, f->level));
            uint64_t idx = PageTableFormat::index(cur, cfg_, f->level);
            uint64_t first = f->desc_addr - (idx & (n - 1)) * 8;
            if (apply) {
                for (uint64_t i = 0; i < n; ++i) mem_.write_u64(first + i * 8, 0);
            } else {
                if (found < kRemembered) leaves[found] = Leaf{first, n};
                ++found;
            }
            if (leaf_last >= last) break;
            cur = leaf_last + 1;
        }
    }
    return MapError::none;
}

} // namespace iommusim::iommu
