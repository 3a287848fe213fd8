/*
 * /init of the nested-KVM image (`cargo keel ... --backend nested`).
 *
 * It runs as PID 1 of Debian's stock Linux inside Bochs: it loads the KVM
 * modules, then boots Keel once per requested guest with QEMU/KVM, exactly as
 * the `kvm` backend does on a host (loader/src/qemu.rs), and powers Bochs off.
 * The host tool reads everything from the serial console (ttyS0 = Bochs's COM1
 * file). Every line this program prints starts with "NK-<nonce>: ", the nonce
 * being fresh for each image, so nothing a guest prints can pass for one of them.
 * QEMU writes Keel's serial port to a file in tmpfs (`-serial file:`, as the kvm
 * backend does), which is copied to the console after QEMU exits, between the
 * "start" and "exit" lines of its run: while Keel runs, L0's UART (slow: each
 * character costs L0 an interrupt) stays idle, so it does not disturb what Keel
 * and its guest measure.
 *
 * /nk.conf, one "key=value" a line, in this order of use:
 *   nonce=<word>
 *   kvm_intel=<module parameters>
 *   timeout=<emulated seconds a QEMU run may take>
 *   arg=<word>        one QEMU argument (repeated, in order)
 *   run=<name> <guest command line>
 *   trace_run=<name> <guest command line>   the same, counting L0's exits
 *                     between Keel's bench marks (see below)
 *   with=<name> <guest command line>   a domain booted beside the last run's
 *                     guest (repeated: domains 2, 3, ...), one more module
 *   cpus=<n>          the last run's machine has n CPUs (QEMU's -smp; 1 if
 *                     not given)
 *   stall_trace=<name>   trace L0's scheduler, interrupts and exits during
 *                     that guest's runs and report its stalls (see below)
 *   stall_ms=<ms>     what counts as a stall (default 8)
 *
 * Lines printed (besides QEMU's and Keel's own output):
 *   NK-n: phase <name> t=<s>            milestones, CLOCK_MONOTONIC seconds
 *   NK-n: kvm_intel <param>=<value>
 *   NK-n: clock <what> | <value>        L0's own timekeeping (clocksource,
 *                                       tick device, high-resolution mode):
 *                                       how precisely L0 can time Keel's timers
 *   NK-n: start <name> t=<s>
 *   NK-n: exit <name> rc=<code> t=<s> busy=<s> first=<s> last=<s>
 *                                       | signal=<n> | timeout
 *        busy: L0's non-idle CPU seconds during the run (what it costs Bochs);
 *        first, last: seconds after the start at which Keel's console first
 *        and last grew (sampled every 10 ms)
 *   NK-n: stderr <name> | <QEMU's stderr line>
 *   NK-n: dmesg | <kernel log line written during the run>
 *   NK-n: l0 <name> mark=<k> exits=<n> nested=<n> ext=<n>   (trace_run, below)
 *   NK-n: stall <name> | <what>           (stall_trace, below)
 *   NK-n: done t=<s>
 *
 * During a trace_run the kvm:kvm_exit, kvm:kvm_nested_vmexit and kvm:kvm_cpuid
 * tracepoints are on (they cost L0 time, which is why the timed figures come
 * from an untraced run); Keel's bench counter reads execute a
 * marker CPUID (leaf 0x4b454c4d) that L0 handles itself. For each marker this
 * program prints how many kvm_exit events (every exit of the vCPU to L0,
 * whether L1 or L2 was running, except those for the host's own interrupts,
 * counted as ext) and kvm_nested_vmexit events (exits L0 reflected to L1) the
 * trace holds between the previous marker and this one.
 *
 * During a stall_trace run L0's sched_switch, sched_wakeup, irq, softirq,
 * hrtimer-expiry, kvm_exit and kvm_nested_vmexit events are traced, and
 * afterwards two kinds of stall are reported with the events around them:
 *   - "off": QEMU's vCPU thread ("CPU 0/KVM") off the CPU for longer than
 *     stall_ms; every event L0 logged meanwhile is printed (up to a cap), which
 *     says whether L0 ran something else or sat idle;
 *   - "gap": no event at all for longer than stall_ms while the vCPU thread is
 *     on the CPU (Keel or its guest running without an exit, or L0 stuck with
 *     interrupts off); the events just before and after are printed.
 * A vCPU that Keel halts is off the CPU until its next timer, so stall_ms
 * must exceed the longest wait the guest asks for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 64
#define MAX_RUNS 256
#define MARKER_LEAF "4b454c4d"

static char nonce[64] = "0";
static char kvm_intel[512] = "";
static int timeout_s = 600;
static int traced_ready;
static char *qemu_args[MAX_ARGS];
static int nqemu_args;
static char *runs[MAX_RUNS];
static char run_traced[MAX_RUNS];
/* Each run's companion modules: ",<module>" each, commas already doubled. */
static char *run_with[MAX_RUNS];
/* Each run's CPUs (QEMU's -smp), as text; NULL for one. */
static char *run_cpus[MAX_RUNS];
static int nruns;
#define MAX_STALL_TRACED 16
static char *stall_traced[MAX_STALL_TRACED];
static int nstall_traced;
static double stall_ms = 8;
static int stall_ready;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	printf("NK-%s: ", nonce);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void power_off(void)
{
	fflush(stdout);
	/* The UART still holds what the tty sent it: let it drain first. */
	tcdrain(1);
	sleep(1);
	sync();
	/* Bochs's shutdown port; reboot() is the fallback. */
	if (ioperm(0x8900, 1, 1) == 0)
		for (const char *p = "Shutdown"; *p; p++)
			outb(*p, 0x8900);
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static void load_module(const char *path, const char *params)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		say("error open %s: %s", path, strerror(errno));
		return;
	}
	if (syscall(SYS_finit_module, fd, params, 0) != 0 && errno != EEXIST)
		say("error finit_module %s \"%s\": %s", path, params, strerror(errno));
	close(fd);
}

