# Installs iommusim into a scratch prefix and builds examples/embed against it
# with find_package(iommusim), then runs the example.
set(prefix ${BINARY_DIR}/install-test/prefix)
set(ebuild ${BINARY_DIR}/install-test/embed)
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BINARY_DIR} --prefix ${prefix}
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "install failed: ${rc}")
endif()
# Configures and builds an example against the installed package.
function(configure_and_build src bin)
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${src} -B ${bin}
                  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "configuring ${src} against the installed package failed")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${bin} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "building ${src} against the installed package failed")
  endif()
endfunction()

configure_and_build(${SOURCE_DIR}/examples/embed ${ebuild})
execute_process(COMMAND ${ebuild}/embed_example RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "the example failed: ${rc}")
endif()

# examples/platform: a whole platform through sim::Platform, headers under iommusim/.
configure_and_build(${SOURCE_DIR}/examples/platform ${BINARY_DIR}/install-test/platform)
execute_process(COMMAND ${BINARY_DIR}/install-test/platform/platform_example
                        ${prefix}/share/iommusim/platforms/default.json duration_us=100
                RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(rc OR NOT out MATCHES "os.oracle.violations +0 requests")
  message(FATAL_ERROR "examples/platform failed (${rc}): ${out}")
endif()

# examples/vtd_unit: one family's unit in a user's SystemC program, tables built with the
# library's helpers, a translated DMA and a recorded fault.
configure_and_build(${SOURCE_DIR}/examples/vtd_unit ${BINARY_DIR}/install-test/vtd_unit)
execute_process(COMMAND ${BINARY_DIR}/install-test/vtd_unit/vtd_unit_example
                RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(rc OR NOT out MATCHES "-> pa 0x40000000: ok, data 0x1122334455667788" OR NOT out MATCHES "dmar0.faults +1")
  message(FATAL_ERROR "examples/vtd_unit failed (${rc}): ${out}")
endif()
