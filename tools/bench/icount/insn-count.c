// SPDX-License-Identifier: GPL-2.0
/*
 * insn-count: a TCG plugin that counts the guest instructions executed
 * between markers, split into kernel and user space.
 *
 * A marker is a no-op no compiler emits, "nopl 0x564e00XX(%rax)" with XX
 * 0xeb (start), 0xec (stop), 0xed (resync) or 0xee (end), executed by
 * tools/bench/icount/mark at any privilege level and any nesting depth: TCG runs a nested guest's code too, so a marker in the
 * nested guest counts the whole test VM, KVM in it included.  A run is
 * counted from its start to its stop (fio's exec_prerun and exec_postrun:
 * fio's own start and end, which vary from run to run, stay out) and
 * reported at its end, which the script executes after every run whatever
 * happened, through qemu_plugin_outs() (QEMU's -d plugin -D FILE):
 *   insn-count: mark N kernel K user U
 * or "insn-count: mark N none" for a run without a start and a stop, so
 * that N is always the run's number.  A resync prints "insn-count: resync"
 * and numbers the next marks from 1 again (a nested guest that died
 * between its markers cannot shift the numbers of the next one's).
 * Counting is per translation block, inline, into counters with one
 * writer each (see the ABIs below).  Kernel: a block at a virtual address in the
 * upper half (x86-64's kernel half; a nested guest's kernel is there too).
 *
 * With the argument profile=on (-plugin insn-count.so,profile=on) it
 * also counts per kernel translation block, by the block's start address
 * and the address QEMU reports for its code (qemu_plugin_insn_haddr():
 * two kernels at the same virtual addresses, a test VM's and its nested
 * guest's, run code from different memory), and prints after each mark
 * line the blocks that ran at least 1000 instructions between the start
 * and the stop:
 *   insn-count: prof N ADDRESS INSTRUCTIONS CODE-ADDRESS
 * (hexadecimal addresses; icount-report.py puts them into functions with
 * the test VM's /proc/kallsyms).
 *
 * Written against two plugin ABIs, with the few declarations each needs
 * below, so that no QEMU source is needed: ICOUNT_ABI=1 for Debian 12's
 * QEMU 7.2 (version 1: inline additions to plain counters, one writer
 * under -accel tcg,thread=single) and ICOUNT_ABI=4 for QEMU 10.0, the
 * project's build that tools/bench/icount.sh uses by default (scoreboards:
 * a counter per vCPU, under multi-threaded TCG, summed when read; a mark
 * reads them while other vCPUs may run; two runs agreed within 0.5-2.7%).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

#ifndef ICOUNT_ABI
#define ICOUNT_ABI 1
#endif

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
					   tb_trans_cb_t cb);
#if ICOUNT_ABI == 1
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
					      enum qemu_plugin_op op,
					      void *ptr, uint64_t imm);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
#else
struct qemu_plugin_scoreboard;
typedef struct {
	struct qemu_plugin_scoreboard *score;
	size_t offset;
} qemu_plugin_u64;
struct qemu_plugin_scoreboard *qemu_plugin_scoreboard_new(size_t element_size);
void qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(struct qemu_plugin_tb *tb,
							enum qemu_plugin_op op,
							qemu_plugin_u64 entry,
							uint64_t imm);
uint64_t qemu_plugin_u64_sum(qemu_plugin_u64 entry);
size_t qemu_plugin_insn_data(const struct qemu_plugin_insn *insn, void *dest,
			     size_t len);
#endif
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
					    vcpu_udata_cb_t cb,
					    enum qemu_plugin_cb_flags flags,
					    void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb_t cb,
				    void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb,
						 size_t idx);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
void *qemu_plugin_insn_haddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);

EXPORT int qemu_plugin_version = ICOUNT_ABI;

/* A counter of instructions that translated blocks add to as they run */
#if ICOUNT_ABI == 1
typedef uint64_t *counter_t;

static void counter_add(struct qemu_plugin_tb *tb, counter_t c, uint64_t n)
{
	qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
						 c, n);
}

static uint64_t counter_read(counter_t c)
{
	return *c;
}
#else
typedef qemu_plugin_u64 counter_t;

