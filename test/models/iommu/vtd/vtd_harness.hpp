// SPDX-License-Identifier: Apache-2.0
#pragma once
// Test harness for the VT-d model: a memory target over SparseMemory with a
// fixed latency (records MSI writes), a CPU-side MMIO initiator, and a
// device-side initiator/target pair, wired to a VtdIommu. The scenario runs
// in an SC_THREAD spawned by run().
#include <functional>
#include <memory>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

#include "models/iommu/common/pt_format.hpp"
#include "models/iommu/common/table_builder.hpp"
#include "models/iommu/vtd/vtd_descriptors.hpp"
#include "models/iommu/vtd/vtd_iommu.hpp"
#include "models/iommu/vtd/vtd_tables.hpp"
#include "models/mem/sparse_memory.hpp"
#include "models/pcie/ats_codec.hpp"
#include "models/pcie/tlp.hpp"
#include "test/support/sc_run.hpp"

namespace vtdtest {

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::vtd;

inline constexpr uint64_t kMsiBase = 0xFEE00000;

struct TestMemory : sc_core::sc_module {
    tlm_utils::simple_target_socket<TestMemory> socket{"socket"};
    mem::SparseMemory store{uint64_t{1} << 40};
    sc_core::sc_time latency = sc_core::sc_time(90, sc_core::SC_NS);
    struct MsiWrite {
        uint64_t addr;
        uint32_t data;
        sc_core::sc_time at;
    };
    std::vector<MsiWrite> msis;
    uint64_t reads = 0, writes = 0;
    explicit TestMemory(const sc_core::sc_module_name& n) : sc_module(n) {
        socket.register_b_transport(this, &TestMemory::b_transport);
    }
    void b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time& d) {
        const uint64_t a = t.get_address();
        const unsigned len = t.get_data_length();
        if (!store.contains(a, len)) {
            t.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
            return;
        }
        if (t.is_read()) {
            store.read(a, t.get_data_ptr(), len);
            ++reads;
        } else {
            store.write(a, t.get_data_ptr(), len);
            ++writes;
            if (a >= kMsiBase && a < kMsiBase + 0x100000 && len == 4) {
                uint32_t v;
                std::memcpy(&v, t.get_data_ptr(), 4);
                msis.push_back({a, v, sc_core::sc_time_stamp() + d});
            }
        }
        d += latency;
        t.set_response_status(tlm::TLM_OK_RESPONSE);
    }
};

/// Records messages sent down to devices when no endpoint is bound.
struct MessageSink : sc_core::sc_module {
    tlm_utils::simple_target_socket<MessageSink> socket{"socket"};
    std::vector<pcie::MessageExtension> got;
    std::vector<sc_core::sc_time> at;
    explicit MessageSink(const sc_core::sc_module_name& n) : sc_module(n) {
        socket.register_b_transport(this, &MessageSink::b_transport);
    }
    void b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time& d) {
        if (auto* m = t.get_extension<pcie::MessageExtension>()) {
            got.push_back(*m);
            at.push_back(sc_core::sc_time_stamp() + d);
        }
        t.set_response_status(tlm::TLM_OK_RESPONSE);
    }
};

/// Issues requests as a device / CPU would (from an SC_THREAD).
struct Port : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<Port> socket{"socket"};
    explicit Port(const sc_core::sc_module_name& n) : sc_module(n) {}
    template <class Ext = pcie::TlpExtension>
    tlm::tlm_response_status access(tlm::tlm_command cmd, uint64_t addr, void* data, unsigned len,
                                    sc_core::sc_time& d, Ext* ext = nullptr) {
        tlm::tlm_generic_payload g;
        g.set_command(cmd);
        g.set_address(addr);
        g.set_data_ptr(static_cast<unsigned char*>(data));
        g.set_data_length(len);
        g.set_streaming_width(len);
        g.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        if (ext) g.set_extension(ext);
        socket->b_transport(g, d);
        if (ext) g.clear_extension(ext);
        return g.get_response_status();
    }
};

