#!/usr/bin/env bash
# The cluster store for the tests (several labelhost hosts sharing claims, training jobs and
# models), from Debian's packages: PostgreSQL.
#   scripts/postgres.sh install         install Debian's postgresql when missing
#   scripts/postgres.sh run DIR PORT    a fresh database in DIR/data on 127.0.0.1:PORT, in the
#                                       foreground; user labelhost, no password (trust on
#                                       loopback only): postgres://labelhost@127.0.0.1:PORT/postgres
# As root, the server runs as the postgres system user the package creates (PostgreSQL
# refuses to run as root); DIR is handed to it.
set -euo pipefail
bin_dir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && [ -x "$d/postgres" ] && echo "$d"
}
case "${1:-}" in
    install)
        bin_dir > /dev/null && exit 0
        "$(dirname "$0")/apt-install.sh" postgres postgresql
        ;;
    run)
        dir=$2 port=$3
        bin=$(bin_dir) || { echo "postgres: not installed (scripts/postgres.sh install)" >&2; exit 1; }
        as=()
        mkdir -p "$dir"
        if [ "$(id -u)" -eq 0 ]; then
            chown postgres "$dir"
            chmod 700 "$dir"
            as=(runuser -u postgres --)
        fi
        "${as[@]}" "$bin/initdb" -D "$dir/data" -U labelhost -A trust --no-sync -E UTF8 > "$dir/initdb.log"
        exec "${as[@]}" "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" \
            -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200
        ;;
    *)
        echo "usage: scripts/postgres.sh install | run DIR PORT" >&2
        exit 2
        ;;
esac
