#!/bin/sh
# The official redis image's entrypoint contract: flags alone run
# redis-server; redis-server and redis-sentinel started as root own /data
# and drop to the redis user. The official image is also built with
# protected mode off by default (its Dockerfile patches the default; the
# container's network is the boundary), which Debian's build keeps on: the
# setting goes first here, so a configuration file or a flag can still turn
# it back on.
set -e
case "$1" in -*|*.conf) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ] || [ "$1" = redis-sentinel ]; then
  if [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' + 2>/dev/null || true
    exec gosu redis "$0" "$@"
  fi
  server=$1
  shift
  case "$1" in
    *.conf) conf=$1; shift; set -- "$server" "$conf" --protected-mode no "$@" ;;
    *) set -- "$server" --protected-mode no "$@" ;;
  esac
fi
exec "$@"
