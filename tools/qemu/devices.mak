# SPDX-License-Identifier: GPL-2.0
#
# The devices of the QEMU that tools/qemu/build-qemu.sh builds
# (--without-default-devices --with-devices-x86_64=vhost-nvme): the nested
# guests of the tests and benchmarks boot `-machine pc -nodefaults` with a
# serial console and one of these disks.  Everything else is left out so the
# first build on a fresh machine is shorter.  virtio-iommu: the e2e check
# that -device vhost-nvme refuses a guest IOMMU.  virtio-9p and the ISA
# serial port: the same binary is the test VM's emulator
# (tools/testing/vm/vm-run.sh: the host's root over 9p, the console on a
# serial port).
CONFIG_I440FX=y
CONFIG_NVME_PCI=y
CONFIG_VHOST_NVME=y
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_BLK=y
CONFIG_VIRTIO_IOMMU=y
CONFIG_VIRTIO_9P=y
CONFIG_SERIAL_ISA=y
