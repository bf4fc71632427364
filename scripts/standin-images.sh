#!/usr/bin/env bash
# standin-images.sh: build local STAND-INS for the official base images this project uses, from Debian
# bookworm packages, so that the gateway's image and the compose stack can be built and run on a machine
# that reaches no container registry (only Debian's package mirror).
#
# These are NOT the official images. Each one is only close enough for this project:
#   python:3.11-slim        Debian's python3 (3.11) + venv + pip, in /usr rather than /usr/local
#   redis:7-alpine          Debian's redis-server 7.0 (glibc, not Alpine), with an official-like entrypoint
#   postgres:16-alpine      Debian's PostgreSQL **15** (bookworm has no 16), with an official-like entrypoint
#   prom/prometheus:v2.53.0 Debian's prometheus **2.42**, run as nobody like the official image
# Every image carries the labels io.llm-gateway.standin=true and org.opencontainers.image.description
# ("stand-in for NAME, built from Debian bookworm packages by scripts/standin-images.sh", plus what it
# really contains), so `docker image inspect` always tells a stand-in from the real thing.
#
# Usage: scripts/standin-images.sh [--force] [--docker PATH] [IMAGE...]   (as root)
#   IMAGE...       build only these (official names as above); default: all four
#   --force        rebuild stand-ins that already exist (an image without the stand-in label, i.e. a real
#                  one, is never replaced)
#   --docker PATH  the docker client to use (also env DOCKER); default /usr/bin/docker, else docker on PATH
# Environment:
#   STANDIN_CACHE_DIR  cache (Debian base tarball, downloaded .debs, logs);
#                      default ${XDG_CACHE_HOME:-$HOME/.cache}/llm-gateway/standins
#   STANDIN_MIRROR, STANDIN_SECURITY_MIRROR
#                      Debian mirrors; default: the ones apt on this machine uses for bookworm and
#                      bookworm-security
#
# Without --force an image name that already exists locally is skipped (stand-in or real), so running the
# script again is a no-op. The Debian base (debootstrap --variant=minbase) is made once and kept as a
# tarball in the cache; delete the cache directory to start from nothing.

set -Eeuo pipefail

readonly SUITE=bookworm
readonly IMAGES=("python:3.11-slim" "redis:7-alpine" "postgres:16-alpine" "prom/prometheus:v2.53.0")
readonly DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
readonly SCRIPT_NAME=scripts/standin-images.sh

FORCE=0
SELECTED=()
TIMINGS=()   # "label<TAB>seconds", printed again in the summary
declare -A RESULT=()   # image name -> what happened to it

log() { printf 'standin-images: %s\n' "$*"; }
die() { printf 'standin-images: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"; }

now_ms() { date +%s%3N; }

# timed LABEL COMMAND...: run COMMAND, then print (and remember) how long it took.
timed() {
    local label=$1 start seconds
    shift
    start=$(now_ms)
    "$@"
    seconds=$(awk -v ms="$(($(now_ms) - start))" 'BEGIN { printf "%.1f", ms / 1000 }')
    printf '  %-68s %6s s\n' "$label" "$seconds"
    TIMINGS+=("$label"$'\t'"$seconds")
}

# ---- options, tools, docker ------------------------------------------------------------------------

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --force) FORCE=1 ;;
            --docker) [ $# -ge 2 ] || die "--docker needs a path"; DOCKER=$2; shift ;;
            --docker=*) DOCKER=${1#--docker=} ;;
            -h | --help) usage; exit 0 ;;
            -*) die "unknown option $1 (see --help)" ;;
            *) SELECTED+=("$1") ;;
        esac
        shift
    done
    local name known known_name
    for name in "${SELECTED[@]}"; do
        known=0
        for known_name in "${IMAGES[@]}"; do [ "$name" = "$known_name" ] && known=1; done
        [ "$known" = 1 ] || die "no stand-in for $name; known: ${IMAGES[*]}"
    done
    [ ${#SELECTED[@]} -gt 0 ] || SELECTED=("${IMAGES[@]}")
}

# Debian's docker client (20.10) matches the daemon here; a newer client on PATH may not.
choose_docker() {
    if [ -z "${DOCKER:-}" ]; then
        if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker || true); fi
    fi
    [ -n "$DOCKER" ] && [ -x "$DOCKER" ] || die "no docker client (give --docker PATH)"
    "$DOCKER" version >/dev/null 2>&1 || die "$DOCKER cannot reach a docker daemon"
}

