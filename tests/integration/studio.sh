#!/bin/sh
# The studio's API on a real process (studio_api.py): a private copy of a
# new shop, chat and manager, a retention check-in whose follow-up fires
# when time moves, the reload banner on and off, the transcript tests run
# in a child, a conversation saved as a transcript that `shopbot test`
# passes, the figures of the private and (read-only) the real store, and
# bad input: paths outside the shop, malformed JSON, an unknown customer.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "skipped: python3 is missing"; exit 77; }
cd "$TMP" && python3 "$RT_SOURCE_DIR/tests/integration/studio_api.py"
