# Browser tests: a real headless Chromium (Debian's chromium and
# chromium-driver through python3-selenium, which ./dev.sh test installs).
# Skipped (77) with a message only when the browser is not installed.
# Debian's python3 is named: selenium is a Debian package, not a pip one.
add_test(NAME browser.webchat COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/browser/webchat.py)
set_tests_properties(browser.webchat PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
  ENVIRONMENT "SHOPBOT=$<TARGET_FILE:shopbot>;RT_SOURCE_DIR=${CMAKE_SOURCE_DIR};ARTIFACTS=${CMAKE_BINARY_DIR}/artifacts")
add_test(NAME browser.studio COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/browser/studio.py)
set_tests_properties(browser.studio PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
  ENVIRONMENT "SHOPBOT=$<TARGET_FILE:shopbot>;RT_SOURCE_DIR=${CMAKE_SOURCE_DIR};ARTIFACTS=${CMAKE_BINARY_DIR}/artifacts")
