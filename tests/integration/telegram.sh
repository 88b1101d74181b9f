#!/bin/sh
# The Telegram channel end to end: the real binary against the fake Bot API
# (tests/integration/telegram.py has the cases).
: "${RT_SOURCE_DIR:?set RT_SOURCE_DIR to the source tree}"
exec python3 "$RT_SOURCE_DIR/tests/integration/telegram.py" "$@"
