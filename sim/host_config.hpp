// SPDX-License-Identifier: Apache-2.0
#pragma once
// The "host" section: CPU costs, driver policy, host memory layout.
#include <vector>

#include "models/host/host.hpp"
#include "sim/config/schema.hpp"

namespace iommusim::sim {
struct ParamSection;
host::HostParams parse_host(const json& j);
json dump_host(const host::HostParams& p);
void document_host(std::vector<ParamSection>& out);
} // namespace iommusim::sim
