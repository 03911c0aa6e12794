// SPDX-License-Identifier: Apache-2.0
// One IOMMU family's unit in your own SystemC program, without sim::Platform:
// a VT-d unit between a device-side initiator and memory, brought up through
// its registers as a driver would, with scalable-mode context/PASID tables
// and a first-stage page table written into simulated memory by the
// library's table helpers. One DMA with PASID 1 is translated; one to an
// unmapped address faults and is recorded in the unit's fault registers.
//   vtd_unit_example          prints the translation and the fault, exit 0 when both are right
#include <cstdio>
#include <cstring>
#include <iommusim/models/common/stats.hpp>
#include <iommusim/models/iommu/common/table_builder.hpp>
#include <iommusim/models/iommu/vtd/vtd_iommu.hpp>
#include <iommusim/models/iommu/vtd/vtd_regs.hpp>
#include <iommusim/models/iommu/vtd/vtd_tables.hpp>
#include <iommusim/models/mem/memory.hpp>
#include <iommusim/models/pcie/tlp.hpp>
#include <systemc>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <utility>

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::vtd;

namespace {

constexpr uint64_t kIova = 0x7f0000120000, kPa = 0x40000000;
const pcie::Bdf kDevice(0x03, 0x00, 0x0);

/// Answers the messages the unit sends down (ATS invalidations, PRG responses): none here.
struct Downstream : sc_core::sc_module {
    tlm_utils::simple_target_socket<Downstream> socket{"socket"};
    explicit Downstream(const sc_core::sc_module_name& n) : sc_module(n) {
        socket.register_b_transport(this, &Downstream::b_transport);
    }
    void b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time&) { t.set_response_status(tlm::TLM_OK_RESPONSE); }
};

/// A CPU (register accesses) and a PCIe function (DMA) in one module.
struct Driver : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<Driver> mmio{"mmio"}, dma{"dma"};
    mem::SparseMemory& memory;
    VtdIommu& unit;
    uint64_t next_page = 0x1000000; ///< tables are allocated from here, a page at a time
    bool ok = false;

    SC_HAS_PROCESS(Driver);
    Driver(const sc_core::sc_module_name& n, mem::SparseMemory& m, VtdIommu& u) : sc_module(n), memory(m), unit(u) {
        SC_THREAD(run);
    }
    uint64_t alloc_page() { return std::exchange(next_page, next_page + 4096); }

    static tlm::tlm_response_status access(tlm_utils::simple_initiator_socket<Driver>& s, tlm::tlm_command cmd,
                                           uint64_t addr, void* data, unsigned len, pcie::TlpExtension* ext) {
        tlm::tlm_generic_payload g;
        g.set_command(cmd);
        g.set_address(addr);
        g.set_data_ptr(static_cast<unsigned char*>(data));
        g.set_data_length(len);
        g.set_streaming_width(len);
        g.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        if (ext) g.set_extension(ext); // every DMA carries its TLP fields (requester ID, PASID, AT)
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        s->b_transport(g, d);
        if (ext) g.clear_extension(ext);
        sc_core::wait(d); // loosely timed: the annotated delay is the access's latency
        return g.get_response_status();
    }
    void write_reg(uint32_t off, uint64_t v, unsigned len) { access(mmio, tlm::TLM_WRITE_COMMAND, off, &v, len, nullptr); }
    uint64_t read_reg(uint32_t off, unsigned len) {
        uint64_t v = 0;
        access(mmio, tlm::TLM_READ_COMMAND, off, &v, len, nullptr);
        return v;
    }

    void run() {
        // Tables in simulated memory: root -> scalable-mode context -> PASID directory/table
        // (VT-d §9.1-9.6), PASID 1 pointing at a 4-level first-stage (x86-64) page table.
        VtdTableWriter tables(memory, [this] { return alloc_page(); });
        StageConfig fs;
        fs.enabled = true;
        fs.format = PtFormat::x86_64;
        fs.levels = 4;
        fs.input_bits = 48;
        fs.output_bits = 46;
        auto pt = TableBuilder::create(memory, fs, [this](uint64_t, uint64_t) -> std::optional<uint64_t> { return alloc_page(); });
        if (!pt || pt->map(kIova, kPa, 4096, 12, LeafAttrs{}) != MapError::none) return;
        const SmContextEntry ce = tables.make_context(kDevice, 0, true, true, true, 0);
        PasidEntry pe;
        pe.present = true;
        pe.pgtt = static_cast<uint8_t>(Pgtt::first_stage);
        pe.did = 1;
        pe.flptptr = pt->root();
        tables.set_pasid_entry(ce, 1, pe);

        // Bring-up through the registers (§11.4): root table pointer, then translation on.
        write_reg(reg::RTADDR, tables.root_table() | bits::RTADDR_SMT, 8);
        write_reg(reg::GCMD, bits::GCMD_SRTP, 4);
        write_reg(reg::GCMD, bits::GCMD_TE, 4);
        const bool enabled = read_reg(reg::GSTS, 4) & bits::GCMD_TE;

        // A DMA read with PASID 1 through the unit.
        memory.write_u64(kPa, 0x1122334455667788);
        pcie::TlpExtension ext;
        ext.requester = kDevice;
        ext.pasid_present = true;
        ext.pasid = 1;
        uint64_t data = 0;
        const sc_core::sc_time t0 = sc_core::sc_time_stamp();
        const auto st = access(dma, tlm::TLM_READ_COMMAND, kIova, &data, 8, &ext);
        std::printf("DMA read  iova 0x%llx -> pa 0x%llx: %s, data 0x%llx, %.0f ns (cold: context, PASID entry, 4-level walk)\n",
                    static_cast<unsigned long long>(kIova), static_cast<unsigned long long>(ext.output_address),
                    st == tlm::TLM_OK_RESPONSE ? "ok" : "error", static_cast<unsigned long long>(data),
                    (sc_core::sc_time_stamp() - t0).to_seconds() * 1e9);

        // An unmapped address: the unit faults, records it (FSTS.PPF, fault record) and the
        // device sees an error response.
        pcie::TlpExtension bad = ext;
        const auto st2 = access(dma, tlm::TLM_READ_COMMAND, kIova + 0x100000, &data, 8, &bad);
        const uint64_t fsts = read_reg(reg::FSTS, 4);
        std::printf("DMA read  iova 0x%llx: %s, FSTS 0x%llx (PPF = primary pending fault)\n",
                    static_cast<unsigned long long>(kIova + 0x100000), st2 == tlm::TLM_OK_RESPONSE ? "ok" : "faulted",
                    static_cast<unsigned long long>(fsts));
        ok = enabled && st == tlm::TLM_OK_RESPONSE && data == 0x1122334455667788 && ext.output_address == kPa &&
             st2 != tlm::TLM_OK_RESPONSE && (fsts & bits::FSTS_PPF);
        sc_core::sc_stop();
    }
};

} // namespace

int sc_main(int, char*[]) {
    stats::Group root("root");
    mem::Memory memory("memory", mem::MemoryParams{}, &root);
    VtdIommu unit("dmar0", VtdParams{}, &root);
    Downstream down("down");
    Driver driver("driver", memory.store(), unit);
    driver.mmio.bind(unit.mmio);
    driver.dma.bind(unit.upstream);
    unit.mem.bind(memory.target);
    unit.ats_inv.bind(down.socket);
    sc_core::sc_start();
    for (const char* s : {"dmar0.requests", "dmar0.faults", "dmar0.table_reads"})
        if (const stats::Entry* e = root.find(s)) std::printf("%-18s %.0f\n", s, stats::numeric_value(*e));
    return driver.ok ? 0 : 1;
}
