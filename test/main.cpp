// SPDX-License-Identifier: Apache-2.0
// The test runner is SystemC's sc_main, so libsystemc's main() sets up the
// kernel exactly as it does for a simulator; Catch2 runs inside it.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <systemc>

int sc_main(int argc, char* argv[]) { return Catch::Session().run(argc, argv); }
