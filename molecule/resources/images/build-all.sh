#!/usr/bin/env bash
# Convenience wrapper: build every supported test image.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/build.sh" all
