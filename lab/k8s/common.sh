# Shared by lab/k8s/{up,down,status}: where the k8s lab keeps its state and binaries.
# shellcheck shell=bash
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

K8S_VERSION="${K8S_VERSION:-1.20.2}"
K8S_BIN="${SRE_RUNBOOKS_CACHE:-$HOME/.cache/sre-runbooks}/k8s-$K8S_VERSION"
K8S_STATE="$LAB_STATE_DIR/k8s"
K8S_KUBECONFIG="$K8S_STATE/kubeconfig"
K8S_PYTHON="$REPO_ROOT/.venv/bin/python"
K8S_SIM="$LAB_ROOT/k8s/kubelet_sim.py"
# Start order; `down` stops in reverse.
K8S_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet-sim)

BIND="$(lab_var lab_bind_address)"
[[ "$BIND" == 127.0.0.1 ]] || die "lab_bind_address must be 127.0.0.1 (got $BIND)"
ETCD_CLIENT_PORT="$(lab_var lab_etcd_client_port)"
ETCD_PEER_PORT="$(lab_var lab_etcd_peer_port)"
APISERVER_PORT="$(lab_var lab_k8s_apiserver_port)"
KUBELET_PORT="$(lab_var lab_k8s_kubelet_port)"

# k8s_check [TIMEOUT_S] [NODES]: apiserver ready and NODES (default: all registered) simulated nodes Ready.
k8s_check() {
  "$K8S_PYTHON" "$K8S_SIM" check --kubeconfig "$K8S_KUBECONFIG" --timeout "${1:-0}" --nodes "${2:-0}"
}
