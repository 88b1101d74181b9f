# Transcript tests: the core test shop, and every example's tests/*.chat,
# one ctest entry per file so a failure names the file.
add_test(NAME flows.core COMMAND shopbot test ${CMAKE_SOURCE_DIR}/tests/flows/shop)
file(GLOB RT_EXAMPLES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/examples/*/shop.json)
foreach(cfg ${RT_EXAMPLES})
  get_filename_component(dir ${cfg} DIRECTORY)
  get_filename_component(ex ${dir} NAME)
  add_test(NAME check.${ex} COMMAND shopbot check ${dir})
  file(GLOB chats CONFIGURE_DEPENDS ${dir}/tests/*.chat)
  foreach(chat ${chats})
    get_filename_component(name ${chat} NAME_WE)
    add_test(NAME flows.${ex}.${name} COMMAND shopbot test ${dir} ${chat})
  endforeach()
endforeach()
