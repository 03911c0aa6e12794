// SPDX-License-Identifier: Apache-2.0
#include "models/mem/sparse_memory.hpp"
int main() {
    iommusim::mem::SparseMemory m(1 << 20);
    m.write_u64(8, 42);
    return m.read_u64(8) == 42 ? 0 : 1;
}
