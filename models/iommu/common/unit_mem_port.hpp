// SPDX-License-Identifier: Apache-2.0
#pragma once
// UnitMemPort: simulated memory as an IOMMU's own accesses see it (command
// fetches, status words, fault/event/page-request records). The plain-C++
// queue engine and record rings work through it, so they are unit-tested
// against a plain memory; the SystemC shell implements it over its `mem`
// socket (DMI or b_transport). Each access adds the target's latency to
// `local`, the caller's local time offset.
#include <cstdint>

#include "models/common/time.hpp"
#include "models/mem/phys_mem.hpp"

namespace iommusim::iommu {

class UnitMemPort {
public:
    virtual ~UnitMemPort() = default;
    /// false on a memory error (nothing is read).
    virtual bool read(uint64_t pa, void* dst, unsigned len, Duration& local) = 0;
    /// false on a memory error.
    virtual bool write(uint64_t pa, const void* src, unsigned len, Duration& local) = 0;
};

/// A UnitMemPort over untimed physical memory with a fixed latency per access
/// (plain-C++ users: unit tests, kernel-free drivers of the engine).
class PhysMemPort final : public UnitMemPort {
public:
    explicit PhysMemPort(mem::PhysMem& m, Duration latency = Duration::zero()) : m_(m), latency_(latency) {}
    bool read(uint64_t pa, void* dst, unsigned len, Duration& local) override {
        return timed([&] { m_.read(pa, dst, len); }, local);
    }
    bool write(uint64_t pa, const void* src, unsigned len, Duration& local) override {
        return timed([&] { m_.write(pa, src, len); }, local);
    }

private:
    template <class F>
    bool timed(F&& access, Duration& local) {
        try {
            access();
        } catch (const mem::AddressError&) {
            return false;
        }
        local += latency_;
        return true;
    }
    mem::PhysMem& m_;
    Duration latency_;
};

} // namespace iommusim::iommu
