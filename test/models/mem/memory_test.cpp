// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <systemc>
#include <tlm_utils/simple_initiator_socket.h>

#include "models/mem/memory.hpp"

using namespace iommusim;

namespace {
struct Probe : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<Probe> out{"out"};
    explicit Probe(sc_core::sc_module_name n) : sc_module(n) {}
    tlm::tlm_response_status access(bool write, uint64_t addr, void* data, unsigned len, sc_core::sc_time& delay) {
        tlm::tlm_generic_payload gp;
        gp.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
        gp.set_address(addr);
        gp.set_data_ptr(static_cast<unsigned char*>(data));
        gp.set_data_length(len);
        gp.set_streaming_width(len);
        out->b_transport(gp, delay);
        return gp.get_response_status();
    }
};
} // namespace

TEST_CASE("memory charges latency plus transfer time and queues on a busy port", "[sc][mem]") {
    stats::Group root("root");
    mem::MemoryParams p;
    p.read_latency = Duration::ns(100);
    p.write_latency = Duration::ns(50);
    p.bandwidth_bytes_per_ns = 64.0; // 64 B/ns: a 256 B transfer holds the port 4 ns
    p.load_window = Duration::zero(); // idle latencies only (load: the next case)
    mem::Memory m("mem", p, &root);
    Probe probe("probe");
    probe.out.bind(m.target);

    uint8_t buf[256] = {1, 2, 3};
    sc_core::sc_time d1 = sc_core::SC_ZERO_TIME;
    REQUIRE(probe.access(true, 0x1000, buf, 256, d1) == tlm::TLM_OK_RESPONSE);
    CHECK(d1 == sc_core::sc_time(54, sc_core::SC_NS));
    // A second request arriving at the same local time waits for the port.
    sc_core::sc_time d2 = sc_core::SC_ZERO_TIME;
    uint8_t back[256] = {};
    REQUIRE(probe.access(false, 0x1000, back, 256, d2) == tlm::TLM_OK_RESPONSE);
    CHECK(d2 == sc_core::sc_time(108, sc_core::SC_NS)); // 4 ns queued + 4 ns transfer + 100 ns
    CHECK(back[2] == 3);
    CHECK(root.find("mem.bytes_written") != nullptr);
    CHECK(stats::numeric_value(*root.find("mem.bytes_read")) == 256);
    CHECK(m.store().read_u32(0x1000) == 0x030201u);
}

TEST_CASE("memory answers an address error beyond its size", "[sc][mem]") {
    stats::Group root("root");
    mem::MemoryParams p;
    p.size_bytes = 1 << 20;
    mem::Memory m("mem", p, &root);
    Probe probe("probe");
    probe.out.bind(m.target);
    uint64_t v = 0;
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    CHECK(probe.access(false, 1 << 20, &v, 8, d) == tlm::TLM_ADDRESS_ERROR_RESPONSE);
    CHECK(stats::numeric_value(*root.find("mem.address_errors")) == 1);
}

TEST_CASE("memory grants DMI one page at a time over the sparse store", "[sc][mem]") {
    stats::Group root("root");
    mem::Memory m("mem", mem::MemoryParams{}, &root);
    Probe probe("probe");
    probe.out.bind(m.target);
    tlm::tlm_generic_payload gp;
    tlm::tlm_dmi dmi;
    gp.set_address(0x12345);
    REQUIRE(probe.out->get_direct_mem_ptr(gp, dmi));
    CHECK(dmi.get_start_address() == 0x12000);
    CHECK(dmi.get_end_address() == 0x12FFF);
    dmi.get_dmi_ptr()[0x345] = 0x5A;
    CHECK(m.store().read_u32(0x12345) == 0x5A);
}

TEST_CASE("memory read latency rises with the controller's load along the loaded-latency curve", "[sc][mem]") {
    stats::Group root("root");
    mem::MemoryParams p;
    p.read_latency = Duration::ns(100);
    p.bandwidth_bytes_per_ns = 64.0;      // 64,000 B per 1 us window at peak
    p.load_window = Duration::ns(1000);
    mem::Memory m("mem_loaded", p, &root);
    Probe probe("probe_loaded");
    probe.out.bind(m.target);
    uint8_t buf[64] = {};
    // Idle: a 64 B read costs its 1 ns transfer and the idle latency.
    sc_core::sc_time idle = sc_core::SC_ZERO_TIME;
    REQUIRE(probe.access(false, 0x1000, buf, 64, idle) == tlm::TLM_OK_RESPONSE);
    CHECK(idle.to_seconds() * 1e9 == Approx(101.0).epsilon(0.001));
    // 0.8 of the window's peak moved by earlier requests, spread over the window
    // (each at its own local time, so none queues behind another).
    for (int i = 0; i < 800; ++i) {
        sc_core::sc_time at(1.25 * i, sc_core::SC_NS);
        REQUIRE(probe.access(true, 0x2000, buf, 64, at) == tlm::TLM_OK_RESPONSE);
    }
    sc_core::sc_time loaded(999, sc_core::SC_NS);
    REQUIRE(probe.access(false, 0x1000, buf, 64, loaded) == tlm::TLM_OK_RESPONSE);
    const double latency = loaded.to_seconds() * 1e9 - 999;
    INFO("loaded read " << latency << " ns");
    CHECK(latency > 1.35 * 100); // x1.40 at u = 0.8 (calibration.md), minus the idle read's share
    CHECK(latency < 1.45 * 100 + 2);
    CHECK(stats::numeric_value(*root.find("mem_loaded.load_delay")) > 0);
}