/// Merges two upstream paths (the harness's raw device port and an endpoint model).
struct Router : sc_core::sc_module {
    tlm_utils::simple_target_socket<Router> a{"a"}, b{"b"};
    tlm_utils::simple_initiator_socket<Router> out{"out"};
    explicit Router(const sc_core::sc_module_name& n) : sc_module(n) {
        a.register_b_transport(this, &Router::fwd);
        b.register_b_transport(this, &Router::fwd);
    }
    void fwd(tlm::tlm_generic_payload& t, sc_core::sc_time& d) { out->b_transport(t, d); }
};

struct Harness {
    VtdParams params;
    stats::Group root{"root"};
    TestMemory memory{"memory"};
    Port cpu{"cpu"};
    Port dev{"dev"};
    std::unique_ptr<VtdIommu> iommu;
    std::unique_ptr<MessageSink> sink;
    std::unique_ptr<Router> router; ///< with_aux: router->b takes a second upstream initiator
    uint64_t next_page = 0x1000000;
    std::unique_ptr<VtdTableWriter> tables;
    uint64_t iq_base = 0, prq_base = 0;
    uint64_t iq_tail = 0;
    uint64_t status_page = 0;

    explicit Harness(VtdParams p = {}, bool bind_sink = true, bool with_aux = false) : params(p) {
        iommu = std::make_unique<VtdIommu>("dmar0", params, &root);
        iommu->mem.bind(memory.socket);
        cpu.socket.bind(iommu->mmio);
        if (with_aux) {
            router = std::make_unique<Router>("router");
            dev.socket.bind(router->a);
            router->out.bind(iommu->upstream);
        } else {
            dev.socket.bind(iommu->upstream);
        }
        if (bind_sink) {
            sink = std::make_unique<MessageSink>("sink");
            iommu->ats_inv.bind(sink->socket);
        }
        tables = std::make_unique<VtdTableWriter>(memory.store, [this] { return alloc(); });
    }
    uint64_t alloc() {
        uint64_t a = next_page;
        next_page += 4096;
        return a;
    }
    mem::SparseMemory& m() { return memory.store; }

    // ---- CPU side -----------------------------------------------------------
    void wr(uint32_t off, uint64_t v, unsigned len = 8) {
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        cpu.access(tlm::TLM_WRITE_COMMAND, off, &v, len, d);
        sc_core::wait(d);
    }
    uint64_t rd(uint32_t off, unsigned len = 8) {
        uint64_t v = 0;
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        cpu.access(tlm::TLM_READ_COMMAND, off, &v, len, d);
        sc_core::wait(d);
        return v;
    }
    /// Root table + QI (256-bit, 2 pages) + PRQ + TE, as Linux brings a scalable-mode unit up.
    void enable(bool wide = true) {
        wr(reg::RTADDR, tables->root_table() | bits::RTADDR_SMT);
        wr(reg::GCMD, bits::GCMD_SRTP, 4);
        iq_base = alloc();
        alloc();
        wr(reg::IQA, iq_base | (wide ? bits::IQA_DW : 0) | 1);
        wr(reg::IQT, 0);
        wr(reg::GCMD, bits::GCMD_QIE, 4);
        prq_base = alloc();
        wr(reg::PQA, prq_base | 0);
        wr(reg::PQH, 0);
        wr(reg::FECTL, 0, 4);
        wr(reg::FEADDR, kMsiBase, 4);
        wr(reg::FEDATA, 0x30, 4);
        wr(reg::IECTL, 0, 4);
        wr(reg::IEADDR, kMsiBase + 0x10, 4);
        wr(reg::IEDATA, 0x31, 4);
        wr(reg::PECTL, 0, 4);
        wr(reg::PEADDR, kMsiBase + 0x20, 4);
        wr(reg::PEDATA, 0x32, 4);
        wr(reg::GCMD, bits::GCMD_QIE | bits::GCMD_TE, 4);
    }
    /// Appends descriptors to the queue in memory (no tail write).
    void queue(const RawDesc& d) {
        const bool wide = iommu->regs().iq_256bit();
        const unsigned sz = wide ? 32 : 16;
        m().write(iq_base + iq_tail, d.data(), sz);
        iq_tail = (iq_tail + sz) % iommu->regs().iq_bytes();
    }
    void ring() { wr(reg::IQT, iq_tail); }
    /// Submits descriptors plus a status-writing wait; returns the status address.
    uint64_t submit_and_wait_addr(std::initializer_list<RawDesc> ds, uint32_t token = 1) {
        if (!status_page) status_page = alloc();
        for (const auto& d : ds) queue(d);
        queue(encode_wait(true, status_page, token));
        m().write_u32(status_page, 0);
        ring();
        return status_page;
    }
    /// Polls a status word until it reads `token` or the timeout passes; returns the time it took.
    bool poll(uint64_t addr, uint32_t token, sc_core::sc_time timeout = sc_core::sc_time(100, sc_core::SC_US)) {
        const sc_core::sc_time end = sc_core::sc_time_stamp() + timeout;
        while (sc_core::sc_time_stamp() < end) {
            if (m().read_u32(addr) == token) return true;
            sc_core::wait(sc_core::sc_time(10, sc_core::SC_NS));
        }
        return false;
    }