/* Append `s` to `*dst` (NULL: empty) as one more module: a comma, then `s`
 * with each of its commas doubled, as QEMU's -initrd list wants. */
static void add_module(char **dst, const char *s)
{
	size_t old = *dst ? strlen(*dst) : 0, n = 1;
	for (const char *p = s; *p; p++)
		n += *p == ',' ? 2 : 1;
	char *d = realloc(*dst, old + n + 1);
	if (!d) {
		say("error out of memory for a module line");
		return;
	}
	char *o = d + old;
	*o++ = ',';
	for (const char *p = s; *p; p++) {
		*o++ = *p;
		if (*p == ',')
			*o++ = ',';
	}
	*o = 0;
	*dst = d;
}

static void read_conf(void)
{
	static char line[4096];
	FILE *f = fopen("/nk.conf", "r");
	if (!f) {
		say("error no /nk.conf");
		return;
	}
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = 0;
		const char *k = line, *v = eq + 1;
		if (!strcmp(k, "nonce"))
			snprintf(nonce, sizeof nonce, "%s", v);
		else if (!strcmp(k, "kvm_intel"))
			snprintf(kvm_intel, sizeof kvm_intel, "%s", v);
		else if (!strcmp(k, "timeout"))
			timeout_s = atoi(v);
		else if (!strcmp(k, "arg") && nqemu_args < MAX_ARGS - 8)
			qemu_args[nqemu_args++] = strdup(v);
		else if (!strcmp(k, "run") && nruns < MAX_RUNS)
			runs[nruns++] = strdup(v);
		else if (!strcmp(k, "trace_run") && nruns < MAX_RUNS) {
			run_traced[nruns] = 1;
			runs[nruns++] = strdup(v);
		} else if (!strcmp(k, "with") && nruns > 0)
			add_module(&run_with[nruns - 1], v);
		else if (!strcmp(k, "cpus") && nruns > 0 && atoi(v) > 1)
			run_cpus[nruns - 1] = strdup(v);
		else if (!strcmp(k, "stall_trace") && nstall_traced < MAX_STALL_TRACED)
			stall_traced[nstall_traced++] = strdup(v);
		else if (!strcmp(k, "stall_ms"))
			stall_ms = atof(v);
	}
	fclose(f);
}

static void print_params(void)
{
	static const char *names[] = { "nested", "ept", "vpid", "enable_shadow_vmcs",
		"preemption_timer", "vmentry_l1d_flush", "enable_apicv", "pml" };
	char path[128], buf[128];
	for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "/sys/module/kvm_intel/parameters/%s", names[i]);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof buf, f)) {
			buf[strcspn(buf, "\n")] = 0;
			say("kvm_intel %s=%s", names[i], buf);
		}
		fclose(f);
	}
}

