#!/usr/bin/env bash
# A two-host MPI run on one machine (docs/distributed.md): two network namespaces joined by a veth pair, one rank in
# each, OpenMPI's TCP transport between them; the losses must equal one process's (tests/mpi/mpi_train.sh `equal`).
# Needs root (ip netns). Usage: scripts/two_host_mpi.sh [recur binary, default build/recur]
set -euo pipefail
cd "$(dirname "$0")/.."
recur=$(realpath "${1:-build/recur}")
work=$(mktemp -d /tmp/recur_two_host.XXXXXX)
ns1=recur_host1 ns2=recur_host2 ip1=10.77.0.1 ip2=10.77.0.2
cleanup() { ip netns del $ns1 2> /dev/null || true; ip netns del $ns2 2> /dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add $ns1
ip netns add $ns2
ip link add recur_veth1 type veth peer name recur_veth2
ip link set recur_veth1 netns $ns1
ip link set recur_veth2 netns $ns2
ip -n $ns1 addr add $ip1/24 dev recur_veth1
ip -n $ns2 addr add $ip2/24 dev recur_veth2
for ns in $ns1 $ns2; do
  ip -n $ns link set lo up
  ip -n $ns link set "recur_veth${ns: -1}" up
done
# mpirun starts the remote daemon through an "ssh" agent: here one that enters the host's namespace instead.
cat > "$work/agent.sh" << AGENT
#!/bin/sh
while [ "\${1#-}" != "\$1" ]; do shift; done  # ssh-style options
host=\$1; shift
case \$host in $ip1) ns=$ns1 ;; $ip2) ns=$ns2 ;; *) echo "agent: unknown host \$host" >&2; exit 1 ;; esac
exec ip netns exec \$ns sh -c "\$*"
AGENT
chmod +x "$work/agent.sh"
printf '%s slots=1\n%s slots=1\n' $ip1 $ip2 > "$work/hosts"
export OMPI_MCA_btl_tcp_if_include=10.77.0.0/24 OMPI_MCA_oob_tcp_if_include=10.77.0.0/24
export OMPI_MCA_plm_rsh_agent=$work/agent.sh OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export MPIRUN="ip netns exec $ns1 mpirun -np 2 --hostfile $work/hosts --map-by node"
echo "two hosts: rank 0 in $ns1 ($ip1), rank 1 in $ns2 ($ip2), TCP over a veth pair; each rank's addresses:"
$MPIRUN sh -c 'echo "rank $OMPI_COMM_WORLD_RANK: $(ip -br -4 addr show | grep -v ^lo)"'
bash tests/mpi/mpi_train.sh "$recur" "$work/run" equal