preflight() {
    [ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot need it)"
    local tool
    for tool in debootstrap unshare chroot tar flock awk; do
        command -v "$tool" >/dev/null || die "$tool is missing (apt-get install debootstrap util-linux)"
    done
    choose_docker
}

# ---- Debian mirrors ---------------------------------------------------------------------------------

# apt_source_uri SUITE: the first URI that this machine's apt sources use for SUITE, read from deb822
# (*.sources) and one-line (*.list) files, so the stand-ins come from the mirror the host already uses.
apt_source_uri() {
    local suite=$1 files=()
    shopt -s nullglob
    files=(/etc/apt/sources.list.d/*.sources)
    {
        [ ${#files[@]} -eq 0 ] || awk -v suite="$suite" '
            function flush() {
                if (index(" " types " ", " deb ") && index(" " suites " ", " " suite " ") \
                    && tolower(enabled) != "no" && uris != "") {
                    split(uris, u, /[ \t]+/); print u[1]; exit
                }
                types = suites = uris = ""; enabled = "yes"
            }
            BEGIN { enabled = "yes" }
            /^[ \t]*$/ { flush(); next }
            /^[A-Za-z-]+:/ {
                field = tolower($1); value = $0; sub(/^[^:]*:[ \t]*/, "", value)
                if (field == "types:") types = value
                else if (field == "suites:") suites = value
                else if (field == "uris:") uris = value
                else if (field == "enabled:") enabled = value
            }
            END { flush() }
        ' "${files[@]}"
        files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
        [ ${#files[@]} -eq 0 ] || awk -v suite="$suite" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }   # skip [ options ]
                if ($(i + 1) == suite) { print $i; exit }
            }
        ' "${files[@]}" 2>/dev/null
    } | head -n 1
    shopt -u nullglob
}

# apt's freshness checks as the host has them: a snapshot mirror serves Release files whose Valid-Until
# has passed on purpose, and the host's apt is told to accept them; the chroots need the same (for the
# build only: the images keep Debian's defaults).
host_apt_options() {
    local option value
    for option in Acquire::Check-Valid-Until Acquire::Check-Date; do
        value=$(apt-config dump --no-empty --format '%v%n' "$option" 2>/dev/null | tail -n 1 || true)
        [ -z "$value" ] || printf -- '-o %s=%s ' "$option" "$value"
    done
}

# ---- the cached Debian base -------------------------------------------------------------------------

# The base: debootstrap's minbase plus ca-certificates (every official image carries a CA bundle, and an
# https mirror needs one in the chroot), configured like Debian's own docker images: no docs/man pages/
# translations from later installs, and no services started by package scripts.
make_base() {
    local rootfs=$WORK/base log=$LOG_DIR/debootstrap.log
    mkdir -p "$rootfs"
    log "debootstrap $SUITE ($MIRROR) -> $BASE_TAR (log: $log)"
    # (isolated: debootstrap mounts /proc and /sys in the target; those mounts stay private to it.)
    if ! isolated "$log" debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$MIRROR"
    then
        tail -n 30 "$log" >&2
        [ ! -f "$rootfs/debootstrap/debootstrap.log" ] || tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
        die "debootstrap failed (see $log)"
    fi

    # Package scripts must not start daemons in the chroot (nor later in containers that install
    # packages); Debian's own docker images ship this same policy.
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 0755 "$rootfs/usr/sbin/policy-rc.d"

    # Like Debian's slim images: later installs leave out docs (licences stay), man pages and translations.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/standin-slim" <<'EOF'
# scripts/standin-images.sh: keep the stand-in images small, as Debian's slim images do
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    # A container's filesystem is thrown away on failure anyway; skipping fsync makes dpkg much faster.
    echo force-unsafe-io >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"

    # Sources in the form Debian's images use, with updates and security fixes (the official images have
    # them too).
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # debootstrap copies the host's name and resolver; neither belongs in an image (docker provides both).
    : >"$rootfs/etc/hostname"
    : >"$rootfs/etc/resolv.conf"
    rm -rf "$rootfs/debootstrap" "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*

    # Written to a temporary name first: an interrupted run must not leave a half tarball to be reused.
    tar -C "$rootfs" --numeric-owner -cf "$BASE_TAR.part" .
    mv "$BASE_TAR.part" "$BASE_TAR"
    remove_tree "$rootfs"
}