/* The first line of a file, or "" (trailing newline removed). */
static const char *first_line(const char *path)
{
	static char buf[512];
	buf[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return buf;
	if (!fgets(buf, sizeof buf, f))
		buf[0] = 0;
	buf[strcspn(buf, "\n")] = 0;
	fclose(f);
	return buf;
}

/*
 * L0's timekeeping. KVM times a halted vCPU's local APIC timer with an hrtimer,
 * which is only as precise as L0's clock events: in low-resolution mode every
 * hrtimer expires on L0's next tick.
 */
static void print_clock(void)
{
	static const char *files[] = {
		"/proc/cmdline",
		"/sys/devices/system/clocksource/clocksource0/current_clocksource",
		"/sys/devices/system/clocksource/clocksource0/available_clocksource",
		"/sys/devices/system/clockevents/clockevent0/current_device",
		"/sys/devices/system/clockevents/broadcast/current_device",
		"/sys/module/kvm/parameters/lapic_timer_advance_ns",
		"/sys/module/kvm/parameters/halt_poll_ns",
		"/sys/devices/system/cpu/cpuidle/current_driver",
	};
	static const char *timer_list_keys[] = { "hres_active", ".resolution", "Tick Device",
		"Clock Event Device", "event_handler", "mode:", "max_delta_ns", "min_delta_ns" };
	static const char *dmesg_keys[] = { "clocksource", "TSC", "tsc:", "hpet", "HPET",
		"APIC timer", "hrtimer", "Switched to", "clockevent", "lapic", "NO_HZ", "nohz" };
	char line[512];
	for (unsigned i = 0; i < sizeof files / sizeof files[0]; i++)
		say("clock %s | %s", files[i], first_line(files[i]));
	FILE *f = fopen("/proc/timer_list", "r");
	while (f && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		for (unsigned i = 0; i < sizeof timer_list_keys / sizeof timer_list_keys[0]; i++)
			if (strstr(line, timer_list_keys[i])) {
				say("clock timer_list | %s", line);
				break;
			}
	}
	if (f)
		fclose(f);
	static char buf[1 << 18];
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, sizeof buf - 1);
	if (n > 0) {
		buf[n] = 0;
		for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
			for (unsigned i = 0; i < sizeof dmesg_keys / sizeof dmesg_keys[0]; i++)
				if (strstr(l, dmesg_keys[i])) {
					say("clock dmesg | %s", l);
					break;
				}
	}
}

/* The kernel log from byte `from` on, one "dmesg |" line each; returns its size. */
static int dmesg(int from, int print)
{
	static char buf[1 << 18];
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, sizeof buf - 1);
	if (n < 0)
		return 0;
	if (print && from < n) {
		buf[n] = 0;
		for (char *l = strtok(buf + from, "\n"); l; l = strtok(NULL, "\n"))
			say("dmesg | %s", l);
	}
	return n;
}

static void print_file(const char *tag, const char *name, const char *path)
{
	char line[1024];
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		say("%s %s | %s", tag, name, line);
	}
	fclose(f);
}

/* ---- L0 exit attribution (trace=1) ---- */

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0)
		return -1;
	int r = write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -1;
	close(fd);
	return r;
}

#define TRACEFS "/sys/kernel/tracing"

static void trace_setup(void)
{
	mount("tracefs", TRACEFS, "tracefs", 0, NULL);
	/* Enough for the longest bench program's events between reads. */
	if (write_file(TRACEFS "/buffer_size_kb", "16384") ||
	    write_file(TRACEFS "/events/kvm/kvm_exit/enable", "1") ||
	    write_file(TRACEFS "/events/kvm/kvm_nested_vmexit/enable", "1") ||
	    write_file(TRACEFS "/events/kvm/kvm_cpuid/enable", "1"))
		say("error tracefs setup: %s", strerror(errno));
}

static void trace_on(int on)
{
	write_file(TRACEFS "/tracing_on", on ? "1" : "0");
}

/*
 * Count events between markers in what the trace holds. A marker is a
 * kvm_cpuid event for the marker leaf. Lost events make the counts wrong, so
 * an overrun is reported and the counts are not printed.
 */
