# SPDX-License-Identifier: GPL-2.0
#
# vhost-nvme top-level Makefile. The module's objects are listed in Kbuild;
# this file only drives the out-of-tree build and the test tooling.
#
#   make [all|modules]  build vhost_nvme.ko against Debian's 6.1 headers
#   make clean          remove build products
#   make deps           install build/test dependencies (tools/testing/deps.sh)
#   make check          static checks + selftests in a VM (tools/testing/check.sh)
#   make check-e2e      QEMU -device vhost-nvme with a nested guest (tools/testing/e2e)
#   make check-hostile  the hostile suite's long lane: 10M commands, 1M ioctls
#                       in a VM (tools/testing/check-hostile.sh; not in CI)
#   make dkms           install the module with DKMS for every kernel with
#                       headers (tools/dkms/install.sh)
#   make check-dkms     that install, tested in a VM (tools/testing/check-dkms.sh)
#   make check-kernels  build the module for trixie's 6.12 and sid's newest
#                       kernel with their compilers (debootstrap chroots)
#   make check-intree   build the driver once inside a kernel tree (overlay of
#                       linux-source-6.1, CONFIG_VHOST_NVME=m; not in CI)
#   make check-debug    selftests, hostile suite and a fail-nth walk on a KASAN/
#                       lockdep/kmemleak kernel built from linux-source-6.1
#                       (tools/testing/debug-kernel/check-debug.sh)
#   make run            module + workload in a VM (tools/testing/run.sh)
#   make fuzz           fuzz the data pointer walker in userspace for
#                       FUZZ_SECONDS (default 60; tools/testing/fuzz)
#   make bench          fio: native vs vhost-nvme vs the userspace baseline in a
#                       VM, results/bench.{json,md,png} (tools/bench/bench.sh)
#   make bench-icount   instructions per I/O of each mode, counted by a TCG
#                       plugin, results/icount.{json,md} (tools/bench/icount.sh)

ifneq ($(KERNELRELEASE),)
# Invoked by Kbuild without a Kbuild file: nothing to build.
else

KVER ?= $(shell ls /lib/modules 2>/dev/null | grep -E '^6\.1\.[0-9]+-[0-9]+-amd64$$' | sort -V | tail -n1)
KDIR ?= /lib/modules/$(KVER)/build
SELFTESTS := tools/testing/selftests/vhost_nvme
FUZZ_SECONDS ?= 60

.PHONY: all modules clean deps dkms check check-e2e check-hostile check-dkms check-intree check-kernels check-debug run fuzz bench bench-icount

all: modules

modules:
	@test -f Kbuild || { echo "No Kbuild file: nothing to build yet" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

clean:
	@if [ -f Kbuild ] && [ -d $(KDIR) ]; then $(MAKE) -C $(KDIR) M=$(CURDIR) clean; fi
	@if [ -f $(SELFTESTS)/Makefile ]; then $(MAKE) -C $(SELFTESTS) clean || true; fi

deps:
	tools/testing/deps.sh

check:
	tools/testing/check.sh

check-e2e:
	tools/testing/e2e/e2e.sh

check-hostile:
	tools/testing/check-hostile.sh

dkms:
	tools/dkms/install.sh

check-dkms:
	tools/testing/check-dkms.sh

check-intree:
	tools/testing/check-intree.sh

check-kernels:
	tools/testing/check-kernels.sh

check-debug:
	tools/testing/debug-kernel/check-debug.sh

run:
	tools/testing/run.sh

fuzz:
	$(MAKE) -C tools/testing/fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

bench:
	tools/bench/bench.sh

bench-icount:
	tools/bench/icount.sh

endif