static void counter_add(struct qemu_plugin_tb *tb, counter_t c, uint64_t n)
{
	qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(tb,
							   QEMU_PLUGIN_INLINE_ADD_U64,
							   c, n);
}

static uint64_t counter_read(counter_t c)
{
	return qemu_plugin_u64_sum(c);
}
#endif

enum { KERNEL, USER };
static counter_t count[2];	/* since boot */
static uint64_t at_start[2];
static unsigned int marks;
static int started;

/*
 * profile=on: a counter per kernel block start address, in an open
 * addressing table that grows at half full.  Entries never move while a
 * block's inline counter points at them: the table is an array of
 * pointers to entries allocated one by one.  Multi-threaded TCG translates
 * on several vCPU threads at once: plock guards the table (a resize under
 * another thread's lookup freed the table twice and killed the test VM).
 */
struct prof {
	uint64_t vaddr;
	uintptr_t haddr;
	counter_t count;	/* since boot */
	uint64_t at_start;
	uint64_t at_stop;
#if ICOUNT_ABI == 1
	uint64_t n;
#endif
};
static int profile;
static pthread_mutex_t plock = PTHREAD_MUTEX_INITIALIZER;
static struct prof **ptab;
static size_t psize, pused;
#if ICOUNT_ABI != 1
/* The blocks' counters, PROF_MAX of them per vCPU */
#define PROF_MAX	(1u << 18)
static struct qemu_plugin_scoreboard *pscore;
#endif

static struct prof **prof_slot(struct prof **tab, size_t size, uint64_t vaddr,
			      uintptr_t haddr)
{
	size_t i = ((vaddr ^ haddr) * 0x9e3779b97f4a7c15ull) >> 20;

	for (;; i++) {
		struct prof **e = &tab[i & (size - 1)];

		if (!*e || ((*e)->vaddr == vaddr && (*e)->haddr == haddr))
			return e;
	}
}

/* Called with plock held */
static struct prof *prof_get(uint64_t vaddr, uintptr_t haddr)
{
	struct prof **e;

	if (2 * (pused + 1) > psize) {
		size_t nsize = psize ? 2 * psize : 1 << 16, i;
		struct prof **ntab = calloc(nsize, sizeof(*ntab));

		if (!ntab)
			return NULL;
		for (i = 0; i < psize; i++)
			if (ptab[i])
				*prof_slot(ntab, nsize, ptab[i]->vaddr,
					   ptab[i]->haddr) = ptab[i];
		free(ptab);
		ptab = ntab;
		psize = nsize;
	}
	e = prof_slot(ptab, psize, vaddr, haddr);
	if (!*e) {
#if ICOUNT_ABI != 1
		if (pused == PROF_MAX)
			return NULL;	/* not counted by block */
#endif
		*e = calloc(1, sizeof(**e));
		if (!*e)
			return NULL;
		(*e)->vaddr = vaddr;
		(*e)->haddr = haddr;
#if ICOUNT_ABI == 1
		(*e)->count = &(*e)->n;
#else
		(*e)->count = (qemu_plugin_u64){ pscore, pused * sizeof(uint64_t) };
#endif
		pused++;
	}
	return *e;
}

enum { PROF_START, PROF_STOP, PROF_PRINT };

static void prof_mark(int what)
{
	char line[128];
	size_t i;

	pthread_mutex_lock(&plock);
	for (i = 0; i < psize; i++) {
		struct prof *e = ptab[i];

		if (!e)
			continue;
		if (what == PROF_START) {
			e->at_start = counter_read(e->count);
			e->at_stop = e->at_start;
		} else if (what == PROF_STOP) {
			e->at_stop = counter_read(e->count);
		} else if (e->at_stop - e->at_start >= 1000) {
			snprintf(line, sizeof(line),
				 "insn-count: prof %u %" PRIx64 " %" PRIu64 " %" PRIxPTR "\n",
				 marks, e->vaddr, e->at_stop - e->at_start, e->haddr);
			qemu_plugin_outs(line);
		}
	}
	pthread_mutex_unlock(&plock);
}

#define MARK_START	((void *)1)
#define MARK_STOP	((void *)2)
#define MARK_RESYNC	((void *)3)
#define MARK_END	((void *)4)