# ---- chroot and cleanup -----------------------------------------------------------------------------

# rm -rf that cannot leave the rootfs's filesystem, and refuses while anything is mounted beneath it (a
# bind-mounted /dev would otherwise lose the host's device nodes).
remove_tree() {
    local dir=$1
    [ -e "$dir" ] || return 0
    if awk -v d="$dir/" 'index($5 "/", d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        die "something is still mounted under $dir; not removing it"
    fi
    # (A second try: a process of a just-killed namespace may have created a file during the first.)
    rm -rf --one-file-system "$dir" 2>/dev/null || { sleep 1; rm -rf --one-file-system "$dir"; }
}

# isolated LOG COMMAND...: run COMMAND in mount and PID namespaces of its own, its output to LOG.
# - Every mount it makes (debootstrap's /proc and /sys, in_chroot's below) is invisible to the host and
#   disappears with it, whatever happens, even kill -9 of this script, which no trap survives; so an rm -rf
#   of a rootfs can never reach through a bind mount into the host's /dev.
# - It is the PID namespace's init: when it ends, the kernel kills whatever it left (a daemon that a
#   package script started, say), and cleanup() can stop all of it by killing one process.
# - It runs in the background with an interruptible `wait`, so Ctrl-C acts now, not when apt is done.
isolated() {
    local log=$1 rc=0
    shift
    unshare --mount --pid --fork --kill-child --propagation private -- "$@" >"$log" 2>&1 &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=
    return "$rc"
}

# in_chroot ROOTFS LOG SCRIPT: run SCRIPT (bash, traced into LOG) inside ROOTFS, with /proc, /dev and the
# shared apt caches mounted, all within isolated().
in_chroot() {
    local rootfs=$1 log=$2 script=$3
    # shellcheck disable=SC2016 # the inner script expands its own arguments
    isolated "$log" /bin/bash -euc '
        rootfs=$1 debs=$2 lists=$3 script=$4
        mount -t proc proc "$rootfs/proc"
        mount --rbind /dev "$rootfs/dev"
        mount --bind "$debs" "$rootfs/var/cache/apt/archives"
        mount --bind "$lists" "$rootfs/var/lib/apt/lists"
        exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
            DEBIAN_FRONTEND=noninteractive chroot "$rootfs" /bin/bash -euxo pipefail -c "$script"
    ' in_chroot "$rootfs" "$DEB_CACHE" "$LIST_CACHE" "$script"
}

