#!/bin/sh
# The default scenario's `dependency` step (molecule.yml): build this checkout as the collection
# fastapi_ops.app and install it into the scenario's ephemeral directory. check, converge and
# idempotence then deploy through the installed fastapi_ops.app.deploy (converge.yml), as a user
# who installed the collection would; ANSIBLE_COLLECTIONS_PATH names only this install.
#   collection.sh <project directory> <ephemeral directory>
set -eu
project=$1
ephemeral=$2
rm -rf "$ephemeral/dist" "$ephemeral/collections"
ansible-galaxy collection build --output-path "$ephemeral/dist" "$project"
# Only this install path: a copy in the user's own collections must not count as installed.
ANSIBLE_COLLECTIONS_PATH="$ephemeral/collections" ansible-galaxy collection install --offline \
    -p "$ephemeral/collections" "$ephemeral"/dist/*.tar.gz
