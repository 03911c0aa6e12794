// SPDX-License-Identifier: Apache-2.0
// Host cost of one fabric hop's flow control (issue 16): a root port's 32 posted header
// credits under a device that keeps them all held (the saturated port of sriov-nic-pasid and
// the p2p switches), per request: acquire a credit, serialize the TLP, hold the credit until
// the next stage accepted it. `CreditPool` against the scan it replaced (every credit looked at
// twice with a zero-length reserve(); kept here as the reference), which must grant the same
// credit at the same time. Figures are callgrind instructions (the stable measure on a shared
// machine):
//
//   valgrind --tool=callgrind --callgrind-out-file=cg build/test/bench/bench_fabric
//   callgrind_annotate --inclusive=yes cg | grep -E 'run_(pool|scan)'
//
// each divided by the request count printed. `--smoke`: a few thousand requests, checks
// that both grant identically.
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "models/common/time.hpp"
#include "models/pcie/link.hpp"
#include "test/models/pcie/credit_scan.hpp"

using namespace iommusim;
using namespace iommusim::pcie;

namespace {

using test::ScanPool;

/// One device's posted writes through a port: 256-byte TLPs offered every 10 ns (faster than
/// the port's next stage takes them: each is accepted 400 ns after its credit), so the port's
/// credits are all held; every 16th request arrives out of time order (temporal decoupling).
struct Offered {
    std::mt19937_64 rng{5};
    uint64_t clock = 0;
    Duration next() {
        clock += 10'000;
        const uint64_t back = rng() % 16 == 0 ? rng() % 200'000 : 0;
        return Duration::ps(clock > back ? clock - back : 0);
    }
};

template <class Pool>
[[gnu::noinline]] uint64_t run(Pool& pool, Link& link, uint64_t n, std::vector<CreditPool::Grant>* out) {
    Offered o;
    const TlpTrain tlp = link.timing().request_train(true, 0x1'0000'0000, 256, true);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; ++i) {
        const Duration want = o.next();
        const CreditPool::Grant g = pool.acquire(want);
        const LinkTransfer x = link.send(Direction::upstream, g.start, tlp);
        pool.hold(g, x.delivered + Duration::ns(400));
        sum += g.start.as_ps() + g.slot;
        if (out) out->push_back(g);
    }
    return sum;
}

[[gnu::noinline]] uint64_t run_pool(uint64_t n, std::vector<CreditPool::Grant>* out = nullptr) {
    stats::Group root("root");
    Link link("rp0", LinkParams{}, &root);
    CreditPool pool(LinkParams::kDefaultPostedBufferTlps);
    return run(pool, link, n, out);
}

[[gnu::noinline]] uint64_t run_scan(uint64_t n, std::vector<CreditPool::Grant>* out = nullptr) {
    stats::Group root("root");
    Link link("rp0", LinkParams{}, &root);
    ScanPool pool(LinkParams::kDefaultPostedBufferTlps);
    return run(pool, link, n, out);
}

/// Both pools, recording every grant (not measured).
[[gnu::noinline]] bool same_grants(uint64_t n) {
    std::vector<CreditPool::Grant> a, b;
    {
        stats::Group root("root");
        Link link("rp0", LinkParams{}, &root);
        CreditPool pool(LinkParams::kDefaultPostedBufferTlps);
        run(pool, link, n, &a);
    }
    {
        stats::Group root("root");
        Link link("rp0", LinkParams{}, &root);
        ScanPool pool(LinkParams::kDefaultPostedBufferTlps);
        run(pool, link, n, &b);
    }
    for (uint64_t i = 0; i < n; ++i)
        if (a[i].slot != b[i].slot || a[i].start != b[i].start) {
            std::fprintf(stderr, "bench_fabric: request %llu granted differently (slot %u at %llu ps, scan: slot %u at %llu ps)\n",
                         static_cast<unsigned long long>(i), a[i].slot, static_cast<unsigned long long>(a[i].start.as_ps()),
                         b[i].slot, static_cast<unsigned long long>(b[i].start.as_ps()));
            return false;
        }
    return true;
}

} // namespace

// The entry point is sc_main, as for every SystemC program: libsystemc's main()
// calls it, and the sanitizer build links the library although this bench never
// starts the kernel.
extern "C" int sc_main(int argc, char* argv[]) {
    const bool smoke = argc > 1 && std::strcmp(argv[1], "--smoke") == 0;
    const uint64_t n = smoke ? 5'000 : 200'000;
    if (!same_grants(n)) return 1;
    // The measured runs (no recording): run_pool / run_scan inclusive Ir over n requests.
    const uint64_t s1 = run_pool(n), s2 = run_scan(n);
    std::printf("bench_fabric: %llu saturated posted requests through one link with %u credits, "
                "identical grants (checksums %llu, %llu)\n",
                static_cast<unsigned long long>(n), LinkParams::kDefaultPostedBufferTlps,
                static_cast<unsigned long long>(s1), static_cast<unsigned long long>(s2));
    return s1 == s2 ? 0 : 1;
}
