# A tiny benchmark run so the tools keep working (figures are not checked).
add_test(NAME bench.smoke COMMAND bench_core --events 2000 --convs 200 --stored 400)
set_tests_properties(bench.smoke PROPERTIES TIMEOUT 120 ENVIRONMENT "RT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