    // ---- device side ----------------------------------------------------------
    tlm::tlm_response_status dma(pcie::Bdf rid, std::optional<uint32_t> pasid, uint64_t addr, bool write,
                                 uint64_t& value, sc_core::sc_time& d,
                                 pcie::AddressType at = pcie::AddressType::untranslated, bool no_snoop = false,
                                 bool privileged = false) {
        pcie::TlpExtension ext;
        ext.requester = rid;
        ext.pasid_present = pasid.has_value();
        ext.pasid = pasid.value_or(0);
        ext.at = at;
        ext.no_snoop = no_snoop;
        ext.privileged = privileged;
        auto st = dev.access(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND, addr, &value, 8, d, &ext);
        last_no_snoop = ext.no_snoop;
        return st;
    }
    bool last_no_snoop = false;

    const stats::Entry* stat(const std::string& dotted) const { return root.find(dotted); }
    double value(const std::string& dotted) const {
        const stats::Entry* e = root.find(dotted);
        return e ? stats::numeric_value(*e) : -1.0;
    }

    /// Runs `scenario` in an SC_THREAD until it returns (plus a drain of `tail`).
    static void run(std::function<void()> scenario) { iommusim::test::run_scenario(scenario); }
};

/// Page tables built with the core's TableBuilder (bit-exact), allocating from the harness.
struct PageTables {
    Harness& h;
    std::unique_ptr<TableBuilder> b;
    uint64_t root = 0;
    PageTables(Harness& hh, PtFormat f, uint8_t levels) : h(hh) {
        StageConfig cfg;
        cfg.enabled = true;
        cfg.format = f;
        cfg.levels = levels;
        cfg.input_bits = static_cast<uint8_t>(12 + 9 * levels);
        cfg.output_bits = 46;
        b = TableBuilder::create(h.m(), cfg, [this](uint64_t bytes, uint64_t) -> std::optional<uint64_t> {
            const uint64_t a = h.alloc();
            for (uint64_t done = 4096; done < bytes; done += 4096) h.alloc();
            return a;
        });
        REQUIRE(b);
        root = b->root();
    }
    void map(uint64_t va, uint64_t pa, LeafAttrs a = {}, unsigned shift = 12) {
        REQUIRE(b->map(va, pa, uint64_t{1} << shift, shift, a) == MapError::none);
    }
    void unmap(uint64_t va, unsigned shift = 12) { REQUIRE(b->unmap(va, uint64_t{1} << shift) == MapError::none); }
};

} // namespace vtdtest