# The end of every image's chroot script: what Debian's slim images leave out, and apt's state.
# (/var/cache/apt/archives and /var/lib/apt/lists are the shared caches, mounted over empty directories.)
readonly CLEANUP_SCRIPT='
find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
find /usr/share/doc -mindepth 1 -type d -empty -delete
rm -rf /usr/share/man/* /usr/share/groff/* /usr/share/info/* /usr/share/lintian/* /usr/share/linda/*
[ ! -d /usr/share/locale ] || find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt/* \
    /var/log/dpkg.log /var/log/alternatives.log /var/log/bootstrap.log /root/.cache /tmp/* /tmp/.[!.]*
'

# ---- the images ------------------------------------------------------------------------------------
# image_spec NAME sets, for one image:
#   KEY           short name (work directory, log file)
#   PACKAGES      installed with apt-get install --no-install-recommends
#   VERSION_PKG   the package whose version goes into the labels
#   SETUP         chroot script run before (PRE_SETUP) / after (SETUP) the install
#   CHANGES       Dockerfile instructions for docker import --change
#   STOP_SIGNAL   STOPSIGNAL (docker import cannot set it: a one-line docker build adds it)
#   ENTRYPOINT    a function printing the entrypoint, installed as /usr/local/bin/docker-entrypoint.sh
#   NOTE          what the image really is (@VERSION@: the package's upstream version), appended to the
#                 description label

image_spec() {
    PRE_SETUP='' SETUP='' STOP_SIGNAL='' ENTRYPOINT=''
    case $1 in
        python:3.11-slim) spec_python ;;
        redis:7-alpine) spec_redis ;;
        postgres:16-alpine) spec_postgres ;;
        prom/prometheus:v2.53.0) spec_prometheus ;;
        *) die "no stand-in for $1" ;;
    esac
}

# --- python:3.11-slim
spec_python() {
    KEY=python
    PACKAGES="python3 python3-venv python3-pip python-is-python3 ca-certificates passwd"
    VERSION_PKG=python3.11
    # Debian marks its Python "externally managed" (PEP 668), so pip refuses to install outside a venv; the
    # official image has no such marker. useradd/groupadd are used by the project's Dockerfile.
    SETUP=$(cat <<'EOF'
rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
command -v python pip groupadd useradd
EOF
)
    CHANGES=("ENV PATH=$DEFAULT_PATH" 'ENV LANG=C.UTF-8' 'CMD ["python3"]')
    NOTE="Python @VERSION@ from Debian (in /usr, not /usr/local; pip from Debian too)"
}

# --- redis:7-alpine
spec_redis() {
    KEY=redis
    PACKAGES="redis-server redis-tools"
    VERSION_PKG=redis-server
    SETUP='install -d -o redis -g redis /data'
    CHANGES=("ENV PATH=$DEFAULT_PATH" 'VOLUME /data' 'WORKDIR /data' 'EXPOSE 6379'
        'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["redis-server"]')
    ENTRYPOINT=redis_entrypoint
    NOTE="Redis @VERSION@ from Debian (glibc, not Alpine)"
}

# The official image's entrypoint, for what this project uses. The official image is compiled with
# protected mode off; Debian's redis-server is not, so without a config file the entrypoint turns it off
# (and binds every interface, Redis 7's own default without a config file) ahead of the user's arguments,
# which therefore still win.
redis_entrypoint() {
    cat <<'EOF'
#!/bin/sh
# Stand-in for the official redis image's entrypoint (written by scripts/standin-images.sh).
set -e

# `docker run IMAGE --appendonly yes` or `docker run IMAGE /etc/redis.conf`: arguments for redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
	# A new volume on /data may belong to root: give it to redis, then start again as redis.
	find . \! -user redis -exec chown redis {} +
	exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [ "$1" = redis-server ]; then
	shift
	case "${1-}" in
		-v | --version | -h | --help | --test-memory | --check-system | -) ;;  # these must stay first
		"" | -*) set -- --bind "* -::*" --protected-mode no "$@" ;;            # no config file given
	esac
	set -- redis-server "$@"
	# Files redis creates (dump, append-only file) are private unless the user chose a umask.
	if [ "$(umask)" = 0022 ]; then umask 0077; fi
fi

exec "$@"
EOF
}

# --- postgres:16-alpine
spec_postgres() {
    KEY=postgres
    PACKAGES="postgresql-15"
    VERSION_PKG=postgresql-15
    # Debian's package would create (and start) a cluster "main" of its own; the entrypoint makes one in
    # PGDATA instead, like the official image.
    PRE_SETUP=$(cat <<'EOF'
apt-get $APT_OPTIONS -y install --no-install-recommends postgresql-common
sed -ri 's/^#?(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf
EOF
)
    # listen_addresses = '*' in the sample that initdb copies, as the official image does. The snakeoil key
    # that Debian's ssl-cert generates is not used (ssl stays off) and should not travel in an image.
    SETUP=$(cat <<'EOF'
sample=/usr/share/postgresql/15/postgresql.conf.sample
sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$sample"
grep -qF "listen_addresses = '*'" "$sample"
install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
install -d -o postgres -g postgres -m 3777 /var/run/postgresql
install -d /docker-entrypoint-initdb.d
rm -f /etc/ssl/private/ssl-cert-snakeoil.key /etc/ssl/certs/ssl-cert-snakeoil.pem
EOF
)
    CHANGES=("ENV PATH=/usr/lib/postgresql/15/bin:$DEFAULT_PATH" 'ENV LANG=C.UTF-8'
        'ENV PGDATA=/var/lib/postgresql/data' 'VOLUME /var/lib/postgresql/data' 'EXPOSE 5432'
        'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]')
    # Like the official image: SIGINT is PostgreSQL's "fast" shutdown (SIGTERM would wait for clients).
    STOP_SIGNAL=SIGINT
    ENTRYPOINT=postgres_entrypoint
    NOTE="PostgreSQL 15 (@VERSION@), not 16: Debian bookworm has no PostgreSQL 16"
}

# The official entrypoint, for what this project uses: the first start initialises PGDATA with
# POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB (also POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD,
# /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz); then postgres runs as PID 1, as user postgres.
# Authentication as in the official image: initdb's trust for the local socket (and loopback), plus
# "host all all all scram-sha-256" for everything else.
postgres_entrypoint() {
    cat <<'EOF'
#!/usr/bin/env bash
# Stand-in for the official postgres image's entrypoint (written by scripts/standin-images.sh).
set -Eeuo pipefail

# `docker run IMAGE -c shared_buffers=256MB`: options for postgres.
first=${1:-}
if [ "${first:0:1}" = - ]; then
	set -- postgres "$@"
fi
# Anything but the server, and `postgres --version` / `--help` (no database needed): run it as it is.
want_help() {
	local arg
	for arg; do
		case "$arg" in -'?' | --help | --describe-config | -V | --version) return 0 ;; esac
	done
	return 1
}
if [ "${1:-}" != postgres ] || want_help "$@"; then
	exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
	# A new volume may belong to root: give PGDATA and the socket directory to postgres, start again as it.
	mkdir -p "$PGDATA" /var/run/postgresql
	find "$PGDATA" \! -user postgres -exec chown postgres:postgres {} +
	chmod 0700 "$PGDATA"
	chown postgres:postgres /var/run/postgresql
	chmod 3775 /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ -s "$PGDATA/PG_VERSION" ]; then
	echo "PostgreSQL Database directory appears to contain a database; Skipping initialization"
else
	: "${POSTGRES_USER:=postgres}"
	: "${POSTGRES_DB:=$POSTGRES_USER}"
	: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		echo "error: database is uninitialized and superuser password is not specified." >&2
		echo "       Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust, which lets anyone in)." >&2
		exit 1
	fi
	# POSTGRES_INITDB_ARGS is split into words, as in the official image.
	read -ra initdb_args <<<"${POSTGRES_INITDB_ARGS:-}"
	if [ -n "${POSTGRES_PASSWORD:-}" ]; then
		initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") "${initdb_args[@]}"
	else
		initdb --username="$POSTGRES_USER" "${initdb_args[@]}"
	fi
	printf "\nhost all all all %s\n" "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

	# A server without TCP and on a private socket, to create the database and run the init scripts:
	# a healthcheck's pg_isready (default socket) must not call the database ready before the real
	# server runs (the official image has that race: a migration could start and lose the server).
	init_socket=$(mktemp -d)
	export PGHOST=$init_socket
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$init_socket" -w start
	psql_run=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [ "$POSTGRES_DB" != postgres ]; then
		"${psql_run[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
			*.sh)
				echo "running $f"
				# shellcheck source=/dev/null
				if [ -x "$f" ]; then "$f"; else . "$f"; fi
				;;
			*.sql) echo "running $f"; "${psql_run[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
			*.sql.gz) echo "running $f"; gunzip -c "$f" | "${psql_run[@]}" --dbname "$POSTGRES_DB" ;;
			*/\*) ;;  # the directory is empty
			*) echo "ignoring $f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	unset PGHOST
	rmdir "$init_socket"
	echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
