# A tiny benchmark run so the tools keep working (figures are not checked).
add_test(NAME bench.smoke COMMAND bench_core --events 2000 --convs 200 --stored 400)
set_tests_properties(bench.smoke PROPERTIES TIMEOUT 120 ENVIRONMENT "RT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
add_test(NAME bench.floor_smoke COMMAND bench_floor --events 2000 --convs 200)
set_tests_properties(bench.floor_smoke PROPERTIES TIMEOUT 60)
add_test(NAME bench.retention_smoke COMMAND bench_retention --rows 3000 --turns 300 --limit 20)
set_tests_properties(bench.retention_smoke PROPERTIES TIMEOUT 120 ENVIRONMENT "RT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
add_test(NAME bench.llm_smoke COMMAND bench_llm --calls 100 --inflight 50)
set_tests_properties(bench.llm_smoke PROPERTIES TIMEOUT 120 ENVIRONMENT "RT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
# The token figure (rules and OCR first against everything sent to the LLM)
# runs the example shop's transcripts twice; it fails only when a transcript
# fails in either run.
add_test(NAME bench.tokens COMMAND bench_tokens)
set_tests_properties(bench.tokens PROPERTIES TIMEOUT 180 ENVIRONMENT "RT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
