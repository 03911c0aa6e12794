// SPDX-License-Identifier: Apache-2.0
// Fault injection across the VT-d unit: random sequences of corrupted table
// entries in simulated memory (root, context, PASID directory and table
// entries, page-table entries), malformed or random invalidation descriptors,
// and DMAs. Whatever the sequence, the unit must answer every DMA (OK or an
// error response), record only architected fault reasons, and either
// complete every invalidation wait or stop at the bad descriptor with IQE
// (ITE for a device TLB that never answers) — never crash, never hang.
#include <catch2/catch.hpp>

#include <random>
#include <set>

#include "test/models/iommu/vtd/vtd_harness.hpp"

using namespace vtdtest;
using sc_core::sc_time;
using sc_core::SC_NS;
using sc_core::SC_US;
using sc_core::SC_ZERO_TIME;

namespace {
const pcie::Bdf kDev(0x05, 0x00, 0x0);
constexpr uint64_t kWindow = 0x10000000;
constexpr unsigned kPages = 16;

/// Every scalable-mode fault reason the unit may record (vtd_tables.hpp fr::).
const std::set<uint32_t> kArchitected = {
    fr::kInvalidRootTable, fr::kTtm0WithPasid, fr::kTtm0PageRequest, fr::kRootAccess, fr::kRootNotPresent,
    fr::kRootReserved, fr::kCtxAccess, fr::kCtxNotPresent, fr::kCtxReserved, fr::kCtxInvalid, fr::kCtxDteClear,
    fr::kCtxPasidDisabled, fr::kCtxPasidTooLarge, fr::kCtxPreClear, fr::kCtxRidPasid, fr::kPdAccess,
    fr::kPdNotPresent, fr::kPdReserved, fr::kPeAccess, fr::kPeNotPresent, fr::kPeReserved, fr::kPeInvalid,
    fr::kPeEreClear, fr::kPeSreClear, fr::kFlAccess, fr::kFlNotPresent, fr::kFlReserved, fr::kFlPml4Access,
    fr::kFlNestedMgaw, fr::kFlPml4ReadNested, fr::kFlReadNested, fr::kFlWriteNested, fr::kSlAccess,
    fr::kSlPermission, fr::kSlReserved, fr::kSlInvalidPtr, fr::kNonCanonical, fr::kUserNotAllowed,
    fr::kNoExecute, fr::kBeyondMgaw, fr::kSlBeyondMax, fr::kNoWrite, fr::kNoRead, fr::kInterruptRange};

/// Reads and clears every pending fault record; checks each reason is architected.
unsigned drain_fault_records(Harness& h) {
    unsigned n = 0;
    for (unsigned i = 0; i < h.params.num_fault_records; ++i) {
        const uint32_t off = h.params.fault_record_offset + 16 * i;
        const uint64_t hi = h.rd(off + 8);
        if (!(hi >> 63)) continue; // F clear
        const uint32_t reason = static_cast<uint32_t>((hi >> 32) & 0xFF);
        INFO("fault reason 0x" << std::hex << reason);
        CHECK(kArchitected.count(reason) == 1);
        h.wr(off + 12, 1u << 31, 4); // write 1 to F
        ++n;
    }
    h.wr(reg::FSTS, bits::FSTS_PFO | bits::FSTS_PPF, 4);
    return n;
}

/// Submits `d` and a status-writing wait; the wait completes, or the queue
/// stops with IQE (fixed the way Linux does: the bad descriptor overwritten,
/// IQE cleared) or ITE (cleared). Returns false only on a hang.
bool submit_survives(Harness& h, const RawDesc& d, uint32_t token) {
    const uint64_t status = h.submit_and_wait_addr({d}, token);
    for (int round = 0; round < 4; ++round) {
        if (h.poll(status, token, sc_time(200, SC_US))) return true;
        const uint32_t fsts = static_cast<uint32_t>(h.rd(reg::FSTS, 4));
        if (fsts & bits::FSTS_IQE) {
            const uint64_t head = h.rd(reg::IQH);
            CHECK((h.rd(reg::IQER) & 0xF) >= static_cast<uint64_t>(IqeReason::invalid_tail));
            CHECK((h.rd(reg::IQER) & 0xF) <= static_cast<uint64_t>(IqeReason::invalid_width));
            h.m().write(h.iq_base + head, encode_iotlb_global().data(), h.iommu->regs().iq_256bit() ? 32 : 16);
            h.wr(reg::FSTS, bits::FSTS_IQE, 4);
        } else if (fsts & bits::FSTS_ITE) {
            h.wr(reg::FSTS, bits::FSTS_ITE, 4);
            return true; // the wait was aborted with the timed-out device invalidation
        } else if (fsts & bits::FSTS_ICE) {
            h.wr(reg::FSTS, bits::FSTS_ICE, 4);
            return true;
        }
    }
    return false;
}

RawDesc random_descriptor(std::mt19937_64& rng, uint64_t status_page) {
    // Half: a well-formed descriptor of a random type with one random bit flipped;
    // half: random bits with a random type.
    static const RawDesc good[] = {
        encode_context_cache(ContextCacheInv::Gran::global),
        encode_iotlb_global(),
        encode_iotlb_domain(3),
        encode_iotlb_page(3, kWindow, 2, false),
        encode_pasid_iotlb_all(3, 1),
        encode_pasid_iotlb_page(3, 1, kWindow, 0, true),
        encode_pasid_cache(PasidCacheInv::Gran::global),
        encode_dev_tlb(kDev.raw, kWindow, 0),
        encode_pasid_dev_tlb(kDev.raw, 1, kWindow, 0),
    };
    RawDesc d{};
    if (rng() % 2) {
        d = good[rng() % std::size(good)];
        d[rng() % 4] ^= uint64_t{1} << (rng() % 64);
    } else {
        for (auto& q : d) q = rng();
        d[0] = (d[0] & ~uint64_t{0xF}) | (rng() % 16);
        // A random wait descriptor writes its status somewhere in the status page.
        if ((d[0] & 0xF) == 5) d[1] = status_page + 8 * (rng() % 16);
    }
    return d;
}
} // namespace

