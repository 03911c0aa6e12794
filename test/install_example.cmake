# Installs iommusim into a scratch prefix and builds examples/embed against it
# with find_package(iommusim), then runs the example.
set(prefix ${BINARY_DIR}/install-test/prefix)
set(ebuild ${BINARY_DIR}/install-test/embed)
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BINARY_DIR} --prefix ${prefix}
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "install failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/embed -B ${ebuild}
                -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the example against the installed package failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${ebuild} RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the example against the installed package failed")
endif()
execute_process(COMMAND ${ebuild}/embed_example RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "the example failed: ${rc}")
endif()