static void trace_report(const char *name)
{
	FILE *f = fopen(TRACEFS "/trace", "r");
	char line[1024];
	long exits = 0, ext = 0, nested = 0, mark = 0;
	int lost = 0;
	if (!f) {
		say("error %s/trace: %s", TRACEFS, strerror(errno));
		return;
	}
	while (fgets(line, sizeof line, f)) {
		if (line[0] == '#') {
			if (strstr(line, "entries-in-buffer") && strstr(line, "#P:")) {
				long in = 0, written = 0;
				char *p = strstr(line, "entries-in-buffer/entries-written:");
				if (p && sscanf(p, "entries-in-buffer/entries-written: %ld/%ld", &in, &written) == 2 &&
				    in != written)
					lost = 1;
			}
			continue;
		}
		/* The host's own interrupts (its timer tick, other devices) exit too,
		 * whatever the guest does: counted apart. */
		if (strstr(line, " kvm_exit: ") && strstr(line, "reason EXTERNAL_INTERRUPT"))
			ext++;
		else if (strstr(line, " kvm_exit: "))
			exits++;
		else if (strstr(line, " kvm_nested_vmexit: "))
			nested++;
		else if (strstr(line, " kvm_cpuid: ") && strstr(line, "func " MARKER_LEAF " ")) {
			if (!lost)
				say("l0 %s mark=%ld exits=%ld nested=%ld ext=%ld", name, mark, exits, nested, ext);
			mark++;
			exits = nested = ext = 0;
		}
	}
	fclose(f);
	if (lost)
		say("error l0 %s: the trace buffer overflowed; no L0 counts", name);
	write_file(TRACEFS "/trace", "");
}

/*
 * L0's CPU time not spent idle, in seconds (/proc/stat's first line). Idle time
 * is nearly free under Bochs (it skips ahead to the next timer event), so this is
 * what a run costs in instructions and hence, roughly, in wall time.
 */
static double busy_s(void)
{
	unsigned long long v[10] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	if (!f)
		return 0;
	int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		       &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
	fclose(f);
	if (n < 4)
		return 0;
	unsigned long long busy = 0;
	/* user nice system [idle] [iowait] irq softirq steal (guest time is in user) */
	for (int i = 0; i < 8; i++)
		if (i != 3 && i != 4)
			busy += v[i];
	return (double)busy / sysconf(_SC_CLK_TCK);
}

/* ---- L0 stalls (stall_trace) ---- */

static const char *stall_events[] = { "sched/sched_switch", "sched/sched_wakeup",
	"irq/irq_handler_entry", "irq/softirq_entry", "timer/hrtimer_expire_entry",
	"kvm/kvm_exit", "kvm/kvm_nested_vmexit" };

static int stall_wanted(const char *name)
{
	for (int i = 0; i < nstall_traced; i++)
		if (!strcmp(stall_traced[i], name))
			return 1;
	return 0;
}

static void stall_events_on(int on)
{
	char path[160];
	for (unsigned i = 0; i < sizeof stall_events / sizeof stall_events[0]; i++) {
		/* The exit counting of later trace runs keeps its kvm events. */
		if (!on && traced_ready && !strncmp(stall_events[i], "kvm/", 4))
			continue;
		snprintf(path, sizeof path, TRACEFS "/events/%s/enable", stall_events[i]);
		if (write_file(path, on ? "1" : "0"))
			say("error %s: %s", path, strerror(errno));
	}
}

/* A trace line's timestamp: the number before ": " after the "[cpu]" field. */
static int trace_time(const char *line, double *t)
{
	const char *p = strstr(line, "] ");
	if (!p)
		return 0;
	p += 2;
	while (*p == ' ')
		p++;
	while (*p && *p != ' ') /* the flags field (irqs-off, need-resched, ...) */
		p++;
	char *end;
	*t = strtod(p, &end);
	return end != p && *end == ':';
}

#define STALL_CONTEXT 12
#define STALL_OFF_LINES 60
#define STALL_REPORTS 24

