// SPDX-License-Identifier: Apache-2.0
#pragma once
// A VM's guest-physical memory: guest RAM at GPA [ram_gpa, ram_gpa + bytes)
// backed by one host-physical block that the VMM maps into the nesting
// parent (the host stage 2) before the guest boots. The guest's CPU, its
// driver backends and the VMM read and write guest memory through this
// view; the IOMMU reaches the same bytes through the stage-2 tables.
// Accesses outside guest RAM, or before the VMM backed it, are address
// errors. A watch on a range reports the first write since it was re-armed
// (used only to timestamp when the guest started writing a queue: no cost).
#include <cstdint>
#include <functional>
#include <optional>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

#include "models/mem/phys_mem.hpp"

namespace iommusim::host::vm {

class GuestMemory final : public mem::PhysMem {
public:
    GuestMemory(mem::PhysMem& host, uint64_t ram_gpa, uint64_t bytes) : host_(host), gpa_(ram_gpa), bytes_(bytes) {}

    /// The VMM backed guest RAM with the host block at `hpa`.
    void back(uint64_t hpa) { hpa_ = hpa; }
    bool backed() const { return hpa_.has_value(); }
    uint64_t ram_gpa() const { return gpa_; }
    uint64_t ram_bytes() const { return bytes_; }

    std::optional<uint64_t> hpa_of(uint64_t gpa) const {
        if (!hpa_ || gpa < gpa_ || gpa - gpa_ >= bytes_) return std::nullopt;
        return *hpa_ + (gpa - gpa_);
    }
    std::optional<uint64_t> gpa_of(uint64_t hpa) const {
        if (!hpa_ || hpa < *hpa_ || hpa - *hpa_ >= bytes_) return std::nullopt;
        return gpa_ + (hpa - *hpa_);
    }

    void read(uint64_t gpa, void* dst, size_t len) override { host_.read(translate(gpa, len), dst, len); }
    void write(uint64_t gpa, const void* src, size_t len) override {
        if (watch_ && gpa < watch_base_ + watch_bytes_ && gpa + len > watch_base_ && !watch_fired_) {
            watch_fired_ = true;
            watch_();
        }
        host_.write(translate(gpa, len), src, len);
    }
    void discard(uint64_t gpa, size_t len) override { host_.discard(translate(gpa, len), len); }

    /// Calls `f` at the first write into [gpa, gpa + bytes) after each rearm_watch().
    void watch(uint64_t gpa, uint64_t bytes, std::function<void()> f) {
        watch_base_ = gpa;
        watch_bytes_ = bytes;
        watch_ = std::move(f);
        watch_fired_ = false;
    }
    void rearm_watch() { watch_fired_ = false; }

private:
    uint64_t translate(uint64_t gpa, size_t len) const {
        if (!hpa_ || gpa < gpa_ || gpa - gpa_ > bytes_ || len > bytes_ - (gpa - gpa_))
            throw mem::AddressError(gpa, len, gpa_ + bytes_);
        return *hpa_ + (gpa - gpa_);
    }

    mem::PhysMem& host_;
    uint64_t gpa_, bytes_;
    std::optional<uint64_t> hpa_;
    uint64_t watch_base_ = 0, watch_bytes_ = 0;
    std::function<void()> watch_;
    bool watch_fired_ = false;
};

/// TLM target in front of guest memory: where a virtual IOMMU's status writes and MSIs land.
class GuestMemoryTarget : public sc_core::sc_module {
public:
    tlm_utils::simple_target_socket<GuestMemoryTarget> socket{"socket"};
    GuestMemoryTarget(sc_core::sc_module_name n, GuestMemory& m) : sc_module(n), m_(m) {
        socket.register_b_transport(this, &GuestMemoryTarget::b_transport);
    }

private:
    void b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time&) {
        try {
            if (t.is_read()) m_.read(t.get_address(), t.get_data_ptr(), t.get_data_length());
            else m_.write(t.get_address(), t.get_data_ptr(), t.get_data_length());
            t.set_response_status(tlm::TLM_OK_RESPONSE);
        } catch (const mem::AddressError&) {
            t.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        }
    }
    GuestMemory& m_;
};

} // namespace iommusim::host::vm
