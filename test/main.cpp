// SPDX-License-Identifier: Apache-2.0
// Catch2 runs from our own main(): Debian's SystemC prints its banner from
// sc_elab_and_sim() unconditionally, and the kernel needs no sc_elab_and_sim
// to elaborate and sc_start() inside a test case.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <systemc>

int main(int argc, char* argv[]) { return Catch::Session().run(argc, argv); }
// libsystemc.so references sc_main.
int sc_main(int argc, char* argv[]) { return Catch::Session().run(argc, argv); }