static void stall_report(const char *name)
{
	FILE *f = fopen(TRACEFS "/trace", "r");
	static char ring[STALL_CONTEXT][512];
	static char off_lines[STALL_OFF_LINES][512];
	char line[512];
	int nring = 0, after = 0, noff = 0, reports = 0, on_cpu = 0, lost = 0, seen = 0;
	long events = 0;
	double prev = -1, off_at = -1, first = -1, worst_gap = 0, worst_off = 0;
	if (!f) {
		say("error %s/trace: %s", TRACEFS, strerror(errno));
		return;
	}
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		if (line[0] == '#') {
			long in = 0, written = 0;
			char *p = strstr(line, "entries-in-buffer/entries-written:");
			if (p && sscanf(p, "entries-in-buffer/entries-written: %ld/%ld", &in, &written) == 2 &&
			    in != written)
				lost = 1;
			continue;
		}
		double t;
		if (!trace_time(line, &t))
			continue;
		events++;
		if (first < 0)
			first = t;
		if (after > 0) {
			say("stall %s |   %s", name, line);
			after--;
		}
		int vcpu_out = strstr(line, "sched_switch: prev_comm=CPU 0/KVM ") != NULL;
		int vcpu_in = strstr(line, "==> next_comm=CPU 0/KVM ") != NULL;
		if (on_cpu && prev >= 0 && t - prev > worst_gap)
			worst_gap = t - prev;
		if (on_cpu && prev >= 0 && (t - prev) * 1e3 > stall_ms) {
			if (reports++ < STALL_REPORTS) {
				say("stall %s | gap %.3f ms with the vCPU thread on the CPU, at %.6f (%.3f s into the run)",
				    name, (t - prev) * 1e3, prev, prev - first);
				for (int i = 0; i < nring; i++)
					say("stall %s |   %s", name, ring[i]);
				say("stall %s |   %s", name, line);
				after = STALL_CONTEXT;
			}
		}
		if (off_at >= 0 && !vcpu_in && noff < STALL_OFF_LINES)
			snprintf(off_lines[noff++], sizeof off_lines[0], "%s", line);
		if (vcpu_in) {
			if (off_at >= 0 && t - off_at > worst_off)
				worst_off = t - off_at;
			if (off_at >= 0 && (t - off_at) * 1e3 > stall_ms) {
				if (reports++ < STALL_REPORTS) {
					say("stall %s | off %.3f ms: the vCPU thread off the CPU from %.6f (%.3f s into the run); meanwhile:",
					    name, (t - off_at) * 1e3, off_at, off_at - first);
					for (int i = 0; i < noff; i++)
						say("stall %s |   %s", name, off_lines[i]);
					say("stall %s |   %s", name, line);
				}
			}
			off_at = -1;
			on_cpu = 1;
			seen = 1;
		}
		if (vcpu_out) {
			off_at = t;
			noff = 0;
			on_cpu = 0;
		}
		/* The last STALL_CONTEXT lines, oldest first. */
		if (nring < STALL_CONTEXT)
			snprintf(ring[nring++], sizeof ring[0], "%s", line);
		else {
			memmove(ring[0], ring[1], sizeof ring[0] * (STALL_CONTEXT - 1));
			snprintf(ring[STALL_CONTEXT - 1], sizeof ring[0], "%s", line);
		}
		prev = t;
	}
	fclose(f);
	say("stall %s | %ld events over %.3f s; %d stall(s) over %.1f ms (%d printed); longest gap %.3f ms, longest off-CPU %.3f ms%s%s",
	    name, events, prev - first, reports, stall_ms,
	    reports < STALL_REPORTS ? reports : STALL_REPORTS, worst_gap * 1e3, worst_off * 1e3,
	    lost ? "; the trace buffer overflowed: events were lost" : "",
	    seen ? "" : "; the vCPU thread (CPU 0/KVM) never came on the CPU in the trace: nothing was analysed");
}

/* ---- one QEMU run ---- */

