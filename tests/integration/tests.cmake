# Integration tests: shell scripts driving the real binary.
file(GLOB RT_IT CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/integration/*.sh)
list(REMOVE_ITEM RT_IT ${CMAKE_SOURCE_DIR}/tests/integration/lib.sh)
foreach(sh ${RT_IT})
  get_filename_component(name ${sh} NAME_WE)
  add_test(NAME it.${name} COMMAND sh ${sh})
  set_tests_properties(it.${name} PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77
    ENVIRONMENT "SHOPBOT=$<TARGET_FILE:shopbot>;RT_SOURCE_DIR=${CMAKE_SOURCE_DIR};FAKE_HTTP=$<TARGET_FILE:fake_http>")
endforeach()