TEST_CASE("VT-d survives corrupted tables and malformed descriptors with architected faults and IQE",
          "[sc][vtd][property]") {
    VtdParams p;
    p.ite_timeout = Duration::us(20); // device TLB invalidations the sink never answers end quickly
    Harness h(p);
    Harness::run([&] {
        h.enable();
        auto ce = h.tables->make_context(kDev, 0, true, true, false, 0);
        PageTables fl(h, PtFormat::x86_64, 4);
        PageTables sl(h, PtFormat::vtd_ss, 4);
        for (unsigned k = 0; k < kPages; ++k) {
            fl.map(kWindow + k * 4096, 0x40000000 + k * 4096);
            sl.map(kWindow + k * 4096, 0x40000000 + k * 4096);
        }
        PasidEntry e1;
        e1.present = true, e1.pgtt = static_cast<uint8_t>(Pgtt::first_stage), e1.did = 3, e1.flptptr = fl.root;
        h.tables->set_pasid_entry(ce, 1, e1);
        PasidEntry e2;
        e2.present = true, e2.pgtt = static_cast<uint8_t>(Pgtt::second_stage), e2.aw = 2, e2.did = 4;
        e2.slptptr = sl.root;
        h.tables->set_pasid_entry(ce, 2, e2);
        h.tables->set_pasid_entry(ce, 0, e2); // RID_PASID: requests without PASID
        const uint64_t status_page = h.alloc();
        const uint64_t first_page = h.tables->root_table(), last_page = h.next_page;

        auto flush_all = [&](uint32_t token) {
            REQUIRE(submit_survives(h, encode_context_cache(ContextCacheInv::Gran::global), token));
            REQUIRE(submit_survives(h, encode_pasid_cache(PasidCacheInv::Gran::global), token + 1));
            REQUIRE(submit_survives(h, encode_iotlb_global(), token + 2));
        };
        uint32_t token = 100;
        for (uint64_t seed = 1; seed <= 3; ++seed) {
            INFO("sequence seed " << seed);
            std::mt19937_64 rng(seed);
            std::vector<std::pair<uint64_t, uint64_t>> saved; // corrupted qwords, restored later
            auto restore = [&] {
                for (auto it = saved.rbegin(); it != saved.rend(); ++it) h.m().write_u64(it->first, it->second);
                saved.clear();
                flush_all(token += 3);
            };
            unsigned ok = 0, faulted = 0, recorded = 0;
            for (int step = 0; step < 250; ++step) {
                switch (rng() % 6) {
                case 0: { // corrupt one qword of the unit's tables (root .. page tables) or queues
                    const uint64_t a = first_page + 8 * (rng() % ((last_page - first_page) / 8));
                    const uint64_t old = h.m().read_u64(a);
                    saved.emplace_back(a, old);
                    h.m().write_u64(a, rng() % 2 ? old ^ (uint64_t{1} << (rng() % 64)) : rng());
                    flush_all(token += 3);
                    break;
                }
                case 1: restore(); break;
                case 2: // a malformed or random descriptor
                    REQUIRE(submit_survives(h, random_descriptor(rng, status_page), ++token));
                    break;
                default: { // a DMA, with or without PASID
                    const unsigned pick = rng() % 4;
                    const std::optional<uint32_t> pasid =
                        pick == 0 ? std::nullopt : std::optional<uint32_t>(pick == 3 ? rng() % 64 : pick);
                    uint64_t v = 0;
                    sc_time d = SC_ZERO_TIME;
                    const auto st = h.dma(kDev, pasid, kWindow + (rng() % (kPages + 2)) * 4096, rng() % 2, v, d);
                    sc_core::wait(d);
                    CHECK((st == tlm::TLM_OK_RESPONSE || st == tlm::TLM_ADDRESS_ERROR_RESPONSE));
                    (st == tlm::TLM_OK_RESPONSE ? ok : faulted) += 1;
                    recorded += drain_fault_records(h);
                    break;
                }
                }
            }
            // Tables restored, caches flushed: the window translates again.
            restore();
            drain_fault_records(h);
            uint64_t v = 0;
            sc_time d = SC_ZERO_TIME;
            CHECK(h.dma(kDev, 1u, kWindow, false, v, d) == tlm::TLM_OK_RESPONSE);
            CHECK(h.dma(kDev, 2u, kWindow, false, v, d) == tlm::TLM_OK_RESPONSE);
            sc_core::wait(d);
            CHECK(ok > 0);
            CHECK(faulted > 0);
            CHECK(recorded > 0);
        }
    });
}
