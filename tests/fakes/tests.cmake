# Fake servers. unit.http spawns fake_http (slow, failing and rate-limited
# routes); FAKE_HTTP tells it where the binary is.
if(TARGET test_http AND TARGET fake_http)
  add_dependencies(test_http fake_http)
  set_property(TEST unit.http APPEND PROPERTY ENVIRONMENT
    "FAKE_HTTP=$<TARGET_FILE:fake_http>")
endif()
