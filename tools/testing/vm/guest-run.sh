#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of `make run` (run by vm-run.sh with the module already built):
# loads vhost_nvme.ko, then runs the workload.
#
# PLACEHOLDER: the workload (e.g. a nested guest using vhost-nvme plus fio)
# is not written yet. Replace the block below; write results into $VM_OUT.
set -euo pipefail
: "${VM_OUT:?run this through tools/testing/run.sh or vm/vm-run.sh}"
# shellcheck source=guest-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/guest-lib.sh"

echo "guest-run: loading vhost_nvme.ko"
vn_load_module

echo "guest-run: workload not implemented yet" >&2
vn_unload_module
exit 1
