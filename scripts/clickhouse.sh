#!/usr/bin/env bash
# Runs a private ClickHouse server for tests and demos.
#
#   bash scripts/clickhouse.sh start DIR   # prints only the DSN on stdout
#   bash scripts/clickhouse.sh stop DIR    # stops it and waits
#
# Everything lives in DIR: config.xml, users.xml, data, tmp, logs, the pid
# file and the chosen ports. The server listens on 127.0.0.1 only, on free
# ports picked at the first start; a later start on the same DIR keeps the
# data and the ports, so a test can stop the server and bring it back.
#
# Works with Debian's clickhouse-server package (18.16, /usr/sbin/
# clickhouse-server) and with the upstream single binary (`clickhouse
# server`). As root, the server runs as the clickhouse user when it exists
# (DIR is handed to that user), because newer servers refuse to run as a
# user that does not own the data directory.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
log() { echo "clickhouse.sh: $*" >&2; }

server_cmd() {
  if command -v clickhouse-server >/dev/null 2>&1; then
    echo "$(command -v clickhouse-server)"
  elif [ -x /usr/sbin/clickhouse-server ]; then
    echo /usr/sbin/clickhouse-server
  elif command -v clickhouse >/dev/null 2>&1; then
    echo "$(command -v clickhouse) server"
  elif [ -x /usr/bin/clickhouse ]; then
    echo "/usr/bin/clickhouse server"
  else
    log "no clickhouse-server binary found (apt-get install clickhouse-server)"
    exit 1
  fi
}

# port_free PORT: nothing accepts connections on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Ports come from below the kernel's ephemeral range, so a client socket of
# some other test (kfake, HTTP) can never be holding the port we pick.
pick_port() {
  local p i lo=10000 hi
  hi=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$hi" -gt $((lo + 2000)) ] || { lo=1025; }
  for i in $(seq 1 200); do
    p=$((lo + RANDOM % (hi - lo)))
    if port_free "$p" && ! grep -qx "$p" "$dir/ports.tmp" 2>/dev/null; then
      echo "$p" >>"$dir/ports.tmp"
      echo "$p"
      return 0
    fi
  done
  log "no free port found"
  exit 1
}

# ping PORT: the HTTP interface answers "Ok." on /ping.
ping_http() {
  local out
  out=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 && cat <&3' _ "$1" 2>/dev/null) || return 1
  [[ $out == *"Ok."* ]]
}

running() {
  [ -f "$dir/server.pid" ] && kill -0 "$(cat "$dir/server.pid")" 2>/dev/null
}

write_config() {
  local tcp=$1 http=$2
  cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Written by scripts/clickhouse.sh: a private test server on loopback. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/logs/clickhouse-server.log</log>
        <errorlog>$dir/logs/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$tcp</tcp_port>
    <http_port>$http</http_port>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
EOF
  cat >"$dir/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <!-- Idle connections notice a shutdown within this many
                 seconds (default 10), so stop is quick even while clients
                 keep pooled connections open. -->
            <poll_interval>1</poll_interval>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks replace="replace">
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

start() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if running; then
    log "already running (pid $(cat "$dir/server.pid"))"
  else
    mkdir -p "$dir/data" "$dir/tmp" "$dir/logs" "$dir/user_files" "$dir/format_schemas"
    local tcp http
    if [ -f "$dir/ports" ]; then
      read -r tcp http <"$dir/ports"
    else
      rm -f "$dir/ports.tmp"
      tcp=$(pick_port)
      http=$(pick_port)
      rm -f "$dir/ports.tmp"
      echo "$tcp $http" >"$dir/ports"
    fi
    write_config "$tcp" "$http"

    local runas=()
    if [ "$(id -u)" = 0 ] && id clickhouse >/dev/null 2>&1; then
      chown -R clickhouse: "$dir"
      # The server must be able to reach DIR through its parents (mktemp
      # makes them 0700 for root).
      local p=$dir
      while [ "$p" != / ]; do
        p=$(dirname "$p")
        [ "$p" = / ] || chmod o+x "$p" 2>/dev/null || true
      done
      if command -v setpriv >/dev/null 2>&1; then
        runas=(setpriv --reuid=clickhouse --regid=clickhouse --init-groups)
      else
        runas=(runuser -u clickhouse --)
      fi
    fi
    # shellcheck disable=SC2046
    (cd "$dir" && exec setsid "${runas[@]}" $(server_cmd) --config-file="$dir/config.xml" \
      </dev/null >>"$dir/logs/stdout.log" 2>&1) &
    echo $! >"$dir/server.pid"
  fi

  local tcp http
  read -r tcp http <"$dir/ports"
  local i
  for i in $(seq 1 600); do
    if ping_http "$http"; then
      echo "clickhouse://default:@127.0.0.1:$tcp/default"
      return 0
    fi
    if ! running; then
      log "server exited during start; last log lines:"
      tail -n 30 "$dir/logs/stdout.log" "$dir/logs/clickhouse-server.err.log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.1
  done
  log "server did not answer within 60 s; see $dir/logs"
  exit 1
}

stop() {
  [ -d "$dir" ] || { log "no such directory $dir"; exit 1; }
  if ! running; then
    rm -f "$dir/server.pid"
    return 0
  fi
  local pid i
  pid=$(cat "$dir/server.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "server $pid ignored SIGTERM for 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$dir/server.pid"
  # The port must be free again before a restart can bind it.
  local tcp http
  read -r tcp http <"$dir/ports"
  for i in $(seq 1 100); do
    port_free "$tcp" && port_free "$http" && break
    sleep 0.1
  done
}

case $cmd in
start) start ;;
stop) stop ;;
status) if running; then echo running; else echo stopped; exit 1; fi ;;
*) usage ;;
esac
