#!/bin/sh
# getUpdates answers jansson refuses whole or over the 4 MiB cap, and sends
# answered with a cut 200: the real binary against the fake Bot API
# (telegram.py, case bad_updates).
: "${RT_SOURCE_DIR:?set RT_SOURCE_DIR to the source tree}"
exec python3 "$RT_SOURCE_DIR/tests/integration/telegram.py" bad_updates
