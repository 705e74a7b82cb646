// SPDX-License-Identifier: GPL-2.0
/*
 * mark start|stop|end|resync: the instructions tools/bench/icount/insn-count.c
 * counts between ("outb %al, $0xeb", "outb %al, $0xec"), reported at the
 * end ("outb %al, $0xee"); "outb %al, $0xed" numbers its marks from 1
 * again.  Needs root (ioperm); under KVM the
 * port access exits to the VMM, which ignores it.  Static, for the nested
 * guest's initramfs too.
 */
#include <stdio.h>
#include <string.h>
#include <sys/io.h>

int main(int argc, char **argv)
{
	const char *what = argc == 2 ? argv[1] : "";

	if (ioperm(0xeb, 4, 1)) {
		perror("mark: ioperm");
		return 1;
	}
	if (!strcmp(what, "start"))
		__asm__ volatile("outb %%al, $0xeb" : : "a"(0));
	else if (!strcmp(what, "stop"))
		__asm__ volatile("outb %%al, $0xec" : : "a"(0));
	else if (!strcmp(what, "resync"))
		__asm__ volatile("outb %%al, $0xed" : : "a"(0));
	else if (!strcmp(what, "end"))
		__asm__ volatile("outb %%al, $0xee" : : "a"(0));
	else {
		fprintf(stderr, "usage: mark start|stop|end|resync\n");
		return 2;
	}
	return 0;
}
