# Unit tests: one executable per tests/unit/test_<name>.c, registered as
# unit.<name>. Each prints "N passed, N failed" and exits non-zero on failure.
file(GLOB RT_UNIT_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/unit/test_*.c)
foreach(src ${RT_UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  string(REPLACE "test_" "" short ${name})
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit)
  target_link_libraries(${name} rtapp rttools rtcore)
  add_test(NAME unit.${short} COMMAND ${name})
  set_tests_properties(unit.${short} PROPERTIES TIMEOUT 120
    ENVIRONMENT "RT_SOURCE_DIR=${CMAKE_SOURCE_DIR};SHOPBOT=$<TARGET_FILE:shopbot>")
endforeach()

# Helper programs (fake servers, bench drivers): tests/fakes/*.c, tests/bench/*.c
file(GLOB RT_HELPERS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fakes/*.c
                                        ${CMAKE_SOURCE_DIR}/tests/bench/*.c)
foreach(src ${RT_HELPERS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} rtapp rttools rtcore)
endforeach()

# Every other test file registers itself in a tests/*/tests.cmake fragment.
file(GLOB RT_TEST_FRAGMENTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/*/tests.cmake)
foreach(f ${RT_TEST_FRAGMENTS})
  include(${f})
endforeach()
