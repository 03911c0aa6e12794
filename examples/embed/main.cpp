// SPDX-License-Identifier: Apache-2.0
// A SystemC program (libsystemc provides main() and calls sc_main) using one
// model of the installed package. Declaring sc_main, not main, is what every
// program linking libsystemc must do: in a sanitizer build the library's
// objects need libsystemc, whose main() then needs an sc_main.
#include <systemc>

#include "models/mem/sparse_memory.hpp"

int sc_main(int, char*[]) {
    iommusim::mem::SparseMemory m(1 << 20);
    m.write_u64(8, 42);
    const sc_core::sc_time t(1, sc_core::SC_NS); // links libsystemc in every build
    return m.read_u64(8) == 42 && t.value() > 0 ? 0 : 1;
}
