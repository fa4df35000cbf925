# Shell helpers shared by .ci/postgres.sh and .ci/slurm.sh (sourced, not run). Each script sets
# its own `die` before sourcing.

# Whether something listens on 127.0.0.1:$1.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A port on 127.0.0.1 that nothing listens on.
free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! port_in_use "$port"; then echo "$port"; return 0; fi
    done
    die "no free port found"
}
