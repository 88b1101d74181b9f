#!/bin/sh
# managers.topics: a forum topic per handed-off customer in the managers'
# group, the real binary against the fake Bot API (telegram.py, case topics).
: "${RT_SOURCE_DIR:?set RT_SOURCE_DIR to the source tree}"
exec python3 "$RT_SOURCE_DIR/tests/integration/telegram.py" topics
