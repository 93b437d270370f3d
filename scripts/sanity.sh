#!/usr/bin/env bash
# Collection checks of `make lint`: ansible-test sanity (ansible-core's own checks of a collection:
# plugin docs, imports, pylint, pep8, shebangs, ...) and antsibull-docs lint-collection-docs
# (the plugins' documentation markup and cross-references), on the work tree as it stands.
#
# ansible-test wants the collection at ansible_collections/<namespace>/<name> and reads the
# working directory's real path, so the tracked and untracked (not ignored) files are copied
# into a temporary tree of that shape; `git init` there makes ansible-test list files the way it
# does in a checkout. ansible-test, antsibull-docs and ansible-doc come from PATH (the Makefile
# puts .venv/bin first; requirements-dev.txt pins them).
#
# Local mode, no containers. Not run (see tests/sanity/ignore-2.19.txt for what is ignored):
#   pslint     needs PowerShell; the collection has no PowerShell.
#   shellcheck needs the shellcheck program, which the toolchain does not install.
# Every other test runs. The ones with Python requirements (pylint, pep8, validate-modules,
# yamllint, import, ansible-doc, ...) run in virtualenvs that ansible-test makes from PyPI on
# the first run and keeps under SANITY_CACHE (default .cache/sanity, ignored by git); later runs
# need no network.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

python=$(command -v python)
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
read -r namespace name < <("$python" -c 'import yaml; g = yaml.safe_load(open("galaxy.yml")); print(g["namespace"], g["name"])')
cache=${SANITY_CACHE:-$root/.cache/sanity}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
collection=$work/ansible_collections/$namespace/$name
mkdir -p "$collection"
git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' path; do
        # deleted in the work tree but still in the index: not part of what is checked
        if [[ -e $path || -L $path ]]; then printf '%s\0' "$path"; fi
    done \
    | tar --null --no-recursion -T - -cf - | tar -xf - -C "$collection"
git -C "$collection" init -q

# ansible-test bootstraps pip in each of its virtualenvs with a get-pip.py it downloads from
# Ansible's CI file server, which a machine that reaches only the package registries cannot fetch.
# It takes the script from its cache when it is there: the stand-in put there installs the same pip
# with ensurepip and PyPI. ansible-test passes on little more than HOME to what it runs, so HOME
# points at the cache.
pip_version=$("$python" - <<'EOF'
import pathlib, re, ansible_test
text = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
print(re.search(r"default_packages = dict\(\s*pip='([^']+)'", text).group(1))
EOF
)
get_pip=$cache/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [[ ! -e $get_pip ]]; then
    mkdir -p "$(dirname "$get_pip")"
    cat >"$get_pip" <<'EOF'
"""Stand-in for get-pip.py (scripts/sanity.sh): pip from ensurepip, then the pip ansible-test asked for."""
import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet"] + args)
if "--no-setuptools" in sys.argv[1:]:
    subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", "setuptools"])
EOF
fi

status=0
start=$(date +%s)
(cd "$collection" && HOME=$cache ansible-test sanity --local --python "$pyver" \
    --skip-test pslint --skip-test shellcheck) || status=1
echo "ansible-test sanity: $(( $(date +%s) - start )) s"

start=$(date +%s)
(cd "$collection" && antsibull-docs lint-collection-docs --plugin-docs .) || status=1
echo "antsibull-docs lint-collection-docs: $(( $(date +%s) - start )) s"
exit "$status"