EOF
}

# --- prom/prometheus:v2.53.0
spec_prometheus() {
    KEY=prometheus
    PACKAGES="prometheus"
    VERSION_PKG=prometheus
    # The classic web UI loads only moment-timezone-with-data.min.js; the 210 MB of per-zone JSON that
    # libjs-moment-timezone also ships (data/) is never read, so dpkg leaves it out, as it does the docs.
    PRE_SETUP=$(cat <<'EOF'
echo 'path-exclude /usr/share/javascript/moment-timezone/data/*' >/etc/dpkg/dpkg.cfg.d/standin-prometheus
EOF
)
    # The official image runs as nobody (65534) with its data in /prometheus and its config owned by nobody.
    SETUP=$(cat <<'EOF'
install -d -o nobody -g nogroup /prometheus
chown -R nobody:nogroup /etc/prometheus
test -x /bin/prometheus
EOF
)
    CHANGES=("ENV PATH=$DEFAULT_PATH" 'USER nobody' 'WORKDIR /prometheus' 'VOLUME /prometheus'
        'EXPOSE 9090' 'ENTRYPOINT ["/bin/prometheus"]'
        'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]')
    NOTE="Prometheus @VERSION@ from Debian, not 2.53.0"
}

# ---- building one image -----------------------------------------------------------------------------

