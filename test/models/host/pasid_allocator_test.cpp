// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/host/pasid_allocator.hpp"

using namespace iommusim::host;
using K = HostError::Kind;

namespace {
K kind_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const HostError& e) {
        return e.kind();
    }
    FAIL("expected a HostError");
    return K::invalid;
}
} // namespace

TEST_CASE("PASID allocation past a set's quota fails with quota_exceeded", "[unit][host][pasid]") {
    PasidAllocator a;
    auto vm = a.create_set("vm1", 2);
    CHECK(a.alloc(vm, "vm1") == 1); // PASID 0 is reserved for RID_PASID
    CHECK(a.alloc(vm, "vm1") == 2);
    CHECK(kind_of([&] { a.alloc(vm, "vm1"); }) == K::quota_exceeded);
    a.free(vm, "vm1", 1);
    CHECK(a.alloc(vm, "vm1") == 1); // freed PASIDs are reused, lowest first
}

TEST_CASE("only the owner of a PASID set may allocate, free or bind its PASIDs", "[unit][host][pasid]") {
    PasidAllocator a;
    auto s1 = a.create_set("proc-a", 8);
    auto p = a.alloc(s1, "proc-a");
    CHECK(kind_of([&] { a.alloc(s1, "proc-b"); }) == K::not_owner);
    CHECK(kind_of([&] { a.free(s1, "proc-b", p); }) == K::not_owner);
    CHECK(kind_of([&] { a.check_owner(p, "proc-b"); }) == K::not_owner);
    CHECK_NOTHROW(a.check_owner(p, "proc-a"));
    CHECK(kind_of([&] { a.destroy_set(s1, "proc-b"); }) == K::not_owner);
}

TEST_CASE("a guest PASID in two VMs maps to two different host PASIDs", "[unit][host][pasid]") {
    PasidAllocator a;
    auto vm1 = a.create_set("vm1", 16);
    auto vm2 = a.create_set("vm2", 16);
    auto h1 = a.alloc(vm1, "vm1", 101);
    auto h2 = a.alloc(vm2, "vm2", 101);
    CHECK(h1 != h2);
    CHECK(a.host_pasid(vm1, 101) == h1);
    CHECK(a.host_pasid(vm2, 101) == h2);
    CHECK(a.set_of(h2) == vm2);
    CHECK(kind_of([&] { a.alloc(vm1, "vm1", 101); }) == K::busy);
    CHECK(kind_of([&] { a.host_pasid(vm1, 102); }) == K::not_found);
}

TEST_CASE("double free and unknown PASIDs are errors", "[unit][host][pasid]") {
    PasidAllocator a;
    auto s = a.create_set("p", 4);
    auto p = a.alloc(s, "p");
    a.free(s, "p", p);
    CHECK(kind_of([&] { a.free(s, "p", p); }) == K::not_found);
    CHECK(kind_of([&] { a.free(s, "p", 77); }) == K::not_found);
    CHECK(kind_of([&] { a.check_owner(77, "p"); }) == K::not_found);
    CHECK(kind_of([&] { a.alloc(99, "p"); }) == K::not_found);
}

TEST_CASE("a narrow PASID width exhausts the system space across sets", "[unit][host][pasid]") {
    PasidAllocator a(2); // PASIDs 1..3
    auto s1 = a.create_set("a", 10);
    auto s2 = a.create_set("b", 10);
    a.alloc(s1, "a");
    a.alloc(s2, "b");
    a.alloc(s1, "a");
    CHECK(kind_of([&] { a.alloc(s2, "b"); }) == K::quota_exceeded);
    a.destroy_set(s1, "a");
    CHECK(a.allocated() == 1);
    CHECK(a.alloc(s2, "b") == 1);
}

TEST_CASE("an owner's PASID set is created on first use with the host's default quota of 1000", "[unit][host][pasid]") {
    PasidAllocator a;
    CHECK_FALSE(a.find_set("vm1"));
    auto s = a.set_for("vm1");
    CHECK(a.find_set("vm1") == s);
    CHECK(a.set_for("vm1") == s); // the same set again
    CHECK(a.quota(s) == 1000);    // VFIO_DEFAULT_PASID_QUOTA
    for (int i = 0; i < 1000; ++i) a.alloc(s, "vm1");
    CHECK(kind_of([&] { a.alloc(s, "vm1"); }) == K::quota_exceeded);
    PasidAllocator tuned(20, PasidParams{3}); // the administrator's tunable
    auto t = tuned.set_for("vm1");
    CHECK(tuned.quota(t) == 3);
    CHECK(tuned.quota(tuned.create_set("vm2", 7)) == 7);
}

TEST_CASE("an owner holds one PASID set, so its quota cannot be multiplied", "[unit][host][pasid]") {
    PasidAllocator a;
    a.create_set("vm1", 2);
    CHECK(kind_of([&] { a.create_set("vm1", 2); }) == K::busy);
    CHECK(kind_of([&] { a.set_for(""); }) == K::invalid);
}

TEST_CASE("a requested host PASID is allocated exactly, charged to the set, and refused when taken", "[unit][host][pasid]") {
    PasidAllocator a;
    auto k = a.create_set("kernel", 4);
    auto v = a.create_set("vm1", 4);
    CHECK(a.alloc(k, "kernel", std::nullopt, 101) == 101);
    CHECK(a.used(k) == 1);
    CHECK(kind_of([&] { a.alloc(v, "vm1", std::nullopt, 101); }) == K::busy);
    CHECK(kind_of([&] { a.alloc(v, "vm1", std::nullopt, 0); }) == K::invalid);
    CHECK(kind_of([&] { a.alloc(v, "vm1", std::nullopt, PasidAllocator::kPasidLimit); }) == K::invalid);
    CHECK(a.alloc(v, "vm1") == 1); // the lowest free one is unaffected
    CHECK(a.owner_of(*a.set_of(101)) == "kernel");
    CHECK(kind_of([&] { a.check_owner(101, "vm1"); }) == K::not_owner);
}
