import { readFileSync } from "node:fs";

/**
 * Linux USER_HZ: the unit of utime/stime in /proc/<pid>/stat. It is 100 on every mainstream
 * Linux architecture (the kernel ABI fixes it independently of CONFIG_HZ).
 */
const USER_HZ = 100;

/**
 * CPU time (user + sys, ms) a process has used so far, read from /proc/<pid>/stat. Reading it
 * from outside measures the real programs (the worker bin, the plain loop) the same way, without
 * instrumenting them. Resolution is 10 ms; windows are seconds long.
 */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may contain spaces; the fields after its closing ')' are fixed.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / USER_HZ;
}

/** Sum of {@link processCpuMs} over several processes. */
export function totalCpuMs(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + processCpuMs(pid), 0);
}
