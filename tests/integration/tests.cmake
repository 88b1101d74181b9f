# Integration tests: shell scripts driving the real binary.

# quarantine.sh preloads this into the bot to make one message crash it.
# Built without the sanitizers: it only forwards to jansson.
add_library(crash_on MODULE ${CMAKE_SOURCE_DIR}/tests/integration/crash_on.c)
target_compile_options(crash_on PRIVATE -fno-sanitize=all)
target_link_options(crash_on PRIVATE -fno-sanitize=all)
target_link_libraries(crash_on ${CMAKE_DL_LIBS})
file(GLOB RT_IT CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/integration/*.sh)
list(REMOVE_ITEM RT_IT ${CMAKE_SOURCE_DIR}/tests/integration/lib.sh)
foreach(sh ${RT_IT})
  get_filename_component(name ${sh} NAME_WE)
  add_test(NAME it.${name} COMMAND sh ${sh})
  set_tests_properties(it.${name} PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77
    ENVIRONMENT "SHOPBOT=$<TARGET_FILE:shopbot>;RT_SOURCE_DIR=${CMAKE_SOURCE_DIR};FAKE_HTTP=$<TARGET_FILE:fake_http>;CRASH_ON_LIB=$<TARGET_FILE:crash_on>")
endforeach()
