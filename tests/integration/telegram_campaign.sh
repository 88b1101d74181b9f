#!/bin/sh
# A retention campaign over Telegram to 1,000 customers, with a 429 storm,
# the real binary against the fake Bot API (telegram.py, case campaign).
: "${RT_SOURCE_DIR:?set RT_SOURCE_DIR to the source tree}"
exec python3 "$RT_SOURCE_DIR/tests/integration/telegram.py" campaign