static uint64_t counted[2];	/* from the start to the stop */
static int stopped;

static void mark(unsigned int vcpu, void *what)
{
	char line[128];

	(void)vcpu;
	if (what == MARK_RESYNC) {
		marks = 0;
		started = stopped = 0;
		qemu_plugin_outs("insn-count: resync\n");
	} else if (what == MARK_START) {
		at_start[KERNEL] = counter_read(count[KERNEL]);
		at_start[USER] = counter_read(count[USER]);
		started = 1;
		stopped = 0;
		prof_mark(PROF_START);
	} else if (what == MARK_STOP && started) {
		counted[KERNEL] = counter_read(count[KERNEL]) - at_start[KERNEL];
		counted[USER] = counter_read(count[USER]) - at_start[USER];
		started = 0;
		stopped = 1;
		prof_mark(PROF_STOP);
	} else if (what == MARK_END) {
		if (stopped)
			snprintf(line, sizeof(line),
				 "insn-count: mark %u kernel %" PRIu64 " user %" PRIu64 "\n",
				 ++marks, counted[KERNEL], counted[USER]);
		else
			snprintf(line, sizeof(line), "insn-count: mark %u none\n",
				 ++marks);
		qemu_plugin_outs(line);
		if (stopped)
			prof_mark(PROF_PRINT);
		started = stopped = 0;
	}
}

#define MARK_LEN	7
static const uint8_t mark_insn[MARK_LEN] = {
	0x0f, 0x1f, 0x80, 0x00, 0x00, 0x4e, 0x56
};

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t i, n = qemu_plugin_tb_n_insns(tb);
	uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
	int where = (vaddr >> 63) ? KERNEL : USER;

	(void)id;
	counter_add(tb, count[where], n);
	if (profile && where == KERNEL) {
		struct prof *e;

		pthread_mutex_lock(&plock);
		e = prof_get(vaddr, (uintptr_t)qemu_plugin_insn_haddr(
					qemu_plugin_tb_get_insn(tb, 0)));
		if (e)
			counter_add(tb, e->count, n);
		pthread_mutex_unlock(&plock);
	}
	for (i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
#if ICOUNT_ABI == 1
		const uint8_t *b = qemu_plugin_insn_data(insn);
#else
		uint8_t b[MARK_LEN] = { 0 };

		if (qemu_plugin_insn_size(insn) == MARK_LEN)
			qemu_plugin_insn_data(insn, b, sizeof(b));
#endif

		/* nopl 0x564e00XX(%rax): 0f 1f 80 XX 00 4e 56 */
		if (qemu_plugin_insn_size(insn) != MARK_LEN ||
		    memcmp(b, mark_insn, 3) || memcmp(b + 4, mark_insn + 4, 3) ||
		    b[3] < 0xeb || b[3] > 0xee)
			continue;
		qemu_plugin_register_vcpu_insn_exec_cb(insn, mark,
						       QEMU_PLUGIN_CB_NO_REGS,
						       (void *)(uintptr_t)(b[3] - 0xea));
	}
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
	char line[128];

	(void)id;
	(void)userdata;
	snprintf(line, sizeof(line),
		 "insn-count: total kernel %" PRIu64 " user %" PRIu64 " marks %u\n",
		 counter_read(count[KERNEL]), counter_read(count[USER]), marks);
	qemu_plugin_outs(line);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
			       int argc, char **argv)
{
	int i;

	(void)info;
	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "profile=on")) {
			profile = 1;
		} else {
			fprintf(stderr, "insn-count: unknown argument %s\n", argv[i]);
			return -1;
		}
	}
#if ICOUNT_ABI == 1
	static uint64_t totals[2];

	count[KERNEL] = &totals[KERNEL];
	count[USER] = &totals[USER];
#else
	struct qemu_plugin_scoreboard *totals;

	totals = qemu_plugin_scoreboard_new(2 * sizeof(uint64_t));
	count[KERNEL] = (qemu_plugin_u64){ totals, 0 };
	count[USER] = (qemu_plugin_u64){ totals, sizeof(uint64_t) };
	if (profile)
		pscore = qemu_plugin_scoreboard_new(PROF_MAX * sizeof(uint64_t));
#endif
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
