// SPDX-License-Identifier: GPL-2.0
/*
 * mark start|stop|end|resync: the instructions tools/bench/icount/insn-count.c
 * counts between ("start", "stop"), reported at the end ("end"); "resync"
 * numbers its marks from 1 again.  A marker is a no-op that no compiler
 * emits, "nopl 0x564e00XX(%rax)" with XX 0xeb to 0xee (0f 1f 80 XX 00 4e
 * 56): it needs no privilege and, under KVM, no exit, so it runs the same
 * at every nesting depth.  (An "outb" after ioperm() did before: in a
 * nested guest on QEMU 10.0's TCG it ended in SIGSEGV, a #GP the I/O
 * permission check raised; on 7.2 it ran.)  Static, for the nested
 * guest's initramfs too.
 */
#include <stdio.h>
#include <string.h>

#define MARK(x)	__asm__ volatile("nopl 0x564e00" #x "(%%rax)" : : : "memory")

int main(int argc, char **argv)
{
	const char *what = argc == 2 ? argv[1] : "";

	if (!strcmp(what, "start"))
		MARK(eb);
	else if (!strcmp(what, "stop"))
		MARK(ec);
	else if (!strcmp(what, "resync"))
		MARK(ed);
	else if (!strcmp(what, "end"))
		MARK(ee);
	else {
		fprintf(stderr, "usage: mark start|stop|end|resync\n");
		return 2;
	}
	return 0;
}