static void run_qemu(const char *spec, const char *with, char *cpus, int trace)
{
	static char name[256], module[8192], err_path[300], serial_arg[320], serial_path[300];
	char *argv[MAX_ARGS + 4];
	int argc = 0;

	/* spec = "<name> <guest args>": the first module is all of it, commas
	 * doubled; the companions' modules follow. */
	snprintf(name, sizeof name, "%.*s", (int)strcspn(spec, " "), spec);
	size_t j = 0;
	for (size_t i = 0; spec[i] && j + 2 < sizeof module; i++) {
		module[j++] = spec[i];
		if (spec[i] == ',')
			module[j++] = ',';
	}
	module[j] = 0;
	if (with && j + strlen(with) >= sizeof module) {
		/* Still bracketed, so that the runs after it keep their places. */
		say("start %s t=%.3f", name, now());
		say("error %s: its modules are longer than %zu bytes", name, sizeof module);
		say("exit %s not-started t=%.3f", name, now());
		return;
	}
	if (with)
		strcat(module, with);
	snprintf(err_path, sizeof err_path, "/tmp/%s.stderr", name);
	snprintf(serial_path, sizeof serial_path, "/tmp/%s.serial", name);
	snprintf(serial_arg, sizeof serial_arg, "file:%s", serial_path);
	argv[argc++] = "/usr/bin/qemu-system-x86_64";
	for (int i = 0; i < nqemu_args; i++) {
		if (!strcmp(qemu_args[i], "@MODULE@"))
			argv[argc++] = module;
		else if (!strcmp(qemu_args[i], "file:@SERIAL@"))
			argv[argc++] = serial_arg;
		else
			argv[argc++] = qemu_args[i];
	}
	if (cpus) {
		argv[argc++] = "-smp";
		argv[argc++] = cpus;
	}
	/* The stall analysis follows the vCPU thread by its name, "CPU 0/KVM",
	 * which QEMU gives its threads only when asked. */
	if (stall_wanted(name)) {
		argv[argc++] = "-name";
		argv[argc++] = "keel,debug-threads=on";
	}
	argv[argc] = NULL;

	if (trace && !traced_ready) {
		trace_setup();
		traced_ready = 1;
	}
	int stall = stall_wanted(name);
	if (stall && !stall_ready) {
		mount("tracefs", TRACEFS, "tracefs", 0, NULL);
		if (write_file(TRACEFS "/buffer_size_kb", "32768"))
			say("error tracefs buffer: %s", strerror(errno));
		stall_ready = 1;
	}
	if (stall)
		stall_events_on(1);
	if (trace || stall) {
		write_file(TRACEFS "/trace", "");
		trace_on(1);
	}
	int klog = dmesg(0, 0);
	double b0 = busy_s();
	double t0 = now();
	say("start %s%s t=%.3f", name, trace ? " traced" : "", t0);
	pid_t pid = fork();
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(in, 0);
		if (err >= 0)
			dup2(err, 2);
		if (chdir("/guests") != 0)
			_exit(126);
		char *envp[] = { "PATH=/usr/bin:/bin", "HOME=/", NULL };
		execve(argv[0], argv, envp);
		_exit(127);
	}
	int st = 0, timed_out = 0;
	/* When Keel's console first and last grew: QEMU's start and firmware before
	 * the first, QEMU's exit after the last. */
	double first = -1, last = -1;
	off_t seen = 0;
	if (pid > 0) {
		for (;;) {
			if (waitpid(pid, &st, WNOHANG) == pid)
				break;
			struct stat ss;
			if (stat(serial_path, &ss) == 0 && ss.st_size > seen) {
				seen = ss.st_size;
				last = now() - t0;
				if (first < 0)
					first = last;
			}
			if (now() - t0 > timeout_s) {
				kill(pid, SIGKILL);
				waitpid(pid, &st, 0);
				timed_out = 1;
				break;
			}
			usleep(10000);
		}
	}
	double t1 = now();
	double b1 = busy_s();
	if (trace || stall)
		trace_on(0);
	FILE *serial = fopen(serial_path, "r");
	if (serial) {
		char buf[4096];
		size_t n;
		while ((n = fread(buf, 1, sizeof buf, serial)) > 0)
			fwrite(buf, 1, n, stdout);
		fclose(serial);
		unlink(serial_path);
	}
	/* Keel's last console line may lack its line end. */
	printf("\n");
	if (pid < 0)
		say("exit %s fork-failed t=%.3f", name, t1);
	else if (timed_out)
		say("exit %s timeout t=%.3f", name, t1);
	else if (WIFEXITED(st))
		say("exit %s rc=%d t=%.3f busy=%.2f first=%.3f last=%.3f", name, WEXITSTATUS(st), t1,
		    b1 - b0, first, last);
	else
		say("exit %s signal=%d t=%.3f busy=%.2f", name, WTERMSIG(st), t1, b1 - b0);
	print_file("stderr", name, err_path);
	unlink(err_path);
	dmesg(klog, 1);
	if (stall) {
		stall_report(name);
		stall_events_on(0);
	}
	if (trace)
		trace_report(name);
	else if (stall)
		write_file(TRACEFS "/trace", "");
}

int main(void)
{
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("tmpfs", "/tmp", "tmpfs", 0, NULL);
	mkdir("/dev/shm", 01777);
	mount("tmpfs", "/dev/shm", "tmpfs", 0, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	read_conf();
	say("phase init t=%.3f", now());

	load_module("/lib/modules/irqbypass.ko", "");
	load_module("/lib/modules/kvm.ko", "");
	load_module("/lib/modules/kvm-intel.ko", kvm_intel);
	struct stat sb;
	if (stat("/dev/kvm", &sb) != 0)
		say("error no /dev/kvm after loading kvm-intel");
	print_params();
	print_clock();
	say("phase modules t=%.3f", now());
	dmesg(0, 0);

	for (int i = 0; i < nruns; i++)
		run_qemu(runs[i], run_with[i], run_cpus[i], run_traced[i]);

	say("done t=%.3f", now());
	power_off();
	return 0;
}