# The host's extra CA certificates (e.g. for an intercepting proxy in front of an https mirror or PyPI)
# go into every image, where update-ca-certificates adds them to the bundle apt, pip and curl use.
copy_host_cas() {
    local rootfs=$1
    [ -d "$HOST_CA_DIR" ] && [ -n "$(ls -A "$HOST_CA_DIR")" ] || return 1
    cp -a "$HOST_CA_DIR"/. "$rootfs/usr/local/share/ca-certificates/"
}

install_packages() {
    local rootfs=$1 update_cas=$2 log=$LOG_DIR/$KEY.log
    local script="APT_OPTIONS='$APT_OPTIONS'
${update_cas:+update-ca-certificates}
apt-get \$APT_OPTIONS update
apt-get \$APT_OPTIONS -y upgrade
$PRE_SETUP
apt-get \$APT_OPTIONS -y install --no-install-recommends $PACKAGES
$SETUP
$CLEANUP_SCRIPT"
    if ! in_chroot "$rootfs" "$log" "$script"; then
        tail -n 40 "$log" >&2
        die "installing $PACKAGES failed (whole log: $log)"
    fi
}

# 5:7.0.15-1~deb12u10 -> 7.0.15: the version a user would recognise, for the description.
upstream_version() {
    local version=${1#*:}
    version=${version%-*}
    echo "${version%%+*}"
}

import_image() {
    local rootfs=$1 name=$2 version=$3 args=() change target
    for change in "${CHANGES[@]}"; do args+=(--change "$change"); done
    args+=(--change "LABEL io.llm-gateway.standin=true io.llm-gateway.standin.for=\"$name\"")
    args+=(--change "LABEL org.opencontainers.image.version=\"$version\"")
    args+=(--change "LABEL org.opencontainers.image.description=\"stand-in for $name, built from Debian $SUITE packages by $SCRIPT_NAME: ${NOTE//@VERSION@/$(upstream_version "$version")}\"")
    # Docker 20.10's import refuses STOPSIGNAL: import under a temporary tag, then add it with a build
    # that has no context and no RUN (the classic builder: BuildKit may want to pull its frontend).
    target=$name
    [ -z "$STOP_SIGNAL" ] || target=llm-gateway-standin-tmp:$KEY-$$
    tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        --exclude='./tmp/*' -cf - . | "$DOCKER" import "${args[@]}" - "$target" >/dev/null
    if [ -n "$STOP_SIGNAL" ]; then
        TMP_TAG=$target
        printf 'FROM %s\nSTOPSIGNAL %s\n' "$target" "$STOP_SIGNAL" |
            DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$name" - >/dev/null
        "$DOCKER" rmi "$target" >/dev/null
        TMP_TAG=
    fi
}

build_image() {
    local name=$1 rootfs old_id new_id version update_cas=''
    image_spec "$name"
    rootfs=$WORK/$KEY
    log "building stand-in $name"
    old_id=$("$DOCKER" image inspect -f '{{.Id}}' "$name" 2>/dev/null || true)

    mkdir -p "$rootfs"
    timed "$name: unpack base" tar -C "$rootfs" --numeric-owner -xpf "$BASE_TAR"
    if copy_host_cas "$rootfs"; then update_cas=1; fi
    cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf"   # DNS for apt in the chroot, emptied below
    if [ -n "$ENTRYPOINT" ]; then
        "$ENTRYPOINT" >"$rootfs/usr/local/bin/docker-entrypoint.sh"
        chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
    fi
    timed "$name: install packages (apt log: $KEY.log)" install_packages "$rootfs" "$update_cas"
    : >"$rootfs/etc/resolv.conf"
    # shellcheck disable=SC2016 # ${Version} is dpkg-query's field, not a shell variable
    version=$(chroot "$rootfs" dpkg-query -W -f '${Version}' "$VERSION_PKG")
    timed "$name: docker import" import_image "$rootfs" "$name" "$version"
    timed "$name: remove the work tree" remove_tree "$rootfs"

    # A rebuild leaves the previous stand-in untagged: remove it (fails harmlessly if a container uses it).
    new_id=$("$DOCKER" image inspect -f '{{.Id}}' "$name")
    if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then "$DOCKER" rmi "$old_id" >/dev/null 2>&1 || true; fi
    RESULT[$name]="built ($VERSION_PKG $version)"
}

# ---- main -------------------------------------------------------------------------------------------

# plan NAME: 0 to build it, 1 to leave it (with the reason in RESULT).
plan() {
    local name=$1 standin
    "$DOCKER" image inspect "$name" >/dev/null 2>&1 || return 0
    standin=$("$DOCKER" image inspect -f '{{index .Config.Labels "io.llm-gateway.standin"}}' "$name" 2>/dev/null || true)
    if [ "$standin" != true ]; then
        RESULT[$name]="skipped: a real (non-stand-in) image of that name exists; never replaced"
        return 1
    fi
    if [ "$FORCE" = 1 ]; then return 0; fi
    RESULT[$name]="skipped: stand-in already exists (--force rebuilds it)"
    return 1
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # An interrupted debootstrap or chroot: unshare ignores SIGTERM and SIGINT while it waits for its
    # child, so SIGKILL it; --kill-child then SIGKILLs the namespace's init, and with it every process and
    # mount of the namespace. Wait for it, so that nothing writes into the work directory being removed.
    if [ -n "${CHILD_PID:-}" ]; then
        kill -KILL "$CHILD_PID" 2>/dev/null || true
        wait "$CHILD_PID" 2>/dev/null || true
    fi
    [ -z "${TMP_TAG:-}" ] || "$DOCKER" rmi "$TMP_TAG" >/dev/null 2>&1 || true
    [ -z "${WORK:-}" ] || remove_tree "$WORK" || rc=1
    rm -f "${BASE_TAR:-/nonexistent}.part"
    [ "$rc" = 0 ] || log "failed (exit $rc); nothing is left mounted, work files removed"
    exit "$rc"
}

summary() {
    local name size line
    echo
    log "summary"
    for line in "${TIMINGS[@]}"; do printf '  %-68s %6s s\n' "${line%%$'\t'*}" "${line#*$'\t'}"; done
    printf '  %-68s %6s s\n' "total" "$(awk -v ms="$(($(now_ms) - START_MS))" 'BEGIN { printf "%.1f", ms / 1000 }')"
    for name in "${SELECTED[@]}"; do
        size=$("$DOCKER" image ls --format '{{.Size}}' "$name" 2>/dev/null | head -n 1)
        printf '  %-26s %8s  %s\n' "$name" "${size:--}" "${RESULT[$name]}"
    done
}

main() {
    START_MS=$(now_ms)
    parse_args "$@"
    preflight

    CACHE_DIR=${STANDIN_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/llm-gateway/standins}
    MIRROR=${STANDIN_MIRROR:-$(apt_source_uri "$SUITE")}
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
    SECURITY_MIRROR=${STANDIN_SECURITY_MIRROR:-$(apt_source_uri "$SUITE-security")}
    SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
    APT_OPTIONS="-q -o Dpkg::Use-Pty=0 $(host_apt_options)"
    HOST_CA_DIR=/usr/local/share/ca-certificates
    BASE_TAR=$CACHE_DIR/debian-$SUITE-minbase.tar
    DEB_CACHE=$CACHE_DIR/apt-archives   # downloaded .debs, shared by all images and later runs
    LIST_CACHE=$CACHE_DIR/apt-lists     # package lists, likewise (apt-get update then only revalidates)
    LOG_DIR=$CACHE_DIR/logs
    mkdir -p "$CACHE_DIR" "$DEB_CACHE/partial" "$LIST_CACHE/partial" "$LOG_DIR"

    # One run at a time per cache (apt's caches and the base tarball are shared).
    exec 9>"$CACHE_DIR/.lock"
    flock -n 9 || { log "another run holds $CACHE_DIR/.lock; waiting"; flock 9; }
    # Work directories of a run that was killed: their mounts died with their namespaces, and a process of
    # theirs still running would still hold the lock (it inherited fd 9), so they are plain files now.
    local stale
    for stale in "$CACHE_DIR"/work.*; do [ ! -e "$stale" ] || remove_tree "$stale"; done
    WORK=$(mktemp -d "$CACHE_DIR/work.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    local name to_build=()
    for name in "${SELECTED[@]}"; do
        if plan "$name"; then to_build+=("$name"); fi
    done
    if [ ${#to_build[@]} -gt 0 ]; then
        log "cache: $CACHE_DIR; mirrors: $MIRROR, $SECURITY_MIRROR; docker: $DOCKER"
        if [ -f "$BASE_TAR" ]; then
            log "Debian base: cached ($BASE_TAR)"
        else
            timed "debootstrap --variant=minbase $SUITE (cached afterwards)" make_base
        fi
        for name in "${to_build[@]}"; do timed "$name: all of it" build_image "$name"; done
    fi
    summary
}

main "$@"
