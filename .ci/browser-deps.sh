#!/bin/sh
# Installs, when missing, what the browser tests, `make screenshots` and the
# UI benchmark need: Debian's chromium (/usr/bin/chromium, never a
# downloaded browser) and axe-core (the accessibility checker the browser
# test injects into the page), pinned below and installed with npm into
# .cache/npm-ui/node_modules/axe-core. `make services` calls it; root or
# passwordless sudo is needed for the Debian package.
#
# Under CI=true a failure is fatal; elsewhere it is a warning and the
# browser tests skip.
set -eu
AXE_VERSION=4.10.3
cd "$(dirname "$0")/.."
cache=$PWD/.cache/npm-ui
ci=${CI:-false}

problem() {
	if [ "$ci" = true ]; then
		echo ".ci/browser-deps.sh: FATAL (CI=true): $*" >&2
		exit 1
	fi
	echo ".ci/browser-deps.sh: WARNING: $* (the browser tests will skip)" >&2
	exit 0
}

missing=
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v npm >/dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
	echo ".ci/browser-deps.sh: installing$missing with apt-get" >&2
	sudo=
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null && sudo -n true 2>/dev/null || problem "installing$missing needs root or passwordless sudo"
		sudo="sudo -n"
	fi
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq || problem "apt-get update failed"
	# shellcheck disable=SC2086
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing fonts-dejavu-core >&2 ||
		problem "apt-get install$missing failed"
fi

have=
[ -f "$cache/node_modules/axe-core/package.json" ] &&
	have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$cache/node_modules/axe-core/package.json" | head -n 1)
if [ "$have" != "$AXE_VERSION" ]; then
	mkdir -p "$cache"
	npm install --prefix "$cache" --no-save --ignore-scripts --no-audit --no-fund --no-package-lock \
		"axe-core@$AXE_VERSION" >&2 || problem "npm install axe-core@$AXE_VERSION failed"
fi
