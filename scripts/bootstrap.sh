#!/usr/bin/env bash
# Creates .venv and installs the project with its dev extras, then installs Azurite (the Blob
# Storage emulator the local stack and the integration tests use) into tools/azurite with npm.
# Idempotent: each part re-installs only when its manifest (pyproject.toml, package-lock.json)
# changed since its last successful install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "error: Python >= 3.11 is required (found $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# Azurite: pinned in tools/azurite/package-lock.json, installed project-locally (never globally).
azurite=tools/azurite
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "error: Node.js (node and npm, version 20 or newer) is required to install Azurite, the Blob Storage" >&2
  echo "       emulator of the local stack and the tests; install it (e.g. apt-get install nodejs npm) and rerun." >&2
  exit 2
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "error: Node.js >= 20 is required for Azurite (found $(node --version)); install a newer Node.js and rerun." >&2
  exit 2
fi
npm_stamp="$azurite/node_modules/.installed-$(sha256sum "$azurite/package-lock.json" | cut -c1-16)"
if [ ! -f "$npm_stamp" ] || [ ! -x "$azurite/node_modules/.bin/azurite-blob" ]; then
  # Azurite 3.37 declares Node >= 22 but runs on Node 20 (checked by the integration tests);
  # --loglevel=error keeps that engine warning out of every CI log.
  npm ci --prefix "$azurite" --no-audit --no-fund --loglevel=error
  rm -f "$azurite"/node_modules/.installed-*
  touch "$npm_stamp"
fi

# promtool checks deploy/prometheus/alerts-dr.yml in the tests. Debian's prometheus package ships
# it; only that binary is extracted into tools/promtool (no service, nothing system-wide). A
# promtool already on PATH is used as it is.
promtool_dir=tools/promtool
if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$promtool_dir/promtool" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: promtool is required by the tests; install Prometheus' promtool on PATH (Debian/Ubuntu:" >&2
    echo "       apt-get install prometheus) or put it at $promtool_dir/promtool, and rerun." >&2
    exit 2
  fi
  deb_dir="$(mktemp -d)"
  trap 'rm -rf "$deb_dir"' EXIT
  # As root, apt hands downloads to its _apt user, which cannot write a private temp dir.
  apt_opts=(-qq)
  [ "$(id -u)" -eq 0 ] && apt_opts+=(-o APT::Sandbox::User=root)
  if ! (cd "$deb_dir" && apt-get "${apt_opts[@]}" download prometheus >/dev/null 2>&1); then
    # A fresh machine has no package lists yet.
    apt-get -qq update
    (cd "$deb_dir" && apt-get "${apt_opts[@]}" download prometheus)
  fi
  dpkg-deb --fsys-tarfile "$deb_dir"/prometheus_*.deb | tar -x -C "$deb_dir" ./usr/bin/promtool
  install -D -m 0755 "$deb_dir/usr/bin/promtool" "$promtool_dir/promtool"
fi

# PostgreSQL for the backup catalog's tests: they start a private cluster of their own with initdb
# and pg_ctl (tests/integration/postgres.py), so only the programs are needed, never a running
# service. Debian's postgresql package ships them under /usr/lib/postgresql/<major>/bin and creates
# the postgres user that owns the cluster when the tests run as root. Whatever the package's
# post-install does with its own cluster is not relied on.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  as_root=()
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  fi
  if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" -ne 0 ] && [ ${#as_root[@]} -eq 0 ]; }; then
    echo "error: the tests need PostgreSQL's initdb and pg_ctl; install PostgreSQL (Debian/Ubuntu, as root:" >&2
    echo "       apt-get install postgresql) and rerun." >&2
    exit 2
  fi
  pg_install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql)
  if ! "${as_root[@]}" "${pg_install[@]}" >/dev/null; then
    # A fresh machine has no package lists yet.
    "${as_root[@]}" apt-get -qq update
    "${as_root[@]}" "${pg_install[@]}" >/dev/null
  fi
fi
